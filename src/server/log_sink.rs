//! The log output off the request path: threads hand finished lines to a bounded queue and
//! one writer thread of its own writes them in large batches.
//!
//! - A line costs its producer a copy into the queue, never a syscall or a lock held across
//!   I/O: the queue is `std::sync::mpsc`'s lock-free bounded channel.
//! - The writer batches what has queued up (up to [`BATCH`] bytes per write) and writes at
//!   least every [`FLUSH_EVERY`] while lines are pending, and on [`LogSink::flush`].
//! - When the output does not keep up (a pipe nobody reads, a stalled terminal), the queue
//!   fills and further lines are dropped and counted (the metrics' log-lines-dropped counter),
//!   with one warning written once the output moves again; producers never wait.
//! - Lines keep the order in which they were handed over, across threads too: a warning
//!   logged before a request's access line is written before it.

use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::mpsc::{self, Receiver, SyncSender, TryRecvError, TrySendError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::metrics;

/// Lines the queue holds before it drops: at ~150 bytes a line, about 10 MiB, a few seconds
/// of a busy proxy's access log, so a writer stall of that long loses nothing.
pub const QUEUE_LINES: usize = 64 * 1024;

/// The writer writes once this much has gathered (as nginx's `access_log … buffer=64k`).
pub const BATCH: usize = 64 * 1024;

/// The longest a line waits in the writer before it is written.
pub const FLUSH_EVERY: Duration = Duration::from_millis(250);

/// How long the writer sleeps between looks at the queue while it holds pending lines: long
/// enough that a busy proxy's lines gather into large batches, short against [`FLUSH_EVERY`].
const POLL: Duration = Duration::from_millis(20);

enum Msg {
    Line(Vec<u8>),
    /// Write everything queued before this, then answer.
    Flush(SyncSender<()>),
}

/// A handle to the queue; cheap to clone, one per producer if wanted.
#[derive(Clone)]
pub struct LogSink {
    tx: SyncSender<Msg>,
    counts: Arc<Counts>,
}

/// What this sink lost (the metrics count the whole process's losses).
#[derive(Default)]
struct Counts {
    dropped: AtomicU64,
    warned: AtomicBool,
}

impl LogSink {
    /// Starts the writer thread over `out`. `drop_warning(n)` renders the line written (once,
    /// in the log's format) after the first `n` lines were dropped.
    pub fn start(
        out: Box<dyn Write + Send>,
        drop_warning: fn(u64) -> Vec<u8>,
    ) -> std::io::Result<LogSink> {
        Self::start_with(out, drop_warning, QUEUE_LINES)
    }

    /// [`LogSink::start`] with another queue bound (tests).
    pub fn start_with(
        out: Box<dyn Write + Send>,
        drop_warning: fn(u64) -> Vec<u8>,
        queue_lines: usize,
    ) -> std::io::Result<LogSink> {
        let (tx, rx) = mpsc::sync_channel(queue_lines);
        let counts = Arc::new(Counts::default());
        let writer = Writer {
            rx,
            out,
            batch: Vec::with_capacity(BATCH),
            drop_warning,
            counts: counts.clone(),
            pending_flushes: Vec::new(),
        };
        std::thread::Builder::new()
            .name("log-writer".into())
            .spawn(move || writer.run())?;
        Ok(LogSink { tx, counts })
    }

    /// Hands one finished line (with its newline) to the writer; drops and counts it when the
    /// queue is full. Never blocks.
    pub fn line(&self, bytes: &[u8]) {
        match self.tx.try_send(Msg::Line(bytes.to_vec())) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                self.counts.dropped.fetch_add(1, Relaxed);
                metrics::log_line_dropped();
            }
        }
    }

    /// Writes everything handed over so far, waiting at most `limit` (the output may be
    /// stuck). Returns whether it was all written.
    pub fn flush(&self, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        let (ack_tx, ack_rx) = mpsc::sync_channel(1);
        let mut msg = Msg::Flush(ack_tx);
        loop {
            match self.tx.try_send(msg) {
                Ok(()) => break,
                Err(TrySendError::Disconnected(_)) => return false,
                Err(TrySendError::Full(m)) => {
                    if Instant::now() >= deadline {
                        return false;
                    }
                    msg = m;
                    std::thread::sleep(Duration::from_millis(5));
                }
            }
        }
        ack_rx
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .is_ok()
    }

    /// Whether the drop warning has been written (tests).
    pub fn warned(&self) -> bool {
        self.counts.warned.load(Relaxed)
    }
}

struct Writer {
    rx: Receiver<Msg>,
    out: Box<dyn Write + Send>,
    batch: Vec<u8>,
    drop_warning: fn(u64) -> Vec<u8>,
    counts: Arc<Counts>,
    pending_flushes: Vec<SyncSender<()>>,
}

impl Writer {
    fn run(mut self) {
        loop {
            // Nothing pending: sleep until something comes (an idle proxy costs nothing).
            let Ok(first) = self.rx.recv() else {
                return self.write();
            };
            self.take(first);
            let since = Instant::now();
            // Lines pending: gather more by polling, so that producers never pay a wake-up.
            loop {
                let gone = loop {
                    match self.rx.try_recv() {
                        Ok(m) => self.take(m),
                        Err(TryRecvError::Empty) => break false,
                        Err(TryRecvError::Disconnected) => break true,
                    }
                    if self.batch.len() >= BATCH {
                        self.write();
                    }
                };
                if gone {
                    return self.write();
                }
                let waited = since.elapsed();
                if !self.pending_flushes.is_empty() || waited >= FLUSH_EVERY {
                    self.write();
                }
                if self.batch.is_empty() {
                    break;
                }
                std::thread::sleep(POLL.min(FLUSH_EVERY.saturating_sub(waited)));
            }
        }
    }

    fn take(&mut self, m: Msg) {
        match m {
            Msg::Line(l) => self.batch.extend_from_slice(&l),
            Msg::Flush(ack) => self.pending_flushes.push(ack),
        }
    }

    /// Writes the batch (blocking this thread only), then the drop warning the first time
    /// lines were lost, then answers the flushes waiting.
    fn write(&mut self) {
        if !self.batch.is_empty() {
            // A failed write (stderr closed) loses the batch: there is nowhere to report it.
            let _ = self.out.write_all(&self.batch);
            self.batch.clear();
            if self.batch.capacity() > 4 * BATCH {
                self.batch = Vec::with_capacity(BATCH);
            }
        }
        let dropped = self.counts.dropped.load(Relaxed);
        if dropped > 0 && !self.counts.warned.swap(true, Relaxed) {
            let _ = self.out.write_all(&(self.drop_warning)(dropped));
        }
        let _ = self.out.flush();
        for ack in self.pending_flushes.drain(..) {
            let _ = ack.try_send(());
        }
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
        let sink = LogSink::start_with(Box::new(out.clone()), warning, 16).unwrap();
        let started = Instant::now();
        // The writer takes one batch and blocks in its write; the queue then fills.
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
