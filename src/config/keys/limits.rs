//! `[limits]`: bounds on what one client, or all of them at once, can make the proxy hold.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::config::check::{text, Check};
use crate::config::error::ConfigError;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsSection {
    /// No byte of a request body for this long while the proxy waits for one: 408. At least
    /// `1s`.
    pub body_idle_timeout: Option<String>,
    /// Bytes of Ory answers held for rewriting at once, across all requests: `"512KiB"`,
    /// `"64MiB"`, `"1GiB"` or a number of bytes.
    pub rewrite_budget: Option<String>,
}

/// The keys of `[limits]` a reload applies without a restart: none, the server is built with
/// them once.
pub const LIVE: &[&str] = &[];

/// `[limits]` as the running proxy uses it (fixed at start).
#[derive(Debug, Clone, PartialEq)]
pub struct LimitsFixed {
    pub body_idle_timeout: Duration,
    pub rewrite_budget: u64,
}

impl LimitsSection {
    pub fn defaults() -> Self {
        LimitsSection {
            body_idle_timeout: Some("30s".into()),
            rewrite_budget: Some("64MiB".into()),
        }
    }

    pub fn fixed(&self, c: &Check<'_>) -> Result<LimitsFixed, ConfigError> {
        let body_idle_timeout = c.duration("body_idle_timeout", text(&self.body_idle_timeout))?;
        if body_idle_timeout < Duration::from_secs(1) {
            return Err(c.err("body_idle_timeout", "must be at least 1s"));
        }
        Ok(LimitsFixed {
            body_idle_timeout,
            rewrite_budget: c.size("rewrite_budget", text(&self.rewrite_budget))?,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;

    use super::*;
    use crate::config::error::Origin;

    fn fixed(body_idle_timeout: &str, rewrite_budget: &str) -> Result<LimitsFixed, ConfigError> {
        let origin = |_: &str| Origin::Default;
        let effective = RefCell::default();
        let c = Check::new(&origin, &effective);
        LimitsSection {
            body_idle_timeout: Some(body_idle_timeout.into()),
            rewrite_budget: Some(rewrite_budget.into()),
        }
        .fixed(&c.section("limits"))
    }

    #[test]
    fn limits_take_durations_and_binary_sizes() {
        let origin = |_: &str| Origin::Default;
        let effective = RefCell::default();
        let d = LimitsSection::defaults()
            .fixed(&Check::new(&origin, &effective).section("limits"))
            .unwrap();
        assert_eq!(d.body_idle_timeout, Duration::from_secs(30));
        assert_eq!(d.rewrite_budget, 64 << 20);
        let s = fixed("1s", "512KiB").unwrap();
        assert_eq!(s.body_idle_timeout, Duration::from_secs(1));
        assert_eq!(s.rewrite_budget, 512 << 10);
        for (ok, budget) in [
            (true, "0"),
            (true, "1000"),
            (true, "2GiB"),
            (false, "64MB"),
            (false, "-1"),
            (false, "MiB"),
            (false, "99999999999GiB"),
        ] {
            let r = fixed("30s", budget);
            assert_eq!(r.is_ok(), ok, "{budget}: {r:?}");
        }
        let e = fixed("0s", "64MiB").unwrap_err();
        assert!(e.to_string().contains("limits.body_idle_timeout"), "{e}");
    }
}
