//! The demo app's only page, as HTML: signed out (links to Ory's login and registration) or
//! signed in (the verified claims and a sign-out link). Elements have stable ids for the tests.

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

/// The page for a visitor without a (valid) token. `note` says why a token was refused.
pub fn signed_out(publish_url: &str, note: Option<&str>) -> String {
    let mut body = String::from(
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
    ];
    let mut body = format!(
        "<p id=\"status\">Signed in as <strong id=\"email\">{}</strong></p>\n\
         <p>The proxy sent an ES256 JWT; the app verified it against \
         <code>/.ory/jwks.json</code>. Its claims:</p>\n<table id=\"claims\">\n",
        esc(&email)
    );
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
