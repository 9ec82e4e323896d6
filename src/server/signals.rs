//! What the server does on signals. SIGINT and SIGTERM both stop gracefully: no new
//! connections, requests in flight finish (up to [`SHUTDOWN_GRACE`]); a second signal stops at
//! once, with the shell's exit code for death by that signal. (actix's own handling treats
//! SIGINT as a forced stop, so it is switched off.) SIGHUP and SIGUSR1 belong to the watchers
//! and the key actor; when none of them runs, they are logged and ignored.
//!
//! For load balancers, SIGTERM first drains: readiness answers 503 at once, and for
//! `shutdown_delay` everything else is still accepted and served as usual, so that the
//! balancer (a Kubernetes Service's endpoints) stops sending new connections before the
//! listener closes. SIGINT (Ctrl-C at a terminal) skips the delay.

use std::sync::atomic::Ordering;
use std::time::Duration;

use actix_web::dev::ServerHandle;
use actix_web::web;

#[cfg(unix)]
use super::logging;
use crate::proxy::ProxyState;

/// How long in-flight requests may run on after SIGINT/SIGTERM (after `shutdown_delay`).
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Handles SIGINT and SIGTERM for the server behind `handle` (a task on the current runtime).
#[cfg(unix)]
pub fn on_stop_signals(handle: ServerHandle, state: web::Data<ProxyState>) {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut int), Ok(mut term)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) else {
        return;
    };
    let delay = state.fixed.shutdown_delay;
    actix_web::rt::spawn(async move {
        let by_term = tokio::select! { _ = int.recv() => false, _ = term.recv() => true };
        state.draining.store(true, Ordering::Relaxed);
        if by_term && !delay.is_zero() {
            log::info!(
                "SIGTERM: readiness answers 503 from now on; serving as usual for {} more (shutdown_delay), then finishing requests in flight (signal again to stop now)",
                humantime::format_duration(delay)
            );
            tokio::select! {
                _ = int.recv() => stop_now(128 + 2),
                _ = term.recv() => stop_now(128 + 15),
                () = tokio::time::sleep(delay) => {}
            }
        }
        log::info!(
            "shutting down: finishing requests in flight (at most {}s; signal again to stop now)",
            SHUTDOWN_GRACE.as_secs()
        );
        let graceful = actix_web::rt::spawn(handle.stop(true));
        // actix-server handles one stop command at a time, so a forced stop sent now would only
        // run after the graceful one: the second signal exits directly.
        tokio::select! {
            _ = int.recv() => stop_now(128 + 2),
            _ = term.recv() => stop_now(128 + 15),
            _ = graceful => {}
        }
    });
}

#[cfg(not(unix))]
pub fn on_stop_signals(_: ServerHandle, _: web::Data<ProxyState>) {}

/// Logs and ignores SIGHUP (`hup`: no `proxy.toml` and no certificate to re-read; a habitual
/// `kill -HUP` or `systemctl reload` must not kill the daemon) and SIGUSR1 (`usr1`: no JWT keys
/// to rotate).
#[cfg(unix)]
pub fn ignore_unowned(hup: bool, usr1: bool) {
    use tokio::signal::unix::{signal, SignalKind};
    let unowned = [
        (
            hup,
            SignalKind::hangup(),
            "SIGHUP: no proxy.toml or TLS certificate in use, nothing to reload",
        ),
        (
            usr1,
            SignalKind::user_defined1(),
            "SIGUSR1: no JWT keys to rotate (--no-jwt)",
        ),
    ];
    for (_, kind, line) in unowned.into_iter().filter(|(on, _, _)| *on) {
        if let Ok(mut s) = signal(kind) {
            actix_web::rt::spawn(async move {
                while s.recv().await.is_some() {
                    log::info!("{line}");
                }
            });
        }
    }
}

#[cfg(not(unix))]
pub fn ignore_unowned(_: bool, _: bool) {}

/// The second signal: requests in flight are cut.
#[cfg(unix)]
fn stop_now(code: i32) -> ! {
    log::warn!("second signal: stopping now, requests in flight are cut");
    logging::flush_before_exit();
    std::process::exit(code);
}
