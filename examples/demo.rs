//! `cargo run --release --example demo`: the proxy in front of a small app, with a local Ory
//! emulator instead of an Ory account — nothing to install, no network.
//!
//! Open the printed URL, sign in with the printed credentials, and the app shows the claims of
//! the JWT the proxy sent it (the app's code is `crates/ory-emulator/src/demo_app/`). The
//! proxy's access rules protect `/account` (any signed-in user) and `/admin` (a second factor:
//! the printed one-time code); they are in the printed `proxy.toml`, reloaded live when edited.
//! Ctrl-C stops all three pieces.

use clap::Parser;
use ory_emulator::demo_app::{DemoOptions, DemoStack};
use ory_emulator::{DEMO_EMAIL, DEMO_PASSWORD};

/// The demo's flags: only where to listen.
#[derive(Parser)]
#[command(about = "ory-proxy demo: a local Ory emulator, a small app and the proxy")]
struct Args {
    /// The proxy's port
    #[arg(long, env = "PORT", default_value_t = 4000)]
    port: u16,
}

#[actix_web::main]
async fn main() -> std::process::ExitCode {
    let args = Args::parse();
    env_logger::Builder::from_env(
        env_logger::Env::default().default_filter_or("info,actix_server=warn"),
    )
    .format_timestamp_millis()
    .init();
    // The filter above (or RUST_LOG) decides the level, not the proxy's own default.
    ory_proxy::config::log_level_owned_by_env();

    let stack = match DemoStack::start(DemoOptions {
        port: Some(args.port),
        publish_url: None,
    }) {
        Ok(stack) => stack,
        Err(e) => {
            eprintln!("demo: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    println!();
    println!("  ory-proxy demo is running. Open {}", stack.url());
    println!("  Sign in with {DEMO_EMAIL} / {DEMO_PASSWORD} (or create an account).");
    println!(
        "  Second factor (for /admin): the one-time code {}",
        stack.emulator().second_factor_code()
    );
    println!(
        "  Access rules: {} (edit it: reloaded live)",
        stack.config_path().display()
    );
    println!("  Behind the proxy: the app on {}", stack.app_url());
    println!(
        "                    Ory (emulator) on {}",
        stack.emulator().url()
    );
    println!("  Ctrl-C stops everything.");
    println!();

    match stack.wait().await {
        Ok(()) => {
            println!("demo: stopped");
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("demo: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
