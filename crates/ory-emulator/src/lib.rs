//! A local Ory (Kratos public API) emulator for ory-proxy's integration tests, demo and
//! benchmarks. A crate of its own: the proxy does not depend on it (only its tests, examples and
//! benches do). It uses the proxy's library for [`demo_app::DemoStack`], which starts the proxy,
//! and for the proxy's HTML escaper.
//!
//! It speaks the part of the Kratos public API a proxy user touches — `/sessions/whoami`, the
//! browser login, registration and logout flows, `/health/*` — with the JSON shapes of Kratos'
//! OpenAPI document, plus a minimal hosted UI under `/ui/`. A second factor (a one-time code,
//! Kratos' `totp` method) upgrades a session from `aal1` to `aal2` through the login flow's
//! `?aal=aal2` step-up, and `return_to` can be checked against allowed URLs as Kratos does. Like self-hosted Kratos it writes
//! absolute URLs on its own base URL (Location headers, form actions, links), so a proxy in front
//! of it has to rewrite them for real.
//!
//! ```no_run
//! use ory_emulator::{Emulator, EmulatorConfig};
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
mod return_to;
mod second_factor;
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
