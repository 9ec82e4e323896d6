//! The weight (`;q=`) of an `Accept-Encoding` item: the proxy asks Ory only for codings the
//! client accepts, and the Ory emulator compresses only for them.

/// Whether an item's parameters (what follows the coding, split on `;`) give it weight 0,
/// i.e. "not acceptable". Parameter names are case-insensitive (RFC 9110 §5.6.6), so `Q=0`
/// refuses as `q=0` does. A value that reads as zero or below counts as zero even where the
/// grammar is stricter (`0.0000`, `-1`): refusing a coding is always safe, sending one the
/// client refused is not.
pub fn is_zero<'a>(params: impl IntoIterator<Item = &'a str>) -> bool {
    params.into_iter().any(|param| {
        param.split_once('=').is_some_and(|(name, value)| {
            name.trim().eq_ignore_ascii_case("q")
                && value.trim().parse::<f32>().is_ok_and(|q| q <= 0.0)
        })
    })
}

#[cfg(test)]
mod tests {
    use super::is_zero;

    fn params(item: &str) -> Vec<&str> {
        item.split(';').skip(1).collect()
    }

    #[test]
    fn q_zero_in_any_case_refuses() {
        for item in [
            "gzip;q=0",
            "gzip;Q=0",
            "gzip ; Q = 0.000",
            "gzip;level=1;q=0",
        ] {
            assert!(is_zero(params(item)), "{item}");
        }
        for item in [
            "gzip",
            "gzip;q=0.001",
            "gzip;Q=1",
            "gzip;q=",
            "gzip;q=zero",
            "gzip;x=0",
        ] {
            assert!(!is_zero(params(item)), "{item}");
        }
    }
}
