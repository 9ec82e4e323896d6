//! The second factor: a one-time code, submitted as Kratos' `totp` method (`totp_code`) in a
//! login flow started with `?aal=aal2` by a signed-in (`aal1`) browser. The right code upgrades
//! that session to `aal2` in place; a wrong one shows the form again with Kratos' error.
//!
//! Every identity has the factor, and the code is one per emulator run
//! ([`Settings::second_factor_code`](super::config::Settings)): a demo prints it, a test reads
//! it from the handle. `/sessions/whoami` answers an `aal1` session all the same (Kratos'
//! `session.whoami.required_aal = aal1`): a proxy in front decides what needs `aal2`.

use actix_web::{HttpRequest, HttpResponse};

use super::context::Ctx;
use super::error::EmulatorError;
use super::flows::{self, Fields};
use super::state::{Flow, UiText};

/// Name of the code's field, as in Kratos' TOTP strategy.
pub(crate) const CODE_FIELD: &str = "totp_code";

/// `POST /self-service/login?flow=` of an `aal2` flow (CSRF and method checked already).
pub(crate) fn submit(
    ctx: &Ctx,
    req: &HttpRequest,
    mut flow: Flow,
    fields: &Fields,
) -> Result<HttpResponse, EmulatorError> {
    // The session to upgrade is the browser's: without one there is nothing to upgrade.
    let (session, _) = ctx
        .cookie_session(req)
        .ok_or(EmulatorError::SessionAal1Required)?;
    let code = fields.get(CODE_FIELD).map(|c| c.trim()).unwrap_or("");
    if code.is_empty() {
        flow.field_messages.push((
            CODE_FIELD.to_owned(),
            UiText::error(4000002, format!("Property {CODE_FIELD} is missing.")),
        ));
        return Ok(flows::reject(ctx, req, flow));
    }
    if !same(code, &ctx.settings.second_factor_code) {
        flow.messages.push(UiText::error(
            4000008,
            "The provided authentication code is invalid, please try again.",
        ));
        return Ok(flows::reject(ctx, req, flow));
    }
    // Revoked between the two lines above (a logout in another tab): no session any more.
    let (session, identity) = ctx
        .store
        .upgrade_session(&session.token)
        .ok_or(EmulatorError::SessionAal1Required)?;
    let body = flows::session_body(ctx, &session, &identity);
    Ok(flows::succeed(ctx, req, &flow, &session, body))
}

/// Compares without stopping at the first difference (a habit worth keeping even in a test
/// double: its code is printed for people to type).
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |diff, (x, y)| diff | (x ^ y))
            == 0
}

#[cfg(test)]
mod tests {
    use super::same;

    #[test]
    fn codes_compare_whole() {
        assert!(same("123456", "123456"));
        assert!(!same("123456", "123457"));
        assert!(!same("12345", "123456"));
        assert!(!same("", "123456"));
    }
}
