//! What the watcher's parts share: its timings, the command the handle sends the actor, and
//! what one reload did. A leaf, so that `fs` and `reload` need not import their parent.

use std::time::Duration;

use tokio::sync::oneshot;

/// Quiet time before a burst of filesystem events becomes one reload. Editors write in a few
/// steps within milliseconds; 150 ms merges them and still applies an edit well within 2 s.
pub const DEBOUNCE: Duration = Duration::from_millis(150);

/// How often `watch = "poll"` reads the file.
pub const POLL_INTERVAL: Duration = Duration::from_millis(500);

/// How long a missing or empty file may stay so before it counts: vim's save renames the file
/// away before writing the new one, and truncate-then-write has an empty moment. Neither should
/// log a deletion or apply an empty configuration.
pub const SETTLE: Duration = Duration::from_millis(400);

/// What one reload did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReloadOutcome {
    /// The file's content is what was read last time: nothing to do.
    Unchanged,
    /// The file was read and validated.
    Loaded {
        /// Live keys whose new values now serve requests (empty: no live key changed).
        applied: Vec<String>,
        /// Keys that changed but need a restart; not applied.
        needs_restart: Vec<String>,
        /// Keys the file changed but a flag or env var pins; ignored.
        pinned: Vec<String>,
    },
    /// The file is invalid; the running settings stay. Holds the error line.
    Invalid(String),
    /// The file does not exist; the running settings stay.
    Missing,
    /// The file exists but cannot be read; the running settings stay.
    Unreadable(String),
    /// The file is empty or missing right now; it is looked at again after [`SETTLE`].
    Settling,
}

pub(super) enum Command {
    Reload(oneshot::Sender<ReloadOutcome>),
}
