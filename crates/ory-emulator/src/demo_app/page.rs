//! The demo app's pages, as HTML: the home page signed out (links to Ory's login and
//! registration) or signed in (the verified claims and a sign-out link), and the two protected
//! pages. Elements have stable ids for the tests.

use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::Value;

use ory_proxy::html::escape as esc;

fn layout(body: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <title>ory-proxy demo app</title>\n<style>\n\
         body {{ font-family: sans-serif; max-width: 46rem; margin: 2rem auto; line-height: 1.5; }}\n\
         th {{ text-align: left; padding-right: 1rem; vertical-align: top; }}\n\
         td {{ font-family: monospace; word-break: break-all; }}\n\
         pre {{ background: #f4f4f4; padding: 0.5rem; overflow-x: auto; }}\n\
         </style>\n</head>\n<body>\n<main>\n<h1>ory-proxy demo app</h1>\n{body}</main>\n\
         </body>\n</html>\n"
    )
}

/// A link that starts one of Ory's browser flows through the proxy and comes back to the app.
fn flow_link(flow: &str, publish_url: &str) -> String {
    let query = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("return_to", &format!("{publish_url}/"))
        .finish();
    format!("/.ory/self-service/{flow}/browser?{query}")
}

/// Links to the protected pages, on every page.
fn nav() -> &'static str {
    "<nav><a id=\"home-link\" href=\"/\">Home</a> · \
     <a id=\"account-link\" href=\"/account\">Account</a> (any signed-in user) · \
     <a id=\"admin-link\" href=\"/admin\">Admin</a> (second factor required)</nav>\n"
}

/// The page for a visitor without a (valid) token. `note` says why a token was refused.
pub fn signed_out(publish_url: &str, note: Option<&str>) -> String {
    let mut body = String::from(nav());
    body.push_str(
        "<p id=\"status\">Signed out</p>\n\
         <p>The proxy sent no <code>Authorization</code> header: this visitor has no active \
         Ory session.</p>\n",
    );
    if let Some(note) = note {
        body.push_str(&format!(
            "<p id=\"note\">Token refused: {}</p>\n",
            esc(note)
        ));
    }
    body.push_str(&format!(
        "<p><a id=\"login\" href=\"{}\">Sign in</a> or \
         <a id=\"registration\" href=\"{}\">create an account</a>.</p>\n",
        esc(&flow_link("login", publish_url)),
        esc(&flow_link("registration", publish_url)),
    ));
    layout(&body)
}

/// `claims[path]` as display text: strings without quotes, anything else as JSON.
fn claim(claims: &Value, pointer: &str) -> String {
    match claims.pointer(pointer) {
        Some(Value::String(s)) => s.clone(),
        Some(v) => v.to_string(),
        None => "(missing)".to_owned(),
    }
}

/// The page for a visitor whose token verified. `logout` is the sign-out URL, or why there is
/// none.
pub fn signed_in(claims: &Value, logout: Result<&str, &str>) -> String {
    let email = claim(claims, "/session/identity/traits/email");
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let exp = match claims.get("exp").and_then(Value::as_i64) {
        Some(exp) => format!("{exp} (in {} s)", exp - now),
        None => claim(claims, "/exp"),
    };
    let rows = [
        ("iss", claim(claims, "/iss")),
        ("sub", claim(claims, "/sub")),
        ("exp", exp),
        ("session.identity.traits.email", email.clone()),
        (
            "session.authenticator_assurance_level",
            claim(claims, "/session/authenticator_assurance_level"),
        ),
    ];
    let mut body = String::from(nav());
    body.push_str(&format!(
        "<p id=\"status\">Signed in as <strong id=\"email\">{}</strong></p>\n\
         <p>The proxy sent an ES256 JWT; the app verified it against \
         <code>/.ory/jwks.json</code>. Its claims:</p>\n<table id=\"claims\">\n",
        esc(&email)
    ));
    for (name, value) in rows {
        let id = name.rsplit('.').next().unwrap_or(name);
        body.push_str(&format!(
            "<tr><th>{name}</th><td id=\"claim-{id}\">{}</td></tr>\n",
            esc(&value)
        ));
    }
    body.push_str("</table>\n");
    let pretty = serde_json::to_string_pretty(claims).unwrap_or_default();
    body.push_str(&format!(
        "<details><summary>All claims</summary>\n<pre id=\"all-claims\">{}</pre>\n</details>\n",
        esc(&pretty)
    ));
    match logout {
        Ok(url) => body.push_str(&format!(
            "<p><a id=\"logout\" href=\"{}\">Sign out</a></p>\n",
            esc(url)
        )),
        Err(why) => body.push_str(&format!(
            "<p id=\"note\">No sign-out link: {}</p>\n",
            esc(why)
        )),
    }
    layout(&body)
}

/// The two pages the demo's access rules protect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protected {
    /// `/account`: the `session` rule.
    Account,
    /// `/admin`: the `aal2` rule.
    Admin,
}

/// The identity headers the proxy set (the demo's `[access].identity_headers`).
pub struct IdentityHeaders {
    pub email: Option<String>,
    pub user: Option<String>,
}

/// A protected page: who the proxy let in, at which assurance level, and what was asked for.
/// `claims` is the verified token, or why there is none (which the proxy's rules should make
/// impossible: the page says so loudly).
pub fn protected(
    which: Protected,
    claims: Result<&Value, &String>,
    headers: &IdentityHeaders,
    asked: &str,
) -> String {
    let (title, rule) = match which {
        Protected::Account => (
            "Account",
            "<code>require = \"session\"</code>: any signed-in user",
        ),
        Protected::Admin => (
            "Admin",
            "<code>require = \"aal2\"</code>: signed in with a second factor",
        ),
    };
    let mut body = String::from(nav());
    body.push_str(&format!(
        "<h2 id=\"page\">{title}</h2>\n<p>The proxy protects this page ({rule}); the app \
         checks nothing itself.</p>\n"
    ));
    match claims {
        Ok(claims) => body.push_str(&format!(
            "<p id=\"status\">Signed in as <strong id=\"email\">{}</strong> at \
             <strong id=\"aal\">{}</strong></p>\n",
            esc(&claim(claims, "/session/identity/traits/email")),
            esc(&claim(claims, "/session/authenticator_assurance_level")),
        )),
        Err(why) => body.push_str(&format!(
            "<p id=\"status\">Not signed in: {} (the proxy's rules should not let this \
             happen)</p>\n",
            esc(why)
        )),
    }
    let shown = |h: &Option<String>| h.as_deref().map_or_else(|| "(not set)".to_owned(), esc);
    body.push_str(&format!(
        "<p>Identity headers from the proxy:</p>\n<table id=\"identity-headers\">\n\
         <tr><th>{}</th><td id=\"header-email\">{}</td></tr>\n\
         <tr><th>{}</th><td id=\"header-user\">{}</td></tr>\n</table>\n\
         <p>Asked for: <code id=\"asked\">{}</code></p>\n",
        super::stack::EMAIL_HEADER,
        shown(&headers.email),
        super::stack::USER_HEADER,
        shown(&headers.user),
        esc(asked),
    ));
    layout(&body)
}
