//! Open-loop (fixed-rate) HTTP/1.1 latency load generator for the load benchmark
//! (`bench/run.py`, see `bench/README.md`).
//!
//! Why not wrk: wrk is a closed loop. Each connection sends its next request only when the
//! previous answer has arrived, so at saturation with `c` connections the p99 it reports is
//! mostly queueing (about `c / throughput`) and cannot show the latency a proxy *adds*. This
//! tool offers a fixed rate instead, below saturation, so scenarios are compared at equal load:
//! request `i` on a connection is *scheduled* at `start + offset + i * interval` (connection
//! starts staggered evenly over one interval), and its latency runs from that scheduled time,
//! not from the actual send, to the last byte of the response body. A stall that delays later
//! requests is therefore counted in them as well (coordinated omission corrected, as in wrk2).
//!
//! ```text
//! bench_latency <http://host:port/path> <connections> <rate req/s total> <seconds> ["Name: value" ...]
//! ```
//!
//! prints one line:
//!
//! ```text
//! rate=<achieved req/s> p50_ms=<> p90_ms=<> p99_ms=<> p999_ms=<> max_ms=<> requests=<n> errors=<n> non2xx=<n>
//! ```
//!
//! - `connections` keep-alive TCP connections (TCP_NODELAY), one request in flight on each (no
//!   pipelining), each driven at `rate / connections`; a closed connection is reopened, and
//!   the reconnect counts in the latency of the request that needed it.
//! - `seconds` is the whole run; its first second is warm-up: requests scheduled in it are not
//!   recorded. `rate` and `requests` cover the rest; `errors` (I/O, malformed responses,
//!   timeouts) and `non2xx` cover the whole run. A response needs `Content-Length` or
//!   `Transfer-Encoding: chunked`; a body delimited by close is an error.
//! - When the server cannot keep up (achieved rate under 95% of the target), the line is still
//!   printed, with a warning on stderr: the latencies then contain the backlog.
//! - Timing: tokio's timer has 1 ms granularity, far too coarse here, so each connection sleeps
//!   until 2 ms before its slot and then spins (yielding to the runtime) until the slot. The
//!   load generator therefore keeps its core busy; pin it to its own core (`taskset`).
//! - One thread (tokio current-thread runtime). Exit status 1 on bad arguments, when the first
//!   connections cannot be opened, or when nothing could be measured.

use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{sleep_until, timeout_at, Instant};

/// Requests scheduled in the first second are not recorded.
const WARMUP: Duration = Duration::from_secs(1);
/// Sleep on tokio's (1 ms) timer until this long before a slot, then spin.
const SPIN: Duration = Duration::from_millis(2);
/// After the run ends, how long an in-flight request may still take before it is an error.
const DRAIN: Duration = Duration::from_secs(5);
/// Read buffer per connection; also the limit for a response head or a chunk-size line.
const BUF: usize = 64 * 1024;

const USAGE: &str = "usage: bench_latency <http://host:port/path> <connections> <rate req/s total> <seconds> [\"Name: value\" ...]";

struct Args {
    addr: SocketAddr,
    request: Vec<u8>,
    connections: usize,
    rate: f64,
    seconds: f64,
}

fn main() -> ExitCode {
    let args = match parse_args(std::env::args().skip(1).collect()) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("bench_latency: {e}\n{USAGE}");
            return ExitCode::from(1);
        }
    };
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("bench_latency: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match rt.block_on(run(args)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("bench_latency: {e}");
            ExitCode::from(1)
        }
    }
}

fn parse_args(argv: Vec<String>) -> Result<Args, String> {
    if argv.len() < 4 {
        return Err("missing arguments".into());
    }
    let url = &argv[0];
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| format!("{url:?}: the URL must start with http:// (no TLS)"))?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    if authority.is_empty() {
        return Err(format!("{url:?}: no host"));
    }
    let addr = resolve(authority)?;
    let connections: usize = argv[1]
        .parse()
        .ok()
        .filter(|&c| c > 0)
        .ok_or_else(|| format!("connections {:?}: want a positive integer", argv[1]))?;
    let rate: f64 = argv[2]
        .parse()
        .ok()
        .filter(|r: &f64| r.is_finite() && *r > 0.0)
        .ok_or_else(|| format!("rate {:?}: want a positive number of req/s", argv[2]))?;
    let seconds: f64 = argv[3]
        .parse()
        .ok()
        .filter(|s: &f64| s.is_finite() && *s > WARMUP.as_secs_f64() && *s < 1e6)
        .ok_or_else(|| {
            format!(
                "seconds {:?}: want more than {} (the first second is warm-up)",
                argv[3],
                WARMUP.as_secs()
            )
        })?;
    let mut request = format!("GET {path} HTTP/1.1\r\nHost: {authority}\r\n");
    for h in &argv[4..] {
        if !h.contains(':') || h.contains(['\r', '\n']) {
            return Err(format!("header {h:?}: want one \"Name: value\" line"));
        }
        request.push_str(h);
        request.push_str("\r\n");
    }
    request.push_str("\r\n");
    Ok(Args {
        addr,
        request: request.into_bytes(),
        connections,
        rate,
        seconds,
    })
}

fn resolve(authority: &str) -> Result<SocketAddr, String> {
    let found = authority
        .to_socket_addrs()
        .or_else(|_| format!("{authority}:80").to_socket_addrs())
        .map_err(|e| format!("cannot resolve {authority:?}: {e}"))?
        .next();
    found.ok_or_else(|| format!("{authority:?} resolves to no address"))
}

#[derive(Default)]
struct Stats {
    /// Latencies in µs, from the scheduled send to the end of the body.
    lat_us: Vec<u64>,
    /// The client's own timing error in µs: how late a request went out when its connection
    /// was idle before the slot (a busy connection's delay is the server's, and is counted).
    lag_us: Vec<u64>,
    errors: u64,
    non2xx: u64,
    first_error: Option<String>,
}

async fn run(a: Args) -> Result<ExitCode, String> {
    let mut streams = Vec::with_capacity(a.connections);
    for _ in 0..a.connections {
        let s = connect(a.addr)
            .await
            .map_err(|e| format!("cannot connect to {}: {e}", a.addr))?;
        streams.push(s);
    }
    let slot_ns = 1e9 / a.rate; // between two requests over all connections
    let interval = Duration::from_nanos((slot_ns * a.connections as f64).round() as u64);
    if interval.is_zero() {
        return Err("rate too high".into());
    }
    let start = Instant::now() + Duration::from_millis(20);
    let warm_end = start + WARMUP;
    let end = start + Duration::from_secs_f64(a.seconds);
    let request: Arc<[u8]> = a.request.into();
    let mut tasks = Vec::with_capacity(a.connections);
    for (k, s) in streams.into_iter().enumerate() {
        let first = start + Duration::from_nanos((slot_ns * k as f64).round() as u64);
        let sched = Schedule {
            first,
            interval,
            warm_end,
            end,
            deadline: end + DRAIN,
        };
        tasks.push(tokio::spawn(drive(a.addr, request.clone(), s, sched)));
    }
    let (mut lat, mut lag) = (Vec::new(), Vec::new());
    let (mut errors, mut non2xx) = (0, 0);
    let mut samples: Vec<String> = Vec::new();
    for t in tasks {
        let st = t
            .await
            .map_err(|e| format!("a connection task failed: {e}"))?;
        lat.extend_from_slice(&st.lat_us);
        lag.extend_from_slice(&st.lag_us);
        errors += st.errors;
        non2xx += st.non2xx;
        if let Some(e) = st.first_error {
            if samples.len() < 3 && !samples.contains(&e) {
                samples.push(e);
            }
        }
    }
    lat.sort_unstable();
    lag.sort_unstable();
    let window = (end - warm_end).as_secs_f64();
    let achieved = lat.len() as f64 / window;
    let pct = |q: f64| percentile_ms(&lat, q);
    println!(
        "rate={achieved:.1} p50_ms={:.3} p90_ms={:.3} p99_ms={:.3} p999_ms={:.3} max_ms={:.3} requests={} errors={errors} non2xx={non2xx}",
        pct(0.50),
        pct(0.90),
        pct(0.99),
        pct(0.999),
        pct(1.0),
        lat.len(),
    );
    eprintln!(
        "bench_latency: own send delay behind schedule (idle connections): p99 {:.3} ms, max {:.3} ms",
        percentile_ms(&lag, 0.99),
        percentile_ms(&lag, 1.0)
    );
    if errors > 0 {
        eprintln!(
            "bench_latency: {errors} errors, e.g.: {}",
            samples.join("; ")
        );
    }
    if achieved < 0.95 * a.rate {
        eprintln!(
            "bench_latency: achieved {achieved:.0} req/s, under 95% of the target {:.0}: \
             the server (or this client) cannot keep up, the latencies contain the backlog",
            a.rate
        );
    }
    Ok(if lat.is_empty() {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// Nearest-rank percentile of sorted µs values, in ms; NaN when there are none.
fn percentile_ms(sorted_us: &[u64], q: f64) -> f64 {
    if sorted_us.is_empty() {
        return f64::NAN;
    }
    let rank = ((q * sorted_us.len() as f64).ceil() as usize).clamp(1, sorted_us.len());
    sorted_us[rank - 1] as f64 / 1000.0
}

#[derive(Clone, Copy)]
struct Schedule {
    /// The scheduled time of this connection's first request.
    first: Instant,
    interval: Duration,
    warm_end: Instant,
    /// No request is sent at or after this.
    end: Instant,
    /// In-flight requests not done by then are errors.
    deadline: Instant,
}

/// One connection's loop: one request per slot, one in flight.
async fn drive(addr: SocketAddr, request: Arc<[u8]>, stream: TcpStream, s: Schedule) -> Stats {
    let mut st = Stats::default();
    let mut conn = Some(Conn::new(stream));
    let interval_ns = s.interval.as_nanos() as u64;
    for i in 0u64.. {
        let scheduled = s.first + Duration::from_nanos(i * interval_ns);
        if scheduled >= s.end || Instant::now() >= s.end {
            break;
        }
        let idle = Instant::now() < scheduled;
        wait_until(scheduled).await;
        if idle && scheduled >= s.warm_end {
            st.lag_us
                .push((Instant::now() - scheduled).as_micros() as u64);
        }
        let result = timeout_at(s.deadline, exchange(&mut conn, addr, &request)).await;
        let done = Instant::now();
        match result {
            Ok(Ok(status)) => {
                if !(200..300).contains(&status) {
                    st.non2xx += 1;
                }
                if scheduled >= s.warm_end {
                    st.lat_us.push((done - scheduled).as_micros() as u64);
                }
            }
            Ok(Err(e)) => {
                st.errors += 1;
                st.first_error.get_or_insert_with(|| e.to_string());
                conn = None; // reconnect for the next request
            }
            Err(_) => {
                st.errors += 1;
                st.first_error.get_or_insert_with(|| {
                    format!("no response within {DRAIN:?} after the end of the run")
                });
                break;
            }
        }
    }
    st
}

/// Sleeps on tokio's timer until shortly before `t`, then spins (yielding, so the runtime keeps
/// polling sockets) until `t`: tokio's timer alone would be up to 1 ms late.
async fn wait_until(t: Instant) {
    if let Some(early) = t.checked_sub(SPIN) {
        if Instant::now() < early {
            sleep_until(early).await;
        }
    }
    while Instant::now() < t {
        tokio::task::yield_now().await;
    }
}

async fn connect(addr: SocketAddr) -> io::Result<TcpStream> {
    let s = TcpStream::connect(addr).await?;
    s.set_nodelay(true)?;
    Ok(s)
}

/// One request and its whole response on `conn`, opening a connection first if there is none.
/// Returns the status.
async fn exchange(conn: &mut Option<Conn>, addr: SocketAddr, request: &[u8]) -> io::Result<u16> {
    let c = match conn {
        Some(c) => c,
        None => conn.insert(Conn::new(connect(addr).await?)),
    };
    c.stream.write_all(request).await?;
    let (status, keep_alive) = c.read_response().await?;
    if !keep_alive {
        *conn = None;
    }
    Ok(status)
}

fn invalid(msg: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.into())
}

struct Conn {
    stream: TcpStream,
    buf: Box<[u8]>,
    /// Unconsumed bytes are `buf[pos..end]`.
    pos: usize,
    end: usize,
}

impl Conn {
    fn new(stream: TcpStream) -> Self {
        Conn {
            stream,
            buf: vec![0; BUF].into_boxed_slice(),
            pos: 0,
            end: 0,
        }
    }

    /// Reads more bytes into the buffer (at least one), compacting it first if needed.
    async fn fill(&mut self) -> io::Result<()> {
        if self.pos == self.end {
            self.pos = 0;
            self.end = 0;
        } else if self.end == self.buf.len() {
            if self.pos == 0 {
                return Err(invalid(format!(
                    "response head or chunk-size line over {} KiB",
                    BUF / 1024
                )));
            }
            self.buf.copy_within(self.pos..self.end, 0);
            self.end -= self.pos;
            self.pos = 0;
        }
        let n = self.stream.read(&mut self.buf[self.end..]).await?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the server closed the connection before the end of a response",
            ));
        }
        self.end += n;
        Ok(())
    }

    /// The index just past the first `delim` in the unconsumed bytes, reading as needed.
    async fn find(&mut self, delim: &[u8]) -> io::Result<usize> {
        loop {
            if let Some(i) = self.buf[self.pos..self.end]
                .windows(delim.len())
                .position(|w| w == delim)
            {
                return Ok(self.pos + i + delim.len());
            }
            self.fill().await?;
        }
    }

    /// Consumes `n` bytes (a body), reading as needed.
    async fn skip(&mut self, mut n: u64) -> io::Result<()> {
        loop {
            let take = ((self.end - self.pos) as u64).min(n);
            self.pos += take as usize;
            n -= take;
            if n == 0 {
                return Ok(());
            }
            self.fill().await?;
        }
    }

    /// Reads one response through the end of its body. Returns the status and whether the
    /// connection stays open.
    async fn read_response(&mut self) -> io::Result<(u16, bool)> {
        let head_end = self.find(b"\r\n\r\n").await?;
        let (status, length, chunked, keep_alive) = parse_head(&self.buf[self.pos..head_end])?;
        self.pos = head_end;
        if status == 204 || status == 304 {
            return Ok((status, keep_alive));
        }
        if chunked {
            self.skip_chunked().await?;
        } else if let Some(n) = length {
            self.skip(n).await?;
        } else {
            return Err(invalid(
                "the response has neither Content-Length nor Transfer-Encoding: chunked \
                 (a body delimited by close is not supported)",
            ));
        }
        Ok((status, keep_alive))
    }

    async fn skip_chunked(&mut self) -> io::Result<()> {
        loop {
            let line_end = self.find(b"\r\n").await?;
            let line = &self.buf[self.pos..line_end - 2];
            let digits = line.split(|&b| b == b';').next().unwrap_or(line);
            let size = std::str::from_utf8(digits)
                .ok()
                .and_then(|d| u64::from_str_radix(d.trim(), 16).ok())
                .ok_or_else(|| {
                    invalid(format!(
                        "bad chunk-size line {:?}",
                        String::from_utf8_lossy(line)
                    ))
                })?;
            self.pos = line_end;
            if size == 0 {
                // Trailer fields, up to an empty line.
                loop {
                    let e = self.find(b"\r\n").await?;
                    let empty = e - self.pos == 2;
                    self.pos = e;
                    if empty {
                        return Ok(());
                    }
                }
            }
            self.skip(size).await?;
            let e = self.find(b"\r\n").await?;
            if e - self.pos != 2 {
                return Err(invalid("chunk data not followed by CRLF"));
            }
            self.pos = e;
        }
    }
}

/// Parses a response head (through the blank line): status, Content-Length, whether chunked,
/// whether the connection stays open.
fn parse_head(head: &[u8]) -> io::Result<(u16, Option<u64>, bool, bool)> {
    let head = std::str::from_utf8(head).map_err(|_| invalid("the response head is not UTF-8"))?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or("");
    let mut parts = status_line.splitn(3, ' ');
    let version = parts.next().unwrap_or("");
    let status = parts
        .next()
        .and_then(|s| s.parse::<u16>().ok())
        .filter(|_| version.starts_with("HTTP/1."))
        .ok_or_else(|| invalid(format!("bad status line {status_line:?}")))?;
    if (100..200).contains(&status) {
        return Err(invalid(format!(
            "interim response {status} is not supported"
        )));
    }
    let mut length = None;
    let mut chunked = false;
    let (mut close, mut keep) = (false, false);
    for line in lines.filter(|l| !l.is_empty()) {
        let (name, value) = line
            .split_once(':')
            .ok_or_else(|| invalid(format!("bad header line {line:?}")))?;
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            length = Some(
                value
                    .parse::<u64>()
                    .map_err(|_| invalid(format!("bad Content-Length {value:?}")))?,
            );
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            let last = value.rsplit(',').next().unwrap_or("").trim();
            if !last.eq_ignore_ascii_case("chunked") {
                return Err(invalid(format!(
                    "Transfer-Encoding {value:?} is not supported (only chunked)"
                )));
            }
            chunked = true;
        } else if name.eq_ignore_ascii_case("connection") {
            for token in value.split(',').map(str::trim) {
                close |= token.eq_ignore_ascii_case("close");
                keep |= token.eq_ignore_ascii_case("keep-alive");
            }
        }
    }
    let keep_alive = !close && (keep || version == "HTTP/1.1");
    Ok((status, length, chunked, keep_alive))
}
