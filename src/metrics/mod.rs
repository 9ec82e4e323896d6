//! The proxy's counters about itself and their Prometheus text rendering, served at `/metrics`
//! on the metrics listener of its own (`--metrics-listen`, README "Metrics"), never on the
//! proxy's public port.
//!
//! A leaf module: the components that count (the request edge, the session actor, the watcher)
//! hold an `Arc<Metrics>` and map their own outcomes onto the small enums here, so nothing in
//! this module knows about them. Counters are plain atomics updated with relaxed ordering: a
//! scrape may see one counter a request ahead of another, never a torn or lost update.
//!
//! The outcomes counted are in [`outcomes`]; the access rules' decisions, counted per rule, in
//! [`access`].

mod access;
mod outcomes;

pub use access::{AccessCounts, AccessDecision, DecisionCounts};
pub use outcomes::{Answerer, AuthOutcome, ReloadOutcome, WhoamiOutcome};

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Upper bounds of the latency histogram, in seconds: from a cache hit on loopback to a
/// request that waited on a slow upstream.
const BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];

#[derive(Default)]
struct Histogram {
    /// Non-cumulative counts per bucket, the last one for `+Inf`; summed when rendered.
    counts: [AtomicU64; BUCKETS.len() + 1],
    /// Microseconds: a u64 of them outlasts any deployment even at high rates.
    sum_micros: AtomicU64,
}

impl Histogram {
    fn observe(&self, d: Duration) {
        let secs = d.as_secs_f64();
        let i = BUCKETS.partition_point(|&b| b < secs);
        self.counts[i].fetch_add(1, Relaxed);
        let micros = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        self.sum_micros.fetch_add(micros, Relaxed);
    }
}

/// Log lines lost because the log output did not keep up: process-wide, as the log output is
/// (the log writer counts here; every proxy's metrics show it).
static LOG_LINES_DROPPED: AtomicU64 = AtomicU64::new(0);

/// One log line dropped (see `server::log_sink`).
pub fn log_line_dropped() {
    LOG_LINES_DROPPED.fetch_add(1, Relaxed);
}

/// Everything the proxy counts. One per proxy (tests run several in one process).
pub struct Metrics {
    started: SystemTime,
    /// Per answerer, per status class (1xx … 5xx).
    requests: [[AtomicU64; 5]; 3],
    /// Per answerer: time until the answer's head was ready (bodies stream after it).
    head_time: [Histogram; 3],
    auth: [AtomicU64; 4],
    whoami: [AtomicU64; 4],
    minted: AtomicU64,
    reloads: [AtomicU64; 3],
    /// Bytes of Ory answers held for rewriting now: a gauge, kept by the rewrite budget.
    rewrite_buffer: AtomicU64,
    /// Textual Ory answers passed on unrewritten because the rewrite budget was spent.
    rewrite_skipped: AtomicU64,
    /// What the access rules decided, per rule.
    pub access: AccessCounts,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            started: SystemTime::now(),
            requests: Default::default(),
            head_time: Default::default(),
            auth: Default::default(),
            whoami: Default::default(),
            minted: AtomicU64::new(0),
            reloads: Default::default(),
            rewrite_buffer: AtomicU64::new(0),
            rewrite_skipped: AtomicU64::new(0),
            access: AccessCounts::default(),
        }
    }
}

impl Metrics {
    /// One answered request: who answered, its status, and how long its head took.
    pub fn request(&self, by: Answerer, status: u16, head_after: Duration) {
        let class = usize::from(status / 100).clamp(1, 5) - 1;
        self.requests[by as usize][class].fetch_add(1, Relaxed);
        self.head_time[by as usize].observe(head_after);
    }

    pub fn auth(&self, outcome: AuthOutcome) {
        self.auth[outcome as usize].fetch_add(1, Relaxed);
    }

    pub fn whoami(&self, outcome: WhoamiOutcome) {
        self.whoami[outcome as usize].fetch_add(1, Relaxed);
    }

    pub fn minted(&self) {
        self.minted.fetch_add(1, Relaxed);
    }

    pub fn reload(&self, outcome: ReloadOutcome) {
        self.reloads[outcome as usize].fetch_add(1, Relaxed);
    }

    /// The bytes held for rewriting: the rewrite budget counts in it directly.
    pub fn rewrite_buffer(&self) -> &AtomicU64 {
        &self.rewrite_buffer
    }

    pub fn rewrite_skipped(&self) {
        self.rewrite_skipped.fetch_add(1, Relaxed);
    }

    /// The Prometheus text exposition format, version 0.0.4.
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(4096);
        // Writing to a String cannot fail.
        let _ = self.render_into(&mut out);
        out
    }

    fn render_into(&self, out: &mut String) -> std::fmt::Result {
        writeln!(
            out,
            "# HELP ory_proxy_build_info The running version, its commit and build date."
        )?;
        writeln!(out, "# TYPE ory_proxy_build_info gauge")?;
        // The three parts of `--version`: label values need no escaping (digits, dots, hex).
        writeln!(
            out,
            "ory_proxy_build_info{{version=\"{}\",commit=\"{}\",build_date=\"{}\"}} 1",
            crate::version::VERSION,
            crate::version::COMMIT,
            crate::version::BUILD_DATE
        )?;
        let started = self
            .started
            .duration_since(UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        writeln!(
            out,
            "# HELP ory_proxy_start_time_seconds When the proxy started, in Unix seconds."
        )?;
        writeln!(out, "# TYPE ory_proxy_start_time_seconds gauge")?;
        writeln!(out, "ory_proxy_start_time_seconds {started:.3}")?;

        self.render_requests(out)?;
        self.render_head_time(out)?;

        let load = |c: &AtomicU64| c.load(Relaxed);
        counter_family(
            out,
            "ory_proxy_app_auth_total",
            "App-bound requests by what they carried to the app (JWT on).",
            "auth",
            AuthOutcome::ALL.map(|o| (o.label(), load(&self.auth[o as usize]))),
        )?;
        counter_family(
            out,
            "ory_proxy_whoami_total",
            "Session lookups sent to Ory (cache misses), by outcome.",
            "outcome",
            WhoamiOutcome::ALL.map(|o| (o.label(), load(&self.whoami[o as usize]))),
        )?;
        writeln!(out, "# HELP ory_proxy_jwt_minted_total JWTs signed (a cached token that is still fresh is reused, not counted).")?;
        writeln!(out, "# TYPE ory_proxy_jwt_minted_total counter")?;
        writeln!(out, "ory_proxy_jwt_minted_total {}", load(&self.minted))?;
        counter_family(
            out,
            "ory_proxy_config_reloads_total",
            "Reloads of proxy.toml after start-up (its content changed, or SIGHUP), by outcome.",
            "result",
            ReloadOutcome::ALL.map(|o| (o.label(), load(&self.reloads[o as usize]))),
        )?;
        writeln!(out, "# HELP ory_proxy_log_lines_dropped_total Log lines dropped because the log output (stderr) did not keep up.")?;
        writeln!(out, "# TYPE ory_proxy_log_lines_dropped_total counter")?;
        let dropped = LOG_LINES_DROPPED.load(Relaxed);
        writeln!(out, "ory_proxy_log_lines_dropped_total {dropped}")?;
        writeln!(out, "# HELP ory_proxy_rewrite_buffer_bytes Bytes of Ory answers held in memory for rewriting now, at most [limits].rewrite_budget.")?;
        writeln!(out, "# TYPE ory_proxy_rewrite_buffer_bytes gauge")?;
        writeln!(
            out,
            "ory_proxy_rewrite_buffer_bytes {}",
            load(&self.rewrite_buffer)
        )?;
        writeln!(out, "# HELP ory_proxy_rewrite_skipped_total Textual Ory answers passed on unrewritten because the rewrite budget was spent.")?;
        writeln!(out, "# TYPE ory_proxy_rewrite_skipped_total counter")?;
        writeln!(
            out,
            "ory_proxy_rewrite_skipped_total {}",
            load(&self.rewrite_skipped)
        )?;
        self.access.render_into(out)?;
        Ok(())
    }

    /// `ory_proxy_requests_total`: answers by who gave them and status class.
    fn render_requests(&self, out: &mut String) -> std::fmt::Result {
        writeln!(out, "# HELP ory_proxy_requests_total Requests answered, by who answered (app, ory, proxy) and status class.")?;
        writeln!(out, "# TYPE ory_proxy_requests_total counter")?;
        for by in Answerer::ALL {
            for (i, n) in self.requests[by as usize].iter().enumerate() {
                writeln!(
                    out,
                    "ory_proxy_requests_total{{upstream=\"{}\",code=\"{}xx\"}} {}",
                    by.label(),
                    i + 1,
                    n.load(Relaxed)
                )?;
            }
        }
        Ok(())
    }

    /// `ory_proxy_response_head_seconds`: the histogram of time to the answer's head.
    fn render_head_time(&self, out: &mut String) -> std::fmt::Result {
        writeln!(out, "# HELP ory_proxy_response_head_seconds Time from a request's arrival until its answer's head was ready; bodies stream after it.")?;
        writeln!(out, "# TYPE ory_proxy_response_head_seconds histogram")?;
        for by in Answerer::ALL {
            let h = &self.head_time[by as usize];
            let mut cumulative = 0;
            for (i, n) in h.counts.iter().enumerate() {
                cumulative += n.load(Relaxed);
                let le = BUCKETS.get(i).map_or("+Inf".to_string(), |b| b.to_string());
                writeln!(
                    out,
                    "ory_proxy_response_head_seconds_bucket{{upstream=\"{}\",le=\"{le}\"}} {cumulative}",
                    by.label()
                )?;
            }
            let sum = h.sum_micros.load(Relaxed) as f64 / 1e6;
            writeln!(
                out,
                "ory_proxy_response_head_seconds_sum{{upstream=\"{}\"}} {sum}",
                by.label()
            )?;
            writeln!(
                out,
                "ory_proxy_response_head_seconds_count{{upstream=\"{}\"}} {cumulative}",
                by.label()
            )?;
        }
        Ok(())
    }
}

/// A counter family with one label: its HELP and TYPE lines, then one sample per value.
fn counter_family(
    out: &mut String,
    name: &str,
    help: &str,
    label: &str,
    samples: impl IntoIterator<Item = (&'static str, u64)>,
) -> std::fmt::Result {
    writeln!(out, "# HELP {name} {help}")?;
    writeln!(out, "# TYPE {name} counter")?;
    for (value, n) in samples {
        writeln!(out, "{name}{{{label}=\"{value}\"}} {n}")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value(text: &str, series: &str) -> f64 {
        text.lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
            .unwrap_or_else(|| panic!("no series {series} in\n{text}"))
    }

    #[test]
    fn histogram_buckets_are_cumulative_and_end_at_the_count() {
        let m = Metrics::default();
        m.request(Answerer::App, 200, Duration::from_micros(300));
        m.request(Answerer::App, 204, Duration::from_millis(3));
        m.request(Answerer::App, 502, Duration::from_secs(7));
        m.request(Answerer::Ory, 101, Duration::from_millis(1));
        let t = m.render();
        let app = |le: &str| {
            value(
                &t,
                &format!("ory_proxy_response_head_seconds_bucket{{upstream=\"app\",le=\"{le}\"}}"),
            )
        };
        assert_eq!(app("0.0005"), 1.0);
        assert_eq!(app("0.0025"), 1.0);
        assert_eq!(app("0.005"), 2.0);
        assert_eq!(app("5"), 2.0);
        assert_eq!(app("+Inf"), 3.0);
        assert_eq!(
            value(
                &t,
                "ory_proxy_response_head_seconds_count{upstream=\"app\"}"
            ),
            3.0
        );
        let sum = value(&t, "ory_proxy_response_head_seconds_sum{upstream=\"app\"}");
        assert!((sum - 7.0033).abs() < 1e-6, "{sum}");
        // A bucket bound is inclusive (`le`): 1 ms lands in the 0.001 bucket.
        assert_eq!(
            value(
                &t,
                "ory_proxy_response_head_seconds_bucket{upstream=\"ory\",le=\"0.001\"}"
            ),
            1.0
        );
        assert_eq!(
            value(
                &t,
                "ory_proxy_requests_total{upstream=\"app\",code=\"2xx\"}"
            ),
            2.0
        );
        assert_eq!(
            value(
                &t,
                "ory_proxy_requests_total{upstream=\"app\",code=\"5xx\"}"
            ),
            1.0
        );
        assert_eq!(
            value(
                &t,
                "ory_proxy_requests_total{upstream=\"ory\",code=\"1xx\"}"
            ),
            1.0
        );
    }

    #[test]
    fn every_family_is_described_once_before_its_samples() {
        let m = Metrics::default();
        m.auth(AuthOutcome::Jwt);
        m.whoami(WhoamiOutcome::Failed);
        m.minted();
        m.reload(ReloadOutcome::Rejected);
        m.access.rule("admin").add(AccessDecision::Login);
        let t = m.render();
        assert_eq!(value(&t, "ory_proxy_app_auth_total{auth=\"jwt\"}"), 1.0);
        assert_eq!(value(&t, "ory_proxy_whoami_total{outcome=\"error\"}"), 1.0);
        assert_eq!(value(&t, "ory_proxy_jwt_minted_total"), 1.0);
        assert_eq!(
            value(&t, "ory_proxy_config_reloads_total{result=\"rejected\"}"),
            1.0
        );
        // Each family: exactly one HELP and one TYPE, both before its first sample; no
        // series twice; every value a number.
        let mut seen_series = std::collections::HashSet::new();
        let mut described: Vec<(String, usize, usize)> = Vec::new(); // family, HELPs, TYPEs
        for line in t.lines() {
            let mut words = line.split(' ');
            match (words.next(), words.next(), words.next()) {
                (Some("#"), Some(kind @ ("HELP" | "TYPE")), Some(family)) => {
                    let entry = match described.iter_mut().find(|(f, ..)| f == family) {
                        Some(e) => e,
                        None => {
                            described.push((family.to_string(), 0, 0));
                            described.last_mut().unwrap()
                        }
                    };
                    if kind == "HELP" {
                        entry.1 += 1;
                    } else {
                        entry.2 += 1;
                    }
                }
                _ => {
                    let (series, v) = line.rsplit_once(' ').expect("series value");
                    assert!(v.parse::<f64>().is_ok(), "not a number: {line}");
                    assert!(seen_series.insert(series.to_string()), "twice: {series}");
                    let name = series.split('{').next().unwrap_or("");
                    let family = ["_bucket", "_sum", "_count"]
                        .iter()
                        .find_map(|s| {
                            let f = name.strip_suffix(s)?;
                            described.iter().any(|(d, ..)| d == f).then_some(f)
                        })
                        .unwrap_or(name);
                    let d = described.iter().find(|(f, ..)| f == family);
                    assert_eq!(
                        d.map(|(_, h, t)| (*h, *t)),
                        Some((1, 1)),
                        "{line}: its family {family} needs one HELP and one TYPE before it"
                    );
                }
            }
        }
        assert_eq!(described.len(), 12, "{described:?}");
        assert!(described.iter().all(|(_, h, t)| (*h, *t) == (1, 1)));
    }
}
