//! The pieces of a log line, written straight into the line's buffer with `push_str` rather
//! than `write!` (the formatting machinery costs as much as the rest of an access line): the
//! time, the level, numbers, and values quoted for text or escaped for JSON.

use std::cell::RefCell;
use std::fmt::Write as _;
use std::time::{Duration, SystemTime};

use log::Level;

/// A `key=value` value as written, or quoted when it has a space, a quote or an `=` (a rule
/// name such as `rule 2`), so the line still splits into its fields.
pub(super) fn text_value(line: &mut String, v: &str) {
    if v.is_empty() || v.contains([' ', '"', '=', '\\']) {
        json_string(line, v);
    } else {
        line.push_str(v);
    }
}

/// `12.345`: milliseconds with three decimals, in integer arithmetic (float formatting with
/// a precision costs about a tenth of the whole line).
pub(super) fn millis(line: &mut String, d: Duration) {
    let micros = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
    push_u64(line, micros / 1000);
    line.push('.');
    push_three_digits(line, micros);
}

/// `n` in decimal.
pub(super) fn push_u64(line: &mut String, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    for &d in &digits[at..] {
        line.push(char::from(d));
    }
}

/// `n % 1000` as three digits, with leading zeros (`{:03}`).
fn push_three_digits(line: &mut String, n: u64) {
    for d in [n / 100 % 10, n / 10 % 10, n % 10] {
        line.push(char::from(b'0' + d as u8));
    }
}

/// Appends the current time as `2026-01-02T03:04:05.678Z` (RFC 3339, UTC, milliseconds, as
/// env_logger writes it). The part up to the second is formatted once per second per thread.
pub(super) fn timestamp(line: &mut String) {
    thread_local! {
        static SECOND: RefCell<(u64, String)> = const { RefCell::new((u64::MAX, String::new())) };
    }
    let now = SystemTime::now();
    let since = now
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    let (secs, ms) = (since.as_secs(), since.subsec_millis());
    let cached = SECOND.try_with(|c| {
        let Ok(mut c) = c.try_borrow_mut() else {
            return false;
        };
        if c.0 != secs {
            let whole = humantime::format_rfc3339_seconds(now).to_string();
            // `…:05Z` → `…:05.`
            c.1 = whole.trim_end_matches('Z').to_string() + ".";
            c.0 = secs;
        }
        line.push_str(&c.1);
        true
    });
    if cached.unwrap_or(false) {
        push_three_digits(line, ms.into());
        line.push('Z');
    } else {
        let _ = write!(line, "{}", humantime::format_rfc3339_millis(now));
    }
}

/// The level's name padded to five characters, as `{level:<5}` writes it.
pub(super) fn padded(level: Level) -> &'static str {
    match level {
        Level::Error => "ERROR",
        Level::Warn => "WARN ",
        Level::Info => "INFO ",
        Level::Debug => "DEBUG",
        Level::Trace => "TRACE",
    }
}

/// Indents the message's later lines by four spaces, as env_logger does, so that a
/// multi-line message stays visibly one record.
pub(super) fn indent_continuations(line: &mut String, start: usize) {
    if line[start..].contains('\n') {
        let indented = line[start..].replace('\n', "\n    ");
        line.truncate(start);
        line.push_str(&indented);
    }
}

/// `,"key":"value"` with the value escaped.
pub(super) fn json_field(line: &mut String, key: &str, value: &str) {
    line.push_str(",\"");
    line.push_str(key);
    line.push_str("\":");
    json_string(line, value);
}

pub(super) fn json_string(line: &mut String, s: &str) {
    line.push('"');
    for c in s.chars() {
        match c {
            '"' => line.push_str("\\\""),
            '\\' => line.push_str("\\\\"),
            '\n' => line.push_str("\\n"),
            '\r' => line.push_str("\\r"),
            '\t' => line.push_str("\\t"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                let _ = write!(line, "\\u{:04x}", c as u32);
            }
            c => line.push(c),
        }
    }
    line.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_strings_escape_what_json_requires() {
        let mut s = String::new();
        json_string(&mut s, "a\"b\\c\nd\u{1}é\u{7f}");
        assert_eq!(s, r#""a\"b\\c\nd\u0001é\u007f""#);
        let v: serde_json::Value = serde_json::from_str(&s).unwrap();
        assert_eq!(v, "a\"b\\c\nd\u{1}é\u{7f}");
    }

    #[test]
    fn timestamps_are_rfc3339_millis_and_match_humantime() {
        let before = SystemTime::now();
        let mut s = String::new();
        timestamp(&mut s);
        timestamp(&mut s);
        let (a, b) = s.split_at(s.len() / 2);
        for t in [a, b] {
            assert_eq!(t.len(), "2026-01-02T03:04:05.678Z".len(), "{t}");
            let parsed = humantime::parse_rfc3339(t).unwrap();
            let lag = parsed.duration_since(before - Duration::from_millis(1));
            assert!(lag.is_ok_and(|d| d < Duration::from_secs(5)), "{t}");
        }
    }

    #[test]
    fn text_values_are_quoted_only_when_they_would_split() {
        let mut s = String::new();
        for v in ["admin", "rule 2", "a\"b", "x=y", ""] {
            text_value(&mut s, v);
            s.push('|');
        }
        assert_eq!(s, r#"admin|"rule 2"|"a\"b"|"x=y"|""|"#);
    }

    #[test]
    fn durations_have_three_decimals() {
        let mut s = String::new();
        for us in [12_345, 7, 0, 1_000, 999_999_999] {
            millis(&mut s, Duration::from_micros(us));
            s.push(' ');
        }
        millis(&mut s, Duration::MAX);
        assert_eq!(
            s,
            format!(
                "12.345 0.007 0.000 1.000 999999.999 {}.{:03}",
                u64::MAX / 1000,
                u64::MAX % 1000
            )
        );
    }

    #[test]
    fn integers_and_padded_levels_match_the_formatting_machinery() {
        for n in [0u64, 9, 10, 99, 100, 200, 404, 65_535, 1 << 40, u64::MAX] {
            let mut s = String::new();
            push_u64(&mut s, n);
            assert_eq!(s, n.to_string());
        }
        for level in [
            Level::Error,
            Level::Warn,
            Level::Info,
            Level::Debug,
            Level::Trace,
        ] {
            assert_eq!(padded(level), format!("{level:<5}"));
        }
    }

    #[test]
    fn text_continuation_lines_are_indented() {
        let mut s = String::from("[h] ");
        s.push_str("one\ntwo");
        indent_continuations(&mut s, 4);
        assert_eq!(s, "[h] one\n    two");
    }
}
