//! Ory body rewriting (SPEC §5.5): every occurrence of Ory's own URL in a textual Ory answer
//! becomes `<PUBLISH_URL>/.ory`, so links and form actions in Kratos' HTML and JSON stay on the
//! app's domain. Self-hosted Kratos ignores `Ory-Base-URL-Rewrite`, so this is needed.
//!
//! Encodings: the proxy asks Ory only for `gzip`, `deflate` or `identity` (see
//! [`ORY_ACCEPT_ENCODING`]) and decodes/re-encodes those; an answer in any other encoding
//! passes through unrewritten. App bodies never come here.

use std::io::{Read, Write};

use bytes::Bytes;
use flate2::{read, write, Compression};

/// The `Accept-Encoding` the proxy sends to Ory whatever the browser sent.
pub const ORY_ACCEPT_ENCODING: &str = "gzip, deflate;q=0.8, identity;q=0.5";

/// The most of an Ory answer held in memory for rewriting. An answer that declares a larger
/// `Content-Length` streams through unrewritten, one that inflates beyond it goes out as it
/// came, and one of unknown length that exceeds it is a 502 (Ory's pages and JSON are tiny).
pub const MAX_REWRITE_BODY: usize = 8 * 1024 * 1024;

/// A body encoding the proxy can decode and encode again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    Identity,
    Gzip,
    Deflate,
}

impl Encoding {
    /// From a `Content-Encoding` value; `None` for anything else (br, zstd, stacked codings).
    pub fn from_header(value: Option<&str>) -> Option<Encoding> {
        match value.map(|v| v.trim().to_ascii_lowercase()).as_deref() {
            None | Some("") | Some("identity") => Some(Encoding::Identity),
            Some("gzip") | Some("x-gzip") => Some(Encoding::Gzip),
            Some("deflate") => Some(Encoding::Deflate),
            _ => None,
        }
    }
}

/// Whether a `Content-Type` is text the browser will read URLs from. Not an event stream:
/// rewriting reads the whole body first, and a stream has no end to wait for.
pub fn is_textual(content_type: &str) -> bool {
    let mime = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    (mime.starts_with("text/") && mime != "text/event-stream")
        || mime == "application/json"
        || mime.ends_with("+json")
        || mime == "application/javascript"
        || mime == "application/xml"
        || mime.ends_with("+xml")
}

#[derive(Debug, thiserror::Error)]
#[error("cannot decode the {encoding:?} body from Ory: {source}")]
pub struct BodyRewriteError {
    pub encoding: Encoding,
    #[source]
    pub source: std::io::Error,
}

/// Replaces `from` by `to` in the decoded body and encodes it again. Returns the input bytes
/// untouched when `from` does not occur.
pub fn rewrite(
    body: Bytes,
    enc: Encoding,
    from: &str,
    to: &str,
) -> Result<Bytes, BodyRewriteError> {
    if body.is_empty() {
        return Ok(body);
    }
    let err = |source| BodyRewriteError {
        encoding: enc,
        source,
    };
    // Decoding stops one byte past the limit: a body that inflates beyond it (a gzip bomb, or
    // just a huge page) is passed on as it came instead of filling memory.
    let limit = MAX_REWRITE_BODY as u64 + 1;
    let plain: Vec<u8> = match enc {
        Encoding::Identity => {
            return Ok(replace_all(&body, from.as_bytes(), to.as_bytes()).map_or(body, Bytes::from))
        }
        Encoding::Gzip => {
            let mut out = Vec::with_capacity(body.len() * 4);
            read::MultiGzDecoder::new(&body[..])
                .take(limit)
                .read_to_end(&mut out)
                .map_err(err)?;
            out
        }
        Encoding::Deflate => {
            let mut out = Vec::with_capacity(body.len() * 4);
            // "deflate" is zlib-wrapped per RFC 9110, but some servers send raw deflate.
            if read::ZlibDecoder::new(&body[..])
                .take(limit)
                .read_to_end(&mut out)
                .is_err()
            {
                out.clear();
                read::DeflateDecoder::new(&body[..])
                    .take(limit)
                    .read_to_end(&mut out)
                    .map_err(err)?;
            }
            out
        }
    };
    if plain.len() as u64 >= limit {
        return Ok(body);
    }
    let Some(replaced) = replace_all(&plain, from.as_bytes(), to.as_bytes()) else {
        return Ok(body);
    };
    let encoded = match enc {
        Encoding::Gzip => {
            let mut e = write::GzEncoder::new(Vec::new(), Compression::fast());
            e.write_all(&replaced)
                .and_then(|_| e.finish())
                .map_err(err)?
        }
        Encoding::Deflate => {
            let mut e = write::ZlibEncoder::new(Vec::new(), Compression::fast());
            e.write_all(&replaced)
                .and_then(|_| e.finish())
                .map_err(err)?
        }
        Encoding::Identity => replaced,
    };
    Ok(Bytes::from(encoded))
}

/// `Some(new)` when `from` occurs in `hay` as a whole URL prefix: a match followed by a byte
/// that continues a host or port (`…:4433` inside `…:44330`, `example.com` inside
/// `example.com.evil`, `%2e` that a browser decodes in a host) or makes it userinfo
/// (`…:4433@evil.com`) is not Ory's URL and stays.
fn replace_all(hay: &[u8], from: &[u8], to: &[u8]) -> Option<Vec<u8>> {
    if from.is_empty() {
        return None;
    }
    let continues =
        |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_' | b':' | b'@' | b'%');
    let finder = memchr::memmem::Finder::new(from);
    let mut matches = finder
        .find_iter(hay)
        .filter(|&m| hay.get(m + from.len()).is_none_or(|&b| !continues(b)))
        .peekable();
    matches.peek()?;
    let mut out = Vec::with_capacity(hay.len() + to.len() * 4);
    let mut last = 0;
    for m in matches {
        out.extend_from_slice(&hay[last..m]);
        out.extend_from_slice(to);
        last = m + from.len();
    }
    out.extend_from_slice(&hay[last..]);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const FROM: &str = "https://kratos.internal:4433";
    const TO: &str = "http://localhost:4000/.ory";

    fn gzip(b: &[u8]) -> Vec<u8> {
        let mut e = write::GzEncoder::new(Vec::new(), Compression::default());
        e.write_all(b).unwrap();
        e.finish().unwrap()
    }

    fn gunzip(b: &[u8]) -> String {
        let mut s = String::new();
        read::GzDecoder::new(b).read_to_string(&mut s).unwrap();
        s
    }

    #[test]
    fn identity_all_occurrences() {
        let body = Bytes::from(format!("<a href=\"{FROM}/ui/login\">{FROM}</a>"));
        let out = rewrite(body, Encoding::Identity, FROM, TO).unwrap();
        assert_eq!(out, format!("<a href=\"{TO}/ui/login\">{TO}</a>"));
    }

    #[test]
    fn gzip_round_trip() {
        let body = Bytes::from(gzip(
            format!("{{\"action\":\"{FROM}/self-service/login?flow=1\"}}").as_bytes(),
        ));
        let out = rewrite(body, Encoding::Gzip, FROM, TO).unwrap();
        assert_eq!(
            gunzip(&out),
            format!("{{\"action\":\"{TO}/self-service/login?flow=1\"}}")
        );
    }

    #[test]
    fn deflate_zlib_and_raw() {
        let plain = format!("x {FROM} y");
        let mut z = write::ZlibEncoder::new(Vec::new(), Compression::default());
        z.write_all(plain.as_bytes()).unwrap();
        let out = rewrite(
            Bytes::from(z.finish().unwrap()),
            Encoding::Deflate,
            FROM,
            TO,
        )
        .unwrap();
        let mut s = String::new();
        read::ZlibDecoder::new(&out[..])
            .read_to_string(&mut s)
            .unwrap();
        assert_eq!(s, format!("x {TO} y"));

        let mut r = write::DeflateEncoder::new(Vec::new(), Compression::default());
        r.write_all(plain.as_bytes()).unwrap();
        assert!(rewrite(
            Bytes::from(r.finish().unwrap()),
            Encoding::Deflate,
            FROM,
            TO
        )
        .is_ok());
    }

    #[test]
    fn empty_and_oversized_bodies_pass_unchanged() {
        assert_eq!(
            rewrite(Bytes::new(), Encoding::Gzip, FROM, TO).unwrap(),
            Bytes::new()
        );
        let mut huge = format!("{FROM} ").into_bytes();
        huge.resize(MAX_REWRITE_BODY + 10, b' ');
        let bomb = Bytes::from(gzip(&huge));
        assert_eq!(
            rewrite(bomb.clone(), Encoding::Gzip, FROM, TO).unwrap(),
            bomb
        );
    }

    #[test]
    fn only_whole_urls_are_replaced() {
        let body = Bytes::from(format!(
            "{FROM}0/x {FROM}.evil.com {FROM}@evil.com {FROM}%2eevil.com {FROM}/ok \"{FROM}\""
        ));
        let out = rewrite(body, Encoding::Identity, FROM, TO).unwrap();
        assert_eq!(
            out,
            format!("{FROM}0/x {FROM}.evil.com {FROM}@evil.com {FROM}%2eevil.com {TO}/ok \"{TO}\"")
        );
    }

    #[test]
    fn untouched_when_absent_and_error_when_corrupt() {
        let body = Bytes::from_static(b"nothing here");
        assert_eq!(
            rewrite(body.clone(), Encoding::Identity, FROM, TO).unwrap(),
            body
        );
        assert!(rewrite(Bytes::from_static(b"not gzip"), Encoding::Gzip, FROM, TO).is_err());
    }

    #[test]
    fn textual_types() {
        for t in [
            "text/html; charset=utf-8",
            "application/json",
            "application/problem+json",
            "application/javascript",
            "image/svg+xml",
        ] {
            assert!(is_textual(t), "{t}");
        }
        for t in [
            "image/png",
            "application/octet-stream",
            "font/woff2",
            "text/event-stream",
        ] {
            assert!(!is_textual(t), "{t}");
        }
        assert_eq!(Encoding::from_header(Some("br")), None);
        assert_eq!(Encoding::from_header(Some("GZIP")), Some(Encoding::Gzip));
    }
}
