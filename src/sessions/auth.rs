//! What the session lookup decides for one app-bound request, as the request path reads it.

use std::sync::Arc;

use actix_web::http::header::HeaderValue;

use super::mint::Minted;

/// What the proxy does with an app-bound request's `Authorization`.
#[derive(Debug, Clone)]
pub enum Auth {
    /// An active session: `Authorization: Bearer <jwt>`, with the session's facts and identity
    /// headers.
    Jwt(Arc<Minted>),
    /// Credentials, but no active session.
    Anonymous,
    /// A session Ory shows only at `aal2`: anonymous to the app, a step-up for the rules.
    Aal2Required,
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
            Auth::Aal2Required => "aal2-required",
            Auth::NoCredentials => "none",
            Auth::Unavailable => "ory-unavailable",
        }
    }

    pub fn header(&self) -> Option<&HeaderValue> {
        match self {
            Auth::Jwt(m) => Some(&m.header),
            _ => None,
        }
    }

    /// The session's token and facts, if it has one.
    pub fn session(&self) -> Option<&Minted> {
        match self {
            Auth::Jwt(m) => Some(m),
            _ => None,
        }
    }
}
