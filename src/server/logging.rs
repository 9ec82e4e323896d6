//! The logging front: env_logger decides what is logged (`RUST_LOG`, the live level), this
//! module formats the records (text, as env_logger's default format, or one JSON object per
//! line) on the thread that logs, and [`log_sink`](super::log_sink) writes them off that
//! thread.
//!
//! The records are formatted here rather than by env_logger's own formatter because its
//! output to anything but stderr goes through a process-wide mutex, a fresh allocation and an
//! escape-code filter per record (measured in `bench/log.rs`); its filter is kept as it is.

use std::cell::RefCell;
use std::fmt::Write as _;
use std::io::{IsTerminal as _, Write as _};
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::OnceLock;
use std::time::Duration;

use log::{Level, Log, Metadata, Record};

use super::log_fields::{
    indent_continuations, json_field, millis, padded, push_u64, text_value, timestamp,
};
use super::log_sink::LogSink;

/// How long start-up (before the banner) and shutdown wait for the log lines so far to be
/// written: the output may be stuck, and a stuck stderr must not keep the proxy from exiting.
pub const FLUSH_LIMIT: Duration = Duration::from_secs(2);

pub use crate::config::LogFormat;

/// Whether the level is coloured (stderr is a terminal), as env_logger does.
static COLOR: AtomicBool = AtomicBool::new(false);
static SINK: OnceLock<LogSink> = OnceLock::new();

/// Installs the logger: `RUST_LOG` if set, else the proxy at `--debug`'s or the default level
/// and chatty libraries at info.
pub fn init(debug: bool) {
    let stderr = std::io::stderr();
    COLOR.store(stderr.is_terminal(), Relaxed);
    init_with_output(debug, Box::new(stderr));
}

/// [`init`] writing to `out` (the log benchmark), without colours.
pub fn init_with_output(debug: bool, out: Box<dyn std::io::Write + Send>) {
    let mut b = env_logger::Builder::new();
    if let Ok(spec) = std::env::var("RUST_LOG") {
        b.parse_filters(&spec);
        crate::config::log_level_owned_by_env();
    } else {
        // The proxy's own level is set (and reloaded) through log::set_max_level; libraries
        // stay at info so --debug shows the proxy's decisions, not every socket poll.
        b.filter_level(log::LevelFilter::Trace);
        for noisy in [
            "actix_server",
            "actix_http",
            "awc",
            "rustls",
            "mio",
            "h2",
            "notify",
            "actix_rt",
        ] {
            b.filter_module(noisy, log::LevelFilter::Info);
        }
    }
    let filter = b.build();
    let max = filter.filter();
    let access = Metadata::builder()
        .target(crate::config::ACCESS_LOG_TARGET)
        .level(Level::Info)
        .build();
    let access_on = filter.enabled(&access);
    // Without a thread for the writer, lines go straight to stderr (see `send`).
    if let Ok(sink) = LogSink::start(out, drop_warning) {
        let _ = SINK.set(sink);
    }
    if log::set_boxed_logger(Box::new(Front { filter })).is_ok() {
        log::set_max_level(max);
        // The filter is fixed from here on: asked once, not on every request.
        crate::config::set_access_log_filter(access_on);
    }
    // Without RUST_LOG the filter is wide open and the level comes from here (and later from
    // proxy.toml).
    crate::config::apply_log_level(if debug {
        log::LevelFilter::Debug
    } else {
        log::LevelFilter::Info
    });
}

/// Writes every line logged so far, waiting at most `limit`; for start-up (before the banner)
/// and shutdown. Returns whether it was all written.
pub fn flush(limit: Duration) -> bool {
    SINK.get().is_none_or(|sink| sink.flush(limit))
}

/// Writes `text` as it is (the banner, the last words), in order with the log lines and
/// without ever blocking on a stuck output; then waits up to `limit` for it to be written.
pub fn print(text: &str, limit: Duration) {
    send(text.as_bytes());
    flush(limit);
}

/// Writes every line logged so far, on the way out, waiting at most [`FLUSH_LIMIT`] — unless an
/// earlier flush on the way out already ran out of time: the last words, an error's line and
/// [`FlushOnExit`] each flush, and a stuck output must hold the exit up once, not once each.
/// (A healthy output gets its full limit every time.)
pub fn flush_before_exit() {
    static STUCK: AtomicBool = AtomicBool::new(false);
    let limit = if STUCK.load(Relaxed) {
        Duration::ZERO
    } else {
        FLUSH_LIMIT
    };
    if !flush(limit) {
        STUCK.store(true, Relaxed);
    }
}

/// [`print`] on the way out, within [`flush_before_exit`]'s limit. The proxy's last line (its
/// stop, or the error it stops on) goes this way rather than straight to stderr, which would
/// block for good on a stderr nobody reads.
pub fn print_before_exit(text: &str) {
    send(text.as_bytes());
    flush_before_exit();
}

/// Flushes the log when dropped: held for the life of `main_with`, so that every way out
/// writes the last lines.
pub struct FlushOnExit;

impl Drop for FlushOnExit {
    fn drop(&mut self) {
        flush_before_exit();
    }
}

/// The installed logger: env_logger's filter, this module's formats, the sink.
struct Front {
    filter: env_logger::Logger,
}

impl Log for Front {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        self.filter.enabled(metadata)
    }

    fn log(&self, record: &Record<'_>) {
        if self.filter.matches(record) {
            emit(record.level(), record.target(), |buf| {
                let _ = write!(buf, "{}", record.args());
            });
        }
    }

    fn flush(&self) {
        flush(FLUSH_LIMIT);
    }
}

/// The fields of one access line.
pub struct Access<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub status: u16,
    pub duration: Duration,
    pub upstream: &'a str,
    pub auth: &'a str,
    /// The access rule met, `-` when none applies.
    pub rule: &'a str,
    /// What it decided, `-` when no rule applies.
    pub decision: &'a str,
}

/// Writes an access line under `target` at info level (the caller checked that it is on).
pub fn access(target: &str, a: &Access<'_>) {
    with_line(|line, scratch| {
        match LogFormat::current() {
            // push_str rather than write!: the formatting machinery costs as much as the rest
            // of the line.
            LogFormat::Text => {
                text_header(line, Level::Info, target);
                line.push_str(a.method);
                line.push(' ');
                line.push_str(a.path);
                line.push(' ');
                push_u64(line, a.status.into());
                line.push(' ');
                millis(line, a.duration);
                line.push_str("ms upstream=");
                line.push_str(a.upstream);
                line.push_str(" auth=");
                line.push_str(a.auth);
                line.push_str(" rule=");
                text_value(line, a.rule);
                line.push_str(" decision=");
                line.push_str(a.decision);
            }
            LogFormat::Json => {
                let _ = write!(scratch, "{} {} {}", a.method, a.path, a.status);
                json_header(line, Level::Info, target, scratch);
                json_field(line, "method", a.method);
                json_field(line, "path", a.path);
                line.push_str(",\"status\":");
                push_u64(line, a.status.into());
                line.push_str(",\"duration_ms\":");
                millis(line, a.duration);
                json_field(line, "upstream", a.upstream);
                json_field(line, "auth", a.auth);
                json_field(line, "rule", a.rule);
                json_field(line, "decision", a.decision);
                line.push('}');
            }
        }
        line.push('\n');
    });
}

/// Formats one record with its message written by `msg`, and hands it to the sink.
fn emit(level: Level, target: &str, msg: impl FnOnce(&mut String)) {
    with_line(|line, scratch| {
        match LogFormat::current() {
            LogFormat::Text => {
                text_header(line, level, target);
                let start = line.len();
                msg(line);
                indent_continuations(line, start);
            }
            LogFormat::Json => {
                msg(scratch);
                json_header(line, level, target, scratch);
                line.push('}');
            }
        }
        line.push('\n');
    });
}

/// Runs `f` with this thread's (cleared) line and scratch buffers, then sends the line.
fn with_line(f: impl FnOnce(&mut String, &mut String)) {
    thread_local! {
        static BUFS: RefCell<(String, String)> = const { RefCell::new((String::new(), String::new())) };
    }
    let mut f = Some(f);
    let mut run = |bufs: &mut (String, String)| {
        let Some(f) = f.take() else { return };
        bufs.0.clear();
        bufs.1.clear();
        f(&mut bufs.0, &mut bufs.1);
        send(bufs.0.as_bytes());
        // A record far larger than usual does not keep its memory on every thread.
        if bufs.0.capacity() > 64 * 1024 {
            *bufs = Default::default();
        }
    };
    let done = BUFS
        .try_with(|b| match b.try_borrow_mut() {
            Ok(mut b) => {
                run(&mut b);
                true
            }
            // Re-entered (a message's Display logged): fresh buffers below.
            Err(_) => false,
        })
        .unwrap_or(false);
    if !done {
        run(&mut Default::default());
    }
}

fn send(line: &[u8]) {
    match SINK.get() {
        Some(sink) => sink.line(line),
        // Before init (or without a sink): straight to stderr.
        None => {
            let _ = std::io::stderr().write_all(line);
        }
    }
}

/// `[2026-01-02T03:04:05.678Z INFO  target] `, as env_logger's default format writes it.
fn text_header(line: &mut String, level: Level, target: &str) {
    if COLOR.load(Relaxed) {
        let color = match level {
            Level::Error => "31",
            Level::Warn => "33",
            Level::Info => "32",
            Level::Debug => "34",
            Level::Trace => "36",
        };
        line.push_str("\x1b[2m[\x1b[0m");
        timestamp(line);
        let _ = write!(
            line,
            " \x1b[{color}m{level:<5}\x1b[0m {target}\x1b[2m]\x1b[0m "
        );
    } else {
        line.push('[');
        timestamp(line);
        line.push(' ');
        line.push_str(padded(level));
        line.push(' ');
        line.push_str(target);
        line.push_str("] ");
    }
}

/// `{"time":…,"level":…,"target":…,"msg":…` (the caller adds further fields and the `}`).
fn json_header(line: &mut String, level: Level, target: &str, msg: &str) {
    line.push_str("{\"time\":\"");
    timestamp(line);
    let _ = write!(line, "\",\"level\":\"{level}\"");
    json_field(line, "target", target);
    json_field(line, "msg", msg);
}

/// One JSON record (with its newline) with string `fields` after the usual ones.
pub fn json_record(level: Level, target: &str, msg: &str, fields: &[(&str, String)]) -> String {
    let mut line = String::new();
    json_header(&mut line, level, target, msg);
    for (k, v) in fields {
        json_field(&mut line, k, v);
    }
    line.push_str("}\n");
    line
}

/// The line written once when the output first lost lines.
fn drop_warning(n: u64) -> Vec<u8> {
    let mut line = String::new();
    let target = "ory_proxy::log";
    let msg = format!(
        "the log output (stderr) is not keeping up: {n} log lines dropped so far (see ory_proxy_log_lines_dropped_total)"
    );
    match LogFormat::current() {
        LogFormat::Text => {
            text_header(&mut line, Level::Warn, target);
            line.push_str(&msg);
        }
        LogFormat::Json => {
            json_header(&mut line, Level::Warn, target, &msg);
            line.push('}');
        }
    }
    line.push('\n');
    line.into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_json_header_parses_with_its_fields() {
        let mut s = String::new();
        json_header(
            &mut s,
            Level::Warn,
            "ory_proxy::x",
            "multi\nline \"quoted\"",
        );
        json_field(&mut s, "path", "/a\"b");
        s.push('}');
        let v: serde_json::Value = serde_json::from_str(&s).unwrap();
        assert_eq!(v["level"], "WARN");
        assert_eq!(v["target"], "ory_proxy::x");
        assert_eq!(v["msg"], "multi\nline \"quoted\"");
        assert_eq!(v["path"], "/a\"b");
        assert!(v["time"].as_str().unwrap().ends_with('Z'));
    }
}
