//! Property tests of the pure rewriters and parsers: `Set-Cookie`, `Location` and body
//! rewriting, credential extraction, routing and the Ory path check, the whoami parser.
//!
//! Each property holds for every input, hostile ones included: no panic, only Ory's exact URL
//! (or the app's, for its own redirects and cookies) is ever rewritten, attributes the rules do
//! not name survive, a rewritten `Location` stays on the publish origin, and a path that passes
//! the Ory check has no encoded separator or dot segment left to decode. The case count is
//! bounded so that CI stays fast; `PROPTEST_CASES` raises it for a deeper local run.

use std::io::{Read as _, Write as _};

use actix_web::http::header::{HeaderMap, HeaderName, HeaderValue};
use bytes::Bytes;
use proptest::prelude::*;

use ory_proxy::config::settings::SessionLive;
use ory_proxy::proxy::body_rewrite::{self, Encoding};
use ory_proxy::proxy::cookie_rewrite::{self, CookieContext};
use ory_proxy::proxy::error::Upstream;
use ory_proxy::proxy::location_rewrite::{self, LocationContext};
use ory_proxy::proxy::route;
use ory_proxy::sessions::credentials;
use ory_proxy::sessions::whoami::{self, Whoami};

/// 256 cases per property unless `PROPTEST_CASES` says otherwise; no regression files written
/// into the source tree.
fn config() -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256);
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

// ---- Set-Cookie ----

const APP_HOST: &str = "app.internal";

/// One cookie attribute: the ones the rules name, in odd spellings too, or an unknown one.
fn attribute() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "Domain=kratos.internal",
            "domain=.APP.internal",
            "Domain=app.internal",
            "DOMAIN = app.internal",
            "Domain=",
            "Domain",
            "Domain=other.org",
            "Secure",
            "secure",
            "SameSite=None",
            "samesite = none",
            "SameSite=Lax",
            "SameSite=Strict",
            "HttpOnly",
            "Path=/",
            "Max-Age=0",
            "Expires=Thu, 01 Jan 1970 00:00:00 GMT",
            "Partitioned",
        ])
        .prop_map(str::to_string),
        unknown_attribute(),
    ]
}

/// An attribute no rule names, with or without a value.
fn unknown_attribute() -> impl Strategy<Value = String> {
    (
        "[A-Za-z][A-Za-z0-9_-]{0,10}",
        proptest::option::of("[ -:<-~]{0,12}"),
    )
        .prop_filter("a named attribute", |(k, _)| {
            !["domain", "secure", "samesite"].contains(&k.to_ascii_lowercase().as_str())
        })
        .prop_map(|(k, v)| match v {
            Some(v) => format!("{k}={v}"),
            None => k,
        })
}

fn cookie() -> impl Strategy<Value = (String, Vec<String>)> {
    (
        "[a-z_]{1,10}=[ !#-:<-~]{0,20}",
        prop::collection::vec(attribute(), 0..8),
    )
}

fn cookie_context() -> impl Strategy<Value = CookieContext<'static>> {
    (
        prop::sample::select(vec![None, Some("example.org"), Some("www.example.org")]),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(|(domain, from_ory, public_https)| CookieContext {
            domain,
            from_ory,
            app_host: APP_HOST,
            public_https,
        })
}

fn key_of(attr: &str) -> String {
    attr.split('=')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

fn value_of(attr: &str) -> String {
    attr.split_once('=')
        .map(|(_, v)| v.trim().trim_start_matches('.').to_ascii_lowercase())
        .unwrap_or_default()
}

/// The domain a browser takes from these attributes: the last non-empty `Domain`.
fn effective_domain(attrs: &[String]) -> Option<String> {
    attrs
        .iter()
        .filter(|a| key_of(a) == "domain")
        .map(|a| value_of(a))
        .rfind(|v| !v.is_empty())
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn cookie_rewrite_never_panics(value in "\\PC{0,80}", ctx in cookie_context()) {
        let _ = cookie_rewrite::rewrite(&value, &ctx);
    }

    #[test]
    fn cookie_rewrite_keeps_what_it_does_not_own((nv, attrs) in cookie(), ctx in cookie_context()) {
        let value = std::iter::once(nv.clone()).chain(attrs.iter().cloned()).collect::<Vec<_>>().join("; ");
        let out = cookie_rewrite::rewrite(&value, &ctx);
        // Only Ory's cookies and the app's own-host cookies are touched.
        let ours = ctx.from_ory || effective_domain(&attrs).as_deref() == Some(APP_HOST);
        prop_assert_eq!(out.is_some(), ours, "{}", value);
        let Some(out) = out else { return Ok(()) };

        let mut parts = out.split("; ");
        prop_assert_eq!(parts.next(), Some(nv.trim()));
        let out_attrs: Vec<&str> = parts.collect();
        // Every attribute no rule names survives, as sent and in order.
        let unknown: Vec<&str> = attrs
            .iter()
            .map(|a| a.trim())
            .filter(|a| !a.is_empty() && !["domain", "secure", "samesite"].contains(&key_of(a).as_str()))
            .collect();
        let kept: Vec<&str> = out_attrs
            .iter()
            .copied()
            .filter(|a| !["domain", "secure", "samesite"].contains(&key_of(a).as_str()))
            .collect();
        prop_assert_eq!(kept, unknown);
        // The domain is the configured one, once, or none.
        let domains: Vec<&str> = out_attrs.iter().copied().filter(|a| key_of(a) == "domain").collect();
        match ctx.domain {
            Some(d) => prop_assert_eq!(domains, vec![format!("Domain={d}")]),
            None => prop_assert!(domains.is_empty(), "{:?}", domains),
        }
        // Secure exactly when the publish URL is https; no SameSite=None without it.
        let secure = out_attrs.iter().any(|a| key_of(a) == "secure");
        prop_assert_eq!(secure, ctx.public_https, "{}", out);
        if !ctx.public_https {
            prop_assert!(!out_attrs.iter().any(|a| key_of(a) == "samesite" && value_of(a) == "none"), "{}", out);
        }
    }
}

// ---- Location ----

const ORY: &str = "https://slug.projects.oryapis.com";
const ORY_WITH_PATH: &str = "http://kratos.internal:4433/kratos";
const APP: &str = "http://localhost:3000";
const PUBLISH: &str = "https://www.example.org";

/// A `Location` that starts like one of the origins involved (or a look-alike) and goes on
/// with anything, the characters URL parsers treat specially included.
fn location() -> impl Strategy<Value = String> {
    (
        prop::sample::select(vec![
            ORY,
            "HTTPS://SLUG.projects.oryapis.com",
            "https://slug.projects.oryapis.com.evil.com",
            "https://slug.projects.oryapis.com@evil.com",
            ORY_WITH_PATH,
            "http://kratos.internal:4433",
            "/kratos",
            APP,
            "http://LOCALHOST:3000",
            "http://localhost:30001",
            PUBLISH,
            "https://evil.com",
            "//evil.com",
            "/\\evil.com",
            "/",
            "",
        ]),
        "[a-z0-9/?#@:.%\\\\\t-]{0,16}",
    )
        .prop_map(|(head, tail)| format!("{head}{tail}"))
}

fn location_context() -> impl Strategy<Value = LocationContext<'static>> {
    (
        prop::sample::select(vec![ORY, ORY_WITH_PATH]),
        any::<bool>(),
    )
        .prop_map(|(ory_base, from_ory)| LocationContext {
            ory_base,
            app_origin: APP,
            publish_origin: PUBLISH,
            from_ory,
        })
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn location_rewrite_never_panics(loc in "\\PC{0,60}", ctx in location_context()) {
        let _ = location_rewrite::rewrite(&loc, &ctx);
        let _ = location_rewrite::is_welcome(&loc, PUBLISH);
    }

    /// What the proxy rewrites lands on the publish origin, as a browser resolves it; what it
    /// leaves alone is exactly what the upstream sent.
    #[test]
    fn a_rewritten_location_stays_on_the_publish_origin(loc in location(), ctx in location_context()) {
        let Some(out) = location_rewrite::rewrite(&loc, &ctx) else { return Ok(()) };
        let base = url::Url::parse(PUBLISH).unwrap();
        let resolved = base.join(&out);
        prop_assert!(resolved.is_ok(), "{:?} -> {:?}: {:?}", loc, out, resolved);
        let resolved = resolved.unwrap();
        prop_assert_eq!(resolved.origin(), base.origin(), "{:?} -> {:?}", loc, out);
    }

    /// Only a `Location` on Ory's or the app's exact origin, or an Ory-relative path, changes:
    /// look-alike hosts, other ports and userinfo tricks stay as sent.
    #[test]
    fn only_the_exact_origins_are_rewritten(loc in location(), ctx in location_context()) {
        let out = location_rewrite::rewrite(&loc, &ctx);
        let lower = loc.to_ascii_lowercase();
        let at_boundary = |base: &str| {
            lower.strip_prefix(&base.to_ascii_lowercase())
                .is_some_and(|rest| matches!(rest.bytes().next(), None | Some(b'/' | b'?' | b'#')))
        };
        let expected = at_boundary(ctx.ory_base)
            || at_boundary(APP)
            || (ctx.from_ory && loc.starts_with('/') && !loc.starts_with("//"));
        prop_assert_eq!(out.is_some(), expected, "{:?} -> {:?}", loc, out);
    }
}

// ---- bodies ----

const FROM: &str = "https://kratos.internal:4433";
const TO: &str = "https://www.example.org/.ory";

/// Text that cannot form Ory's URL by itself.
fn filler() -> impl Strategy<Value = String> {
    "[<>{}\\[\\] =,;!\"'XYZQW\n]{0,12}"
}

/// A body of filler, Ory's URL where it ends at a URL boundary (rewritten), and Ory's URL
/// continued into another host or port, or userinfo (left alone); with the body it must become.
fn body() -> impl Strategy<Value = (String, String)> {
    let piece = (
        filler(),
        prop_oneof![
            prop::sample::select(vec!["/", "/ui/login?x=1", "\"", "'", " ", "?", "#", "<"])
                .prop_map(|b| (b, true)),
            prop::sample::select(vec![
                "0",
                ".evil.com",
                "-x",
                "_x",
                ":1",
                "@evil.com",
                "%2eevil.com"
            ])
            .prop_map(|b| (b, false)),
        ],
    );
    (prop::collection::vec(piece, 0..6), filler(), any::<bool>()).prop_map(
        |(pieces, tail, end_with_url)| {
            let (mut sent, mut want) = (String::new(), String::new());
            for (fill, (after, replaced)) in pieces {
                sent.push_str(&fill);
                want.push_str(&fill);
                sent.push_str(FROM);
                want.push_str(if replaced { TO } else { FROM });
                sent.push_str(after);
                want.push_str(after);
            }
            sent.push_str(&tail);
            want.push_str(&tail);
            if end_with_url {
                sent.push_str(FROM);
                want.push_str(TO);
            }
            (sent, want)
        },
    )
}

fn encode(enc: Encoding, plain: &[u8]) -> Vec<u8> {
    use flate2::{write, Compression};
    match enc {
        Encoding::Identity => plain.to_vec(),
        Encoding::Gzip => {
            let mut e = write::GzEncoder::new(Vec::new(), Compression::default());
            e.write_all(plain).unwrap();
            e.finish().unwrap()
        }
        Encoding::Deflate => {
            let mut e = write::ZlibEncoder::new(Vec::new(), Compression::default());
            e.write_all(plain).unwrap();
            e.finish().unwrap()
        }
    }
}

fn decode(enc: Encoding, body: &[u8]) -> Vec<u8> {
    use flate2::read;
    let mut out = Vec::new();
    match enc {
        Encoding::Identity => out.extend_from_slice(body),
        Encoding::Gzip => {
            read::MultiGzDecoder::new(body)
                .read_to_end(&mut out)
                .unwrap();
        }
        Encoding::Deflate => {
            read::ZlibDecoder::new(body).read_to_end(&mut out).unwrap();
        }
    }
    out
}

fn encoding() -> impl Strategy<Value = Encoding> {
    prop::sample::select(vec![Encoding::Identity, Encoding::Gzip, Encoding::Deflate])
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn body_rewrite_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..256), enc in encoding()) {
        let _ = body_rewrite::rewrite(Bytes::from(bytes), enc, FROM, TO);
    }

    #[test]
    fn body_rewrite_replaces_exactly_ory_urls((sent, want) in body(), enc in encoding()) {
        let out = body_rewrite::rewrite(Bytes::from(encode(enc, sent.as_bytes())), enc, FROM, TO).unwrap();
        let got = String::from_utf8(decode(enc, &out)).unwrap();
        prop_assert_eq!(got, want);
    }

    #[test]
    fn a_body_without_ory_urls_is_passed_on_byte_for_byte(text in "\\PC{0,80}", enc in encoding()) {
        prop_assume!(!text.contains(FROM));
        let sent = Bytes::from(encode(enc, text.as_bytes()));
        let out = body_rewrite::rewrite(sent.clone(), enc, FROM, TO).unwrap();
        prop_assert_eq!(out, sent);
    }
}

// ---- credentials ----

fn session() -> SessionLive {
    SessionLive {
        cookie_names: vec!["ory_session_*".into(), "ory_kratos_session".into()],
        cache_ttl: std::time::Duration::from_secs(10),
        cache_max_entries: 10,
    }
}

/// Cookie pairs: session cookies and others (CSRF, app cookies).
fn cookie_pair() -> impl Strategy<Value = (bool, String)> {
    prop_oneof![
        (
            "(ory_session_[a-z]{0,6}|ory_kratos_session)",
            "[A-Za-z0-9_-]{0,12}"
        )
            .prop_map(|(n, v)| (true, format!("{n}={v}"))),
        (
            "(csrf_token_[a-z0-9]{1,6}|theme|ory_sessio|kratos_session|[a-z]{1,8})",
            "[A-Za-z0-9_-]{0,12}"
        )
            .prop_filter("a session cookie name", |(n, _)| n != "ory_kratos_session"
                && !n.starts_with("ory_session_"))
            .prop_map(|(n, v)| (false, format!("{n}={v}"))),
    ]
}

fn headers_with_cookies(pairs: &[String], extra: &[(&'static str, &str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    if !pairs.is_empty() {
        h.insert(
            actix_web::http::header::COOKIE,
            HeaderValue::from_str(&pairs.join("; ")).unwrap(),
        );
    }
    for (k, v) in extra {
        h.append(
            HeaderName::from_static(k),
            HeaderValue::from_str(v).unwrap(),
        );
    }
    h
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn credential_extraction_never_panics(
        cookie in prop::collection::vec(any::<u8>(), 0..120),
        token in proptest::option::of("[ -~]{0,20}"),
    ) {
        let mut h = HeaderMap::new();
        if let Ok(v) = HeaderValue::from_bytes(&cookie) {
            h.insert(actix_web::http::header::COOKIE, v);
        }
        if let Some(t) = token {
            h.insert(credentials::X_SESSION_TOKEN, HeaderValue::from_str(&t).unwrap());
        }
        let _ = credentials::extract(&h, &session());
    }

    /// Only session cookies are credentials: other cookies, in any order, neither reach whoami
    /// nor change the cache key.
    #[test]
    fn only_session_cookies_are_credentials(pairs in prop::collection::vec(cookie_pair(), 0..8), seed in any::<u64>()) {
        let all: Vec<String> = pairs.iter().map(|(_, p)| p.clone()).collect();
        let sessions: Vec<String> = pairs.iter().filter(|(s, _)| *s).map(|(_, p)| p.clone()).collect();
        let got = credentials::extract(&headers_with_cookies(&all, &[]), &session());
        prop_assert_eq!(got.is_some(), !sessions.is_empty());
        let Some(got) = got else { return Ok(()) };
        let joined = sessions.join("; ");
        prop_assert_eq!(got.cookie.as_deref(), Some(joined.as_str()));
        // The same session cookies, in their order, with other cookies moved around them and
        // split over two Cookie lines: the same key.
        let mut others: Vec<String> = pairs.iter().filter(|(s, _)| !*s).map(|(_, p)| p.clone()).collect();
        others.reverse();
        let mut mixed = Vec::new();
        for (i, s) in sessions.iter().enumerate() {
            if (seed >> i) & 1 == 1 {
                mixed.extend(others.pop());
            }
            mixed.push(s.clone());
        }
        mixed.extend(others);
        let mut h = HeaderMap::new();
        let (a, b) = mixed.split_at(mixed.len() / 2);
        for line in [a, b].into_iter().filter(|l| !l.is_empty()) {
            h.append(actix_web::http::header::COOKIE, HeaderValue::from_str(&line.join("; ")).unwrap());
        }
        let again = credentials::extract(&h, &session()).unwrap();
        prop_assert_eq!(again.key, got.key);
        // Another header carrying the same bytes is another credential.
        let token = credentials::extract(&headers_with_cookies(&all, &[("x-session-token", "t")]), &session()).unwrap();
        prop_assert_ne!(token.key, got.key);
    }
}

// ---- routing and the Ory path check ----

/// Paths built from the pieces that matter: separators, dots, percent-escapes of them in any
/// case, semicolons, backslashes, the Ory prefix.
fn path() -> impl Strategy<Value = String> {
    let piece = prop::sample::select(vec![
        "/",
        ".",
        "..",
        "%2e",
        "%2E",
        "%2f",
        "%2F",
        "%5c",
        "%5C",
        "%25",
        "%",
        "2e",
        ";",
        "\\",
        "a",
        "self-service",
        "?",
        "#",
        "=",
        "%41",
        "%c0%ae",
        "/.ory",
        ".ory",
    ]);
    prop::collection::vec(piece, 0..10).prop_map(|p| p.concat())
}

/// Percent-decodes once, as a gateway in front of Ory might.
fn decode_once(s: &str) -> String {
    percent_decode(s.as_bytes())
}

fn percent_decode(b: &[u8]) -> String {
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            let hex = std::str::from_utf8(&b[i + 1..i + 3])
                .ok()
                .and_then(|h| u8::from_str_radix(h, 16).ok());
            if let Some(v) = hex {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn routing_never_panics(pq in "\\PC{0,60}") {
        let r = route::route(&pq);
        let _ = route::check_ory_path(r.path_and_query);
        let _ = route::path_of(&pq);
    }

    /// `/.ory`, `/.ory/…` and `/.ory?…` go to Ory with the prefix removed once; everything else
    /// goes to the app unchanged.
    #[test]
    fn routing_table(tail in path()) {
        let pq = format!("/{tail}");
        let r = route::route(&pq);
        let ory = pq.strip_prefix("/.ory").filter(|rest| matches!(rest.bytes().next(), None | Some(b'/' | b'?')));
        match ory {
            Some(rest) => {
                prop_assert_eq!(r.upstream, Upstream::Ory);
                prop_assert_eq!(r.path_and_query, rest);
            }
            None => {
                prop_assert_eq!(r.upstream, Upstream::App);
                prop_assert_eq!(r.path_and_query, pq.as_str());
            }
        }
    }

    /// A path the check lets through to Ory has nothing left that decodes into a separator, a
    /// dot segment or a backslash, even decoded once more by a gateway.
    #[test]
    fn an_accepted_ory_path_has_no_hidden_separator_or_dot_segment(tail in path()) {
        let pq = format!("/{tail}");
        if route::check_ory_path(&pq).is_err() {
            return Ok(());
        }
        let path = route::path_of(&pq);
        let lower = path.to_ascii_lowercase();
        for bad in ["%2f", "%5c", "%2e", "%25", "\\"] {
            prop_assert!(!lower.contains(bad), "{:?} passed with {}", pq, bad);
        }
        for p in [path.to_string(), decode_once(path)] {
            prop_assert!(!p.contains('\\'), "{:?}", pq);
            for seg in p.split('/') {
                let seg = seg.split(';').next().unwrap_or("");
                prop_assert!(seg != "." && seg != "..", "{:?} has a dot segment once decoded: {:?}", pq, p);
            }
        }
    }
}

// ---- whoami answers ----

proptest! {
    #![proptest_config(config())]

    #[test]
    fn whoami_parse_never_panics(body in prop::collection::vec(any::<u8>(), 0..200)) {
        let _ = whoami::parse(&body);
    }

    /// A session is only ever an `active` answer with an identity; everything else is no
    /// session for those credentials.
    #[test]
    fn only_an_active_answer_with_an_identity_is_a_session(
        active in proptest::option::of(any::<bool>()),
        id in proptest::option::of("[a-z0-9-]{0,12}"),
        expires in prop::sample::select(vec![None, Some("2999-01-01T00:00:00Z"), Some("2001-01-01T00:00:00Z"), Some("soon")]),
    ) {
        let mut v = serde_json::json!({});
        if let Some(a) = active { v["active"] = a.into(); }
        if let Some(id) = &id { v["identity"] = serde_json::json!({ "id": id }); }
        if let Some(e) = expires { v["expires_at"] = e.into(); }
        let body = serde_json::to_vec(&v).unwrap();
        let got = whoami::parse(&body);
        let session = active == Some(true) && id.is_some() && expires != Some("2001-01-01T00:00:00Z");
        prop_assert_eq!(matches!(got, Whoami::Active(_)), session, "{}", v);
        if let Whoami::Active(s) = got {
            prop_assert_eq!(Some(s.identity_id), id);
            prop_assert_eq!(s.raw.get().as_bytes(), &body[..]);
        }
    }
}
