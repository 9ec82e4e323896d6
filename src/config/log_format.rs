//! `log_format`: how log lines are written. Declared here, beside the other typed settings,
//! so that the server's log front reads it from the config and not the other way round. The
//! format in force is process-wide, as the log output is: the watcher sets it on a reload, the
//! log front reads it for every line.

use std::sync::atomic::{AtomicU8, Ordering::Relaxed};

static CURRENT: AtomicU8 = AtomicU8::new(LogFormat::Text as u8);

/// The log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// `[time LEVEL target] message`, as env_logger writes it.
    Text,
    /// One JSON object per line.
    Json,
}

impl std::str::FromStr for LogFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "text" => Ok(LogFormat::Text),
            "json" => Ok(LogFormat::Json),
            other => Err(format!(
                "unknown log format {other:?} (expected \"text\" or \"json\")"
            )),
        }
    }
}

impl LogFormat {
    /// The format lines are written in from now on (live).
    pub fn set_current(self) {
        CURRENT.store(self as u8, Relaxed);
    }

    /// The format in force.
    pub fn current() -> LogFormat {
        if CURRENT.load(Relaxed) == LogFormat::Json as u8 {
            LogFormat::Json
        } else {
            LogFormat::Text
        }
    }
}
