//! Reading the `Cookie` header and writing Kratos-style `Set-Cookie` lines (absolute `Domain`
//! of the base URL, `Secure; SameSite=None` or `SameSite=Lax`).

use actix_web::http::header;
use actix_web::HttpRequest;

use super::config::Settings;

/// Value of the first cookie called `name` (the `cookies` feature of actix-web is off, and a
/// tolerant split is all a test double needs).
pub(crate) fn get(req: &HttpRequest, name: &str) -> Option<String> {
    req.headers()
        .get_all(header::COOKIE)
        .filter_map(|v| v.to_str().ok())
        .flat_map(|line| line.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v.trim_matches('"').to_owned())
}

fn security_attributes(settings: &Settings) -> &'static str {
    if settings.secure_cookies {
        "; Secure; SameSite=None"
    } else {
        "; SameSite=Lax"
    }
}

/// `name=value; Path=/; Domain=<host>; Max-Age=<secs>; HttpOnly` + security attributes.
pub(crate) fn set(settings: &Settings, name: &str, value: &str, max_age_secs: u64) -> String {
    format!(
        "{name}={value}; Path=/; Domain={}; Max-Age={max_age_secs}; HttpOnly{}",
        settings.cookie_domain,
        security_attributes(settings)
    )
}

/// A `Set-Cookie` that makes the browser forget `name`.
pub(crate) fn clear(settings: &Settings, name: &str) -> String {
    format!(
        "{name}=; Path=/; Domain={}; Max-Age=0; Expires=Thu, 01 Jan 1970 00:00:00 GMT; HttpOnly{}",
        settings.cookie_domain,
        security_attributes(settings)
    )
}

/// The session cookie for a new session.
pub(crate) fn session(settings: &Settings, token: &str) -> String {
    set(
        settings,
        &settings.session_cookie_name,
        token,
        settings.session_lifespan.as_secs(),
    )
}

/// The CSRF cookie; a year like Kratos, since it outlives any single flow.
pub(crate) fn csrf(settings: &Settings, token: &str) -> String {
    set(
        settings,
        &settings.csrf_cookie_name,
        token,
        365 * 24 * 60 * 60,
    )
}
