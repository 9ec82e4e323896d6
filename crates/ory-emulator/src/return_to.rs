//! Where a flow may send the browser back to: Kratos' check of `return_to` against
//! `selfservice.allowed_return_urls` (plus its own `/self-service` URLs), made when a flow
//! starts, so that an open redirect through Ory is refused before anyone signs in.

use url::Url;

use super::context::Ctx;
use super::error::EmulatorError;
use super::flows::WELCOME_PATH;

/// The `return_to` a flow may keep: `None` without one, the value itself when it is allowed
/// (a relative one made absolute on the default return URL, as Kratos does), or
/// [`EmulatorError::ReturnToForbidden`].
pub(crate) fn checked(ctx: &Ctx, raw: Option<&str>) -> Result<Option<String>, EmulatorError> {
    let Some(raw) = raw else { return Ok(None) };
    let Some(allowed) = ctx.store.allowed_return_urls() else {
        return Ok(Some(raw.to_owned()));
    };
    let welcome = ctx.settings.url(WELCOME_PATH);
    let (target, text) = match Url::parse(raw) {
        Ok(url) => (url, raw.to_owned()),
        Err(url::ParseError::RelativeUrlWithoutBase) => {
            let joined = Url::parse(&welcome)
                .and_then(|base| base.join(raw))
                .map_err(|e| bad_return_to(raw, e))?;
            let text = joined.to_string();
            (joined, text)
        }
        Err(e) => return Err(bad_return_to(raw, e)),
    };
    let self_service = ctx.settings.url("/self-service");
    let ok = allowed
        .iter()
        .map(String::as_str)
        .chain(std::iter::once(self_service.as_str()))
        .any(|entry| allows(entry, &target));
    if ok {
        Ok(Some(text))
    } else {
        Err(EmulatorError::ReturnToForbidden(text))
    }
}

fn bad_return_to(raw: &str, e: url::ParseError) -> EmulatorError {
    EmulatorError::BadRequest(format!(
        "Unable to parse the return_to query parameter as an URL: {raw:?}: {e}"
    ))
}

/// Kratos' rule: same scheme, same host (or a subdomain of a `*.` entry) and port, and a path
/// that starts with the entry's path. (A prefix of the text, as in Kratos: `/app` also allows
/// `/application`.)
fn allows(entry: &str, target: &Url) -> bool {
    let Ok(entry) = Url::parse(entry) else {
        return false;
    };
    let host_ok = match (entry.host_str(), target.host_str()) {
        (Some(allowed), Some(host)) => match allowed.strip_prefix('*') {
            Some(suffix) => host.ends_with(suffix),
            None => allowed.eq_ignore_ascii_case(host),
        },
        _ => false,
    };
    entry.scheme().eq_ignore_ascii_case(target.scheme())
        && host_ok
        && entry.port_or_known_default() == target.port_or_known_default()
        && target.path().starts_with(entry.path())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allowed(entry: &str, target: &str) -> bool {
        allows(entry, &Url::parse(target).unwrap())
    }

    #[test]
    fn scheme_host_port_and_path_prefix_must_match() {
        assert!(allowed(
            "http://localhost:4000",
            "http://localhost:4000/admin?x=1"
        ));
        assert!(allowed("http://localhost:4000/", "http://LOCALHOST:4000/"));
        assert!(allowed("https://app.test/app", "https://app.test/app/x"));
        assert!(!allowed("https://app.test/app", "https://app.test/other"));
        assert!(!allowed("http://localhost:4000", "https://localhost:4000/"));
        assert!(!allowed("http://localhost:4000", "http://localhost:4001/"));
        assert!(!allowed(
            "http://localhost:4000",
            "http://localhost.evil.test:4000/"
        ));
        assert!(!allowed(
            "http://localhost:4000",
            "http://evil.test/?localhost:4000"
        ));
        assert!(!allowed("not a url", "http://localhost/"));
    }

    #[test]
    fn a_wildcard_entry_allows_subdomains() {
        assert!(allowed(
            "https://*.example.org",
            "https://app.example.org/x"
        ));
        assert!(!allowed(
            "https://*.example.org",
            "https://example.org.evil.test/"
        ));
        assert!(!allowed("https://*.example.org", "http://app.example.org/"));
    }
}
