//! What every handler receives: the shared store and the server's settings.

use std::sync::Arc;

use actix_web::HttpRequest;

use super::config::Settings;
use super::cookies;
use super::respond;
use super::state::{Device, Identity, Session, Store};

pub(crate) struct Ctx {
    pub store: Arc<Store>,
    pub settings: Settings,
}

impl Ctx {
    /// The session token in the request's session cookie, if any.
    pub fn cookie_token(&self, req: &HttpRequest) -> Option<String> {
        cookies::get(req, &self.settings.session_cookie_name).filter(|t| !t.is_empty())
    }

    /// The active session carried by the session cookie (browser endpoints accept only that).
    pub fn cookie_session(&self, req: &HttpRequest) -> Option<(Session, Identity)> {
        let token = self.cookie_token(req)?;
        self.store.active_session(&token)
    }

    /// A new session for `identity`, recording the requesting device.
    pub fn start_session(&self, identity: &Identity, req: &HttpRequest) -> Session {
        let device = Device {
            id: super::state::new_id(),
            ip_address: respond::client_ip(req),
            user_agent: respond::user_agent(req),
        };
        self.store
            .create_session(&identity.id, self.settings.session_lifespan, device)
    }
}
