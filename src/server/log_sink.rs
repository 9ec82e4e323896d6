//! The log output off the request path: threads append finished lines to one shared buffer
//! and one writer thread of its own writes it out in large batches (as nginx's
//! `access_log … buffer=64k flush=1s`).
//!
//! - A line costs its producer one copy into the buffer under a lock that is never held
//!   across I/O: no per-line allocation, no channel, no syscall (the buffer grows only past
//!   its usual size, in a burst or a stall). Only the first line after the writer went idle
//!   wakes it.
//! - The writer takes the whole buffer (swapping in an empty one) once [`BATCH`] bytes have
//!   gathered, at least every [`FLUSH_EVERY`] while lines are pending, and on
//!   [`LogSink::flush`]; it writes with the lock released.
//! - When the output does not keep up (a pipe nobody reads, a stalled terminal), the buffer
//!   reaches its bound and further lines are dropped and counted (the metrics'
//!   log-lines-dropped counter), with one warning written once the output moves again;
//!   producers never wait.
//! - Lines keep the order in which they were handed over, across threads too: a warning
//!   logged before a request's access line is written before it.

use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::AcqRel, Ordering::Relaxed};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::metrics;

/// Bytes the buffer holds before it drops: about 50,000 access lines, a few seconds of a
/// busy proxy's log, so a writer stall of that long loses nothing.
pub const BUFFER_LIMIT: usize = 8 * 1024 * 1024;

/// The writer writes once this much has gathered (as nginx's `access_log … buffer=64k`).
pub const BATCH: usize = 64 * 1024;

/// The longest a line waits in the buffer before it is written.
pub const FLUSH_EVERY: Duration = Duration::from_millis(250);

/// A buffer's capacity that is kept after a write; beyond it, it is given back.
const KEEP: usize = 1024 * 1024;

/// How long the writer sleeps between looks at the buffer while lines are pending: long
/// enough that a busy proxy's lines gather into large batches, short against [`FLUSH_EVERY`].
const POLL: Duration = Duration::from_millis(20);

/// A handle to the buffer; cheap to clone, one per producer if wanted.
pub struct LogSink {
    shared: Arc<Shared>,
}

struct Shared {
    state: Mutex<State>,
    /// The writer waits here while idle; producers and flushes wake it.
    wake: Condvar,
    /// Flushes wait here for the writer to pass their line.
    written: Condvar,
    limit: usize,
    /// What this sink lost (the metrics count the whole process's losses).
    dropped: AtomicU64,
    warned: AtomicBool,
    /// Live [`LogSink`] handles: the last one dropped ends the writer.
    handles: AtomicUsize,
}

#[derive(Default)]
struct State {
    /// Lines handed over and not yet taken by the writer.
    buf: Vec<u8>,
    /// Lines handed over since start (dropped ones not counted).
    handed: u64,
    /// Of those, how many the writer has written (or failed to write).
    done: u64,
    /// The writer waits on `wake` for a first line.
    idle: bool,
    /// A flush waits: the writer takes the buffer at once.
    flush_asked: bool,
    /// Every handle is gone: write what is left and end.
    closed: bool,
}

impl LogSink {
    /// Starts the writer thread over `out`. `drop_warning(n)` renders the line written (once,
    /// in the log's format) after the first `n` lines were dropped.
    pub fn start(
        out: Box<dyn Write + Send>,
        drop_warning: fn(u64) -> Vec<u8>,
    ) -> std::io::Result<LogSink> {
        Self::start_with(out, drop_warning, BUFFER_LIMIT)
    }

    /// [`LogSink::start`] with another bound, in bytes (tests).
    pub fn start_with(
        out: Box<dyn Write + Send>,
        drop_warning: fn(u64) -> Vec<u8>,
        limit: usize,
    ) -> std::io::Result<LogSink> {
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                buf: Vec::with_capacity(BATCH),
                ..State::default()
            }),
            wake: Condvar::new(),
            written: Condvar::new(),
            limit,
            dropped: AtomicU64::new(0),
            warned: AtomicBool::new(false),
            handles: AtomicUsize::new(1),
        });
        let writer = Writer {
            shared: shared.clone(),
            out,
            batch: Vec::with_capacity(BATCH),
            drop_warning,
        };
        std::thread::Builder::new()
            .name("log-writer".into())
            .spawn(move || writer.run())?;
        Ok(LogSink { shared })
    }

    /// Hands one finished line (with its newline) to the writer; drops and counts it when the
    /// buffer is full. Never blocks on the output.
    pub fn line(&self, bytes: &[u8]) {
        let mut st = self.shared.lock();
        if st.buf.len() + bytes.len() > self.shared.limit {
            drop(st);
            self.shared.dropped.fetch_add(1, Relaxed);
            metrics::log_line_dropped();
            return;
        }
        st.buf.extend_from_slice(bytes);
        st.handed += 1;
        let wake = std::mem::take(&mut st.idle);
        drop(st);
        if wake {
            self.shared.wake.notify_one();
        }
    }

    /// Writes everything handed over so far, waiting at most `limit` (the output may be
    /// stuck). Returns whether it was all written.
    pub fn flush(&self, limit: Duration) -> bool {
        // A limit too far to express waits without one.
        let deadline = Instant::now().checked_add(limit);
        let mut st = self.shared.lock();
        let target = st.handed;
        st.flush_asked = true;
        self.shared.wake.notify_one();
        while st.done < target {
            let left = deadline.map_or(Duration::from_secs(3600), |d| {
                d.saturating_duration_since(Instant::now())
            });
            if left.is_zero() {
                return false;
            }
            st = match self.shared.written.wait_timeout(st, left) {
                Ok((st, _)) => st,
                Err(poisoned) => poisoned.into_inner().0,
            };
        }
        true
    }

    /// Whether the drop warning has been written (tests).
    pub fn warned(&self) -> bool {
        self.shared.warned.load(Relaxed)
    }
}

impl Clone for LogSink {
    fn clone(&self) -> Self {
        self.shared.handles.fetch_add(1, Relaxed);
        LogSink {
            shared: self.shared.clone(),
        }
    }
}

impl Drop for LogSink {
    fn drop(&mut self) {
        // The last handle going tells the writer to write what is left and end.
        if self.shared.handles.fetch_sub(1, AcqRel) == 1 {
            self.shared.lock().closed = true;
            self.shared.wake.notify_one();
        }
    }
}

impl Shared {
    /// The state, also after a thread panicked holding it: the buffer is bytes, always whole.
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

struct Writer {
    shared: Arc<Shared>,
    out: Box<dyn Write + Send>,
    /// What is being written; swapped with the shared buffer.
    batch: Vec<u8>,
    drop_warning: fn(u64) -> Vec<u8>,
}

impl Writer {
    fn run(mut self) {
        loop {
            let Some(upto) = self.gather() else {
                return;
            };
            self.write();
            self.shared.lock().done = upto;
            self.shared.written.notify_all();
        }
    }

    /// Waits for lines, lets them gather into a batch, and takes them; returns how many lines
    /// were handed over up to here, or `None` once every handle is gone and all is written.
    fn gather(&mut self) -> Option<u64> {
        let sh = &self.shared;
        let mut st = sh.lock();
        // Nothing pending: sleep until something comes (an idle proxy costs nothing).
        while st.buf.is_empty() && !st.flush_asked {
            if st.closed {
                return None;
            }
            st.idle = true;
            st = sh.wake.wait(st).unwrap_or_else(|p| p.into_inner());
        }
        st.idle = false;
        let since = Instant::now();
        // Lines pending: poll, so that producers never pay a wake-up.
        loop {
            let waited = since.elapsed();
            if st.buf.len() >= BATCH || st.flush_asked || st.closed || waited >= FLUSH_EVERY {
                break;
            }
            drop(st);
            std::thread::sleep(POLL.min(FLUSH_EVERY.saturating_sub(waited)));
            st = sh.lock();
        }
        st.flush_asked = false;
        std::mem::swap(&mut st.buf, &mut self.batch);
        Some(st.handed)
    }

    /// Writes the batch (blocking this thread only), then the drop warning the first time
    /// lines were lost.
    fn write(&mut self) {
        if !self.batch.is_empty() {
            // A failed write (stderr closed) loses the batch: there is nowhere to report it.
            let _ = self.out.write_all(&self.batch);
            self.batch.clear();
            // Memory taken by a burst or a stall goes back; a busy proxy's usual batches
            // (a few hundred KiB) keep theirs.
            if self.batch.capacity() > KEEP {
                self.batch = Vec::with_capacity(BATCH);
            }
        }
        let dropped = self.shared.dropped.load(Relaxed);
        if dropped > 0 && !self.shared.warned.swap(true, Relaxed) {
            let _ = self.out.write_all(&(self.drop_warning)(dropped));
        }
        let _ = self.out.flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    /// An output the test can read, and stall.
    #[derive(Clone, Default)]
    struct Shared {
        written: Arc<Mutex<Vec<u8>>>,
        stall: Arc<Mutex<()>>,
    }

    impl Write for Shared {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            let _stalled = self.stall.lock().unwrap();
            self.written.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn warning(n: u64) -> Vec<u8> {
        format!("dropped {n}\n").into_bytes()
    }

    fn text(s: &Shared) -> String {
        String::from_utf8(s.written.lock().unwrap().clone()).unwrap()
    }

    #[test]
    fn lines_arrive_in_order_within_the_flush_interval() {
        let out = Shared::default();
        let sink = LogSink::start(Box::new(out.clone()), warning).unwrap();
        let threads: Vec<_> = (0..2)
            .map(|t| {
                let sink = sink.clone();
                std::thread::spawn(move || {
                    for i in 0..1000 {
                        sink.line(format!("t{t} {i}\n").as_bytes());
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let deadline = Instant::now() + FLUSH_EVERY * 4;
        while text(&out).lines().count() < 2000 {
            assert!(Instant::now() < deadline, "only {}", text(&out).len());
            std::thread::sleep(Duration::from_millis(5));
        }
        let all = text(&out);
        for t in 0..2 {
            let mine: Vec<usize> = all
                .lines()
                .filter_map(|l| l.strip_prefix(&format!("t{t} "))?.parse().ok())
                .collect();
            assert_eq!(mine, (0..1000).collect::<Vec<_>>());
        }
    }

    #[test]
    fn the_last_handle_dropped_writes_what_is_left_and_ends_the_writer() {
        let out = Shared::default();
        let sink = LogSink::start(Box::new(out.clone()), warning).unwrap();
        let other = sink.clone();
        sink.line(b"one\n");
        drop(sink);
        other.line(b"two\n");
        let shared = other.shared.clone();
        drop(other);
        let deadline = Instant::now() + FLUSH_EVERY * 4;
        // The writer's reference goes when its thread ends.
        while Arc::strong_count(&shared) > 1 {
            assert!(Instant::now() < deadline, "the writer still runs");
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(text(&out), "one\ntwo\n");
    }

    #[test]
    fn lines_handed_over_while_the_output_is_stuck_are_kept_whole_and_in_order() {
        let out = Shared::default();
        let stall = out.stall.lock().unwrap();
        let sink = LogSink::start(Box::new(out.clone()), warning).unwrap();
        for i in 0..1000 {
            sink.line(format!("{i:04}\n").as_bytes());
        }
        {
            let st = sink.shared.lock();
            // What the writer has not taken yet is whole lines, all of them counted.
            assert_eq!(st.buf.len() % 5, 0);
            assert!(st.handed == 1000);
        }
        drop(stall);
        assert!(sink.flush(Duration::from_secs(5)));
        let all = text(&out);
        let expected: String = (0..1000).map(|i| format!("{i:04}\n")).collect();
        assert_eq!(all, expected);
    }

    #[test]
    fn flush_writes_everything_handed_over() {
        let out = Shared::default();
        let sink = LogSink::start(Box::new(out.clone()), warning).unwrap();
        sink.line(b"last words\n");
        assert!(sink.flush(Duration::from_secs(5)));
        assert_eq!(text(&out), "last words\n");
    }

    #[test]
    fn a_stalled_output_drops_lines_instead_of_blocking_and_warns_once() {
        let out = Shared::default();
        let stall = out.stall.lock().unwrap();
        let sink = LogSink::start_with(Box::new(out.clone()), warning, 64).unwrap();
        let started = Instant::now();
        // The writer takes one batch and blocks in its write; the buffer then fills.
        for i in 0..10_000 {
            sink.line(format!("{i}\n").as_bytes());
        }
        assert!(started.elapsed() < Duration::from_secs(2));
        assert!(
            !sink.flush(Duration::from_millis(100)),
            "flush cannot finish"
        );
        drop(stall);
        assert!(sink.flush(Duration::from_secs(5)));
        let all = text(&out);
        let warnings: Vec<_> = all.lines().filter(|l| l.starts_with("dropped")).collect();
        assert_eq!(warnings.len(), 1, "{all}");
        assert!(sink.warned());
        let kept = all.lines().count() - 1;
        assert!(kept < 10_000, "kept {kept}");
        // Once the output moves again nothing more is lost, and no second warning.
        sink.line(b"after\n");
        assert!(sink.flush(Duration::from_secs(5)));
        let all = text(&out);
        assert!(all.ends_with("after\n"));
        assert_eq!(all.lines().filter(|l| l.starts_with("dropped")).count(), 1);
    }
}
