//! The descriptor budget: how many client connections the proxy takes at once so that every
//! accepted request can still open its upstream connection.
//!
//! At start the binary raises the soft `RLIMIT_NOFILE` to the hard limit, as Go and nginx do
//! (the common soft default of 1024 is a leftover of `select`, which nothing here uses). Then
//! the server caps the connections it accepts: each may need up to three descriptors at once
//! (the client's socket, the upstream connection its request is on, and an idle pooled one
//! left by its session lookup to Ory), and some are kept for the process itself (workers'
//! event loops, the file watcher, config and keys reads). When every worker is at its cap,
//! actix-server stops accepting: new connections wait in the listen backlog (and past it are
//! refused by the kernel) instead of being accepted and then failing with "Too many open
//! files" on their way upstream.

/// actix-server's own per-worker default, kept when the descriptor limit allows more.
pub const ACTIX_DEFAULT_MAX_CONNECTIONS: usize = 25_600;

/// Descriptors one client connection may hold at once (see the module doc).
const PER_CONNECTION: u64 = 3;

/// Kept for the process on top of what is open when the cap is computed: per worker an event
/// loop and its waker (and slack), plus the watcher, signal pipes and transient file reads.
fn reserve(workers: usize) -> u64 {
    24 + 4 * workers as u64
}

/// Raises the soft descriptor limit to the hard one; logs at debug what it did.
#[cfg(unix)]
pub fn raise_nofile_limit() {
    let Some((soft, hard)) = nofile_limit() else {
        return;
    };
    if soft >= hard {
        log::debug!("descriptor limit: {} (already the hard limit)", shown(soft));
        return;
    }
    match set_soft_nofile(hard, hard) {
        Ok(()) => log::debug!(
            "descriptor limit: raised the soft limit from {} to the hard limit {}",
            shown(soft),
            shown(hard)
        ),
        // macOS refuses an unlimited soft limit; its per-process ceiling is OPEN_MAX.
        Err(e) => match set_soft_nofile(hard.min(10_240), hard) {
            Ok(()) => log::debug!("descriptor limit: raised from {} to 10240", shown(soft)),
            Err(_) => log::debug!(
                "descriptor limit: cannot raise {} to {} ({e})",
                shown(soft),
                shown(hard)
            ),
        },
    }
}

#[cfg(not(unix))]
pub fn raise_nofile_limit() {}

/// The soft and hard `RLIMIT_NOFILE`, unlimited as `u64::MAX`.
#[cfg(unix)]
// `rlim_t` is u64 on Linux and macOS, not everywhere.
#[allow(clippy::unnecessary_cast)]
pub fn nofile_limit() -> Option<(u64, u64)> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct it is given, nothing else.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return None;
    }
    let n = |v: libc::rlim_t| {
        if v == libc::RLIM_INFINITY {
            u64::MAX
        } else {
            v as u64
        }
    };
    Some((n(lim.rlim_cur), n(lim.rlim_max)))
}

#[cfg(not(unix))]
pub fn nofile_limit() -> Option<(u64, u64)> {
    None
}

/// Sets the soft limit to `soft`, keeping the hard limit `hard` (the caller read it).
#[cfg(unix)]
#[allow(clippy::unnecessary_cast)]
fn set_soft_nofile(soft: u64, hard: u64) -> std::io::Result<()> {
    let raw = |v: u64| {
        if v == u64::MAX {
            libc::RLIM_INFINITY
        } else {
            v as libc::rlim_t
        }
    };
    let lim = libc::rlimit {
        rlim_cur: raw(soft),
        rlim_max: raw(hard),
    };
    // SAFETY: setrlimit reads the struct it is given.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

fn shown(n: u64) -> String {
    if n == u64::MAX {
        "unlimited".into()
    } else {
        n.to_string()
    }
}

/// Descriptors open now (Linux: `/proc/self/fd`); a guess elsewhere.
fn open_now() -> u64 {
    std::fs::read_dir("/proc/self/fd")
        .map(|d| d.count() as u64)
        .unwrap_or(32)
}

/// The per-worker connection cap for `workers` workers under the soft descriptor limit
/// `nofile` with `open` descriptors already in use: never below 1, never above actix's
/// default.
pub fn connection_cap(workers: usize, nofile: u64, open: u64) -> usize {
    let spare = nofile.saturating_sub(open + reserve(workers));
    let total = spare / PER_CONNECTION;
    let per_worker = total / workers.max(1) as u64;
    (per_worker.max(1) as usize).min(ACTIX_DEFAULT_MAX_CONNECTIONS)
}

/// The cap for this process now, logged when the descriptor limit is what sets it.
pub fn connection_cap_now(workers: usize) -> usize {
    let Some((soft, _)) = nofile_limit() else {
        return ACTIX_DEFAULT_MAX_CONNECTIONS;
    };
    let open = open_now();
    let cap = connection_cap(workers, soft, open);
    if cap < ACTIX_DEFAULT_MAX_CONNECTIONS {
        log::info!(
            "descriptor limit {soft}: at most {} client connections at once ({cap} per worker; \
             each may need {PER_CONNECTION} descriptors); more wait to be accepted. Raise the \
             hard limit (ulimit -Hn, LimitNOFILE=) for more",
            cap * workers
        );
    } else {
        log::debug!(
            "descriptor limit {}: {cap} connections per worker",
            shown(soft)
        );
    }
    cap
}

/// The number of workers: actix-server's own default, so the cap is split the way it runs.
pub fn workers() -> usize {
    std::thread::available_parallelism()
        .map_or(2, std::num::NonZeroUsize::get)
        .min(512)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cap_leaves_room_for_upstream_connections() {
        // 1024 descriptors, 20 open, 2 workers: (1024 - 20 - 32) / 3 / 2 = 162.
        assert_eq!(connection_cap(2, 1024, 20), 162);
        let cap = connection_cap(2, 1024, 20) as u64;
        assert!(20 + reserve(2) + 2 * cap * PER_CONNECTION <= 1024);
        // Large limits keep actix's default; tiny ones still accept something.
        assert_eq!(
            connection_cap(4, u64::MAX, 20),
            ACTIX_DEFAULT_MAX_CONNECTIONS
        );
        assert_eq!(
            connection_cap(4, 1_048_576, 20),
            ACTIX_DEFAULT_MAX_CONNECTIONS
        );
        assert_eq!(connection_cap(2, 40, 30), 1);
    }

    #[cfg(unix)]
    #[test]
    fn the_limit_can_be_read() {
        let (soft, hard) = nofile_limit().unwrap();
        assert!(soft <= hard);
    }
}
