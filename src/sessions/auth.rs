//! What the session lookup decides for one app-bound request, as the request path reads it.

use actix_web::http::header::HeaderValue;

/// What the proxy does with an app-bound request's `Authorization`.
#[derive(Debug, Clone)]
pub enum Auth {
    /// An active session: `Authorization: Bearer <jwt>`.
    Jwt(HeaderValue),
    /// Credentials, but no active session.
    Anonymous,
    /// No credential in the request: no lookup was made.
    NoCredentials,
    /// Ory could not answer; the request goes on anonymous.
    Unavailable,
}

impl Auth {
    pub fn label(&self) -> &'static str {
        match self {
            Auth::Jwt(_) => "jwt",
            Auth::Anonymous => "anonymous",
            Auth::NoCredentials => "none",
            Auth::Unavailable => "ory-unavailable",
        }
    }

    pub fn header(&self) -> Option<&HeaderValue> {
        match self {
            Auth::Jwt(h) => Some(h),
            _ => None,
        }
    }
}
