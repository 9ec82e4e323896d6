//! A local Ory (Kratos public API) emulator for the integration tests, the demo and the
//! benchmarks. Not used by the proxy itself.
//!
//! It speaks the part of the Kratos public API a proxy user touches — `/sessions/whoami`, the
//! browser login, registration and logout flows, `/health/*` — with the JSON shapes of Kratos'
//! OpenAPI document, plus a minimal hosted UI under `/ui/`. Like self-hosted Kratos it writes
//! absolute URLs on its own base URL (Location headers, form actions, links), so a proxy in front
//! of it has to rewrite them for real.
//!
//! ```no_run
//! use ory_proxy::emulator::{Emulator, EmulatorConfig};
//! let ory = Emulator::start(EmulatorConfig::default()).unwrap();
//! let session = ory.create_session("someone@example.org");
//! println!("curl -H 'Cookie: {}' {}/sessions/whoami", session.cookie, ory.url());
//! ```

mod config;
mod context;
mod cookies;
pub mod demo_app;
mod error;
mod flows;
mod handle;
mod login;
mod logout;
mod meta;
mod middleware;
mod model;
mod registration;
mod respond;
mod server;
mod state;
mod ui;
mod whoami;

pub use config::EmulatorConfig;
pub use handle::{Emulator, RecordedRequest, TestSession};
pub use state::REQUEST_LOG_WINDOW;

/// Email of the identity every emulator starts with.
pub const DEMO_EMAIL: &str = "demo@example.org";
/// Password of [`DEMO_EMAIL`].
pub const DEMO_PASSWORD: &str = "demo-password-123";
