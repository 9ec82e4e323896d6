//! What this binary is: version, commit and build date, stamped by `build.rs`. One source for
//! `--version`, the start-up banner and the metrics' `ory_proxy_build_info`.

/// The crate version, e.g. `0.1.0`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The commit built (12 hex digits), or `unknown` outside a git checkout.
pub const COMMIT: &str = env!("ORY_PROXY_COMMIT");

/// The UTC build date, `YYYY-MM-DD`.
pub const BUILD_DATE: &str = env!("ORY_PROXY_BUILD_DATE");

/// `0.1.0 (commit 0123456789ab, built 2025-01-31)`: after the name in `--version`, and on the
/// banner's version line.
pub const LONG: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("ORY_PROXY_COMMIT"),
    ", built ",
    env!("ORY_PROXY_BUILD_DATE"),
    ")"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_is_made_of_the_parts() {
        assert_eq!(
            LONG,
            format!("{VERSION} (commit {COMMIT}, built {BUILD_DATE})")
        );
        assert!(
            COMMIT == "unknown"
                || (COMMIT.len() == 12 && COMMIT.bytes().all(|b| b.is_ascii_hexdigit())),
            "{COMMIT}"
        );
        let date: jiff::civil::Date = BUILD_DATE.parse().expect("YYYY-MM-DD");
        assert!(date.year() >= 2024, "{date}");
    }
}
