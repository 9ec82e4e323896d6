//! The benchmark's Ory: the local emulator with a configurable whoami latency. Prints
//! `URL=<url>` and `COOKIE=<session cookie>` on stdout, and keeps `<stats file>` updated with
//! the number of whoami calls it answered.
//!
//!     cargo run --release --example bench_ory -- <whoami delay ms> <stats file>

use std::time::Duration;

use ory_emulator::{Emulator, EmulatorConfig, DEMO_EMAIL};

fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let delay_ms: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(0);
    let stats = args.next().unwrap_or_else(|| "/tmp/bench-ory-stats".into());
    let emu = Emulator::start(EmulatorConfig {
        whoami_delay: Duration::from_millis(delay_ms),
        session_lifespan: Duration::from_secs(24 * 3600),
        ..Default::default()
    })?;
    emu.set_recording(false);
    let session = emu.create_session(DEMO_EMAIL);
    println!("URL={}", emu.url());
    println!("COOKIE={}", session.cookie);
    loop {
        std::fs::write(&stats, emu.whoami_calls().to_string())?;
        std::thread::sleep(Duration::from_millis(100));
    }
}
