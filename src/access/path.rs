//! The path the rules are matched on: the request path as an app reads it, so that no other
//! spelling of a protected path slips past its rule. The app still receives the raw path byte
//! for byte; this is only what the rules see.
//!
//! Read as an app would: percent-decoded once (`%2F` included, so it separates segments),
//! `;parameters` cut from each segment (`/admin;x=1/y` is `/admin/y`, `..;` is `..`), empty
//! segments dropped (`//admin` is `/admin`, and so is `/admin/`), dot segments resolved
//! (`/public/../admin` is `/admin`).
//!
//! Not every app resolves dot segments (Express and Flask route `/admin/../public` under
//! `/admin`), so a path that has any is also kept as written, dot segments in place: the rule
//! set then applies the stricter of the rules the two spellings meet (see [`super::rules`]).

use memchr::memchr;

/// The segments of one request path, as the rules read them.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Spellings<'a> {
    /// Decoded, parameters cut, empty and dot segments resolved.
    pub resolved: Vec<&'a [u8]>,
    /// The same with the dot segments left in place; `None` when the path has none (then it
    /// is `resolved`).
    pub written: Option<Vec<&'a [u8]>>,
}

/// The spellings of `raw_path` (no query). `scratch` holds the decoded path when it has escapes.
pub fn spellings<'a>(raw_path: &'a str, scratch: &'a mut Vec<u8>) -> Spellings<'a> {
    let src: &'a [u8] = if memchr(b'%', raw_path.as_bytes()).is_some() {
        percent_decode_into(raw_path.as_bytes(), scratch)
    } else {
        raw_path.as_bytes()
    };
    segments(src)
}

/// The spellings of `raw_path` with ASCII letters lowercased after decoding, for apps whose
/// routes ignore case (Express and Koa by default, ASP.NET, IIS): `None` when that reading is
/// the path's own (no uppercase letter in it) and the globs have none either (`globs_upper`).
/// `scratch` holds the lowercased path.
pub fn lowercase_spellings<'a>(
    raw_path: &str,
    globs_upper: bool,
    scratch: &'a mut Vec<u8>,
) -> Option<Spellings<'a>> {
    let raw = raw_path.as_bytes();
    if memchr(b'%', raw).is_some() {
        percent_decode_into(raw, scratch);
    } else {
        // The common case, a plain lowercase path: no copy.
        if !globs_upper && !raw.iter().any(u8::is_ascii_uppercase) {
            return None;
        }
        scratch.clear();
        scratch.extend_from_slice(raw);
    }
    if !globs_upper && !scratch.iter().any(u8::is_ascii_uppercase) {
        return None;
    }
    scratch.make_ascii_lowercase();
    Some(segments(scratch))
}

/// The path as a WHATWG URL parser reads it (Node's `new URL(req.url, base)`, Next.js, Hono,
/// Deno, Bun): `\` is `/`, and a path starting with `//` names a host, the path being what
/// follows it (`//x/admin` is `/admin`). `None` when that is the path itself. Matched as one
/// more reading, the stricter rule applying.
pub fn url_parser_path(raw_path: &str) -> Option<String> {
    if !raw_path.contains('\\') && !raw_path.starts_with("//") {
        return None;
    }
    let slashed = raw_path.replace('\\', "/");
    let Some(after) = slashed.strip_prefix("//") else {
        return Some(slashed);
    };
    Some(
        after
            .find('/')
            .map_or("/".into(), |i| after[i..].to_string()),
    )
}

/// The spellings of an already decoded path.
fn segments(src: &[u8]) -> Spellings<'_> {
    let mut out = Spellings {
        resolved: Vec::with_capacity(8),
        written: None,
    };
    for seg in src.split(|&b| b == b'/') {
        let seg = match memchr(b';', seg) {
            Some(i) => &seg[..i],
            None => seg,
        };
        match seg {
            b"" => continue,
            b"." | b".." => {
                let written = out.written.get_or_insert_with(|| out.resolved.clone());
                written.push(seg);
                if seg == b".." {
                    out.resolved.pop();
                }
            }
            _ => {
                out.resolved.push(seg);
                if let Some(w) = &mut out.written {
                    w.push(seg);
                }
            }
        }
    }
    out
}

/// Decodes every valid `%XX` once into `buf` (cleared first); other bytes, and a `%` that starts
/// no valid escape, are kept as they are.
fn percent_decode_into<'a>(raw: &[u8], buf: &'a mut Vec<u8>) -> &'a [u8] {
    buf.clear();
    buf.reserve(raw.len());
    let mut i = 0;
    while i < raw.len() {
        let b = raw[i];
        if b == b'%' && i + 2 < raw.len() {
            if let (Some(h), Some(l)) = (hex(raw[i + 1]), hex(raw[i + 2])) {
                buf.push(h << 4 | l);
                i += 3;
                continue;
            }
        }
        buf.push(b);
        i += 1;
    }
    buf
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Segments as a path for people (`/a/b`, `/` for none); bytes that are not UTF-8 shown as �.
pub fn display(segments: &[&[u8]]) -> String {
    if segments.is_empty() {
        return "/".into();
    }
    let mut s = String::new();
    for seg in segments {
        s.push('/');
        s.push_str(&String::from_utf8_lossy(seg));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolved(raw: &str) -> String {
        let mut buf = Vec::new();
        display(&spellings(raw, &mut buf).resolved)
    }

    fn written(raw: &str) -> Option<String> {
        let mut buf = Vec::new();
        spellings(raw, &mut buf).written.map(|w| display(&w))
    }

    #[test]
    fn every_spelling_of_a_path_reads_as_the_app_reads_it() {
        for raw in [
            "/admin/x",
            "/%61dmin/x",
            "/%61%64%6D%69%6e/x",
            "//admin/x",
            "/admin//x/",
            "/admin/./x",
            "/public/../admin/x",
            "/admin%2Fx",
            "/admin%2fx",
            "/admin;x=1/x",
            "/admin/x;jsessionid=1",
            "/public/..;/admin/x",
            "/public/..%3B/admin/x",
            "/a/b/../../admin/x",
            "/../admin/x",
            "/admin/%2E/x",
            "/public/%2E%2E/admin/x",
            "/public%2F..%2Fadmin/x",
        ] {
            assert_eq!(resolved(raw), "/admin/x", "{raw}");
        }
    }

    #[test]
    fn plain_paths_and_odd_escapes() {
        assert_eq!(resolved("/"), "/");
        assert_eq!(resolved(""), "/");
        assert_eq!(resolved("*"), "/*");
        assert_eq!(resolved("/a%zz/b%"), "/a%zz/b%");
        assert_eq!(resolved("/a%2"), "/a%2");
        assert_eq!(resolved("/a%252F"), "/a%2F", "decoded once only");
        assert_eq!(resolved("/caf%C3%A9"), "/café");
        assert_eq!(resolved("/;x/admin"), "/admin");
        assert_eq!(resolved("/a\\b"), "/a\\b");
    }

    #[test]
    fn dot_segments_keep_the_written_spelling_too() {
        assert_eq!(written("/admin/x"), None);
        assert_eq!(written("/%61dmin//x;p"), None);
        assert_eq!(
            written("/admin/../public/x").as_deref(),
            Some("/admin/../public/x")
        );
        assert_eq!(resolved("/admin/../public/x"), "/public/x");
        assert_eq!(
            written("/admin%2F..%2Fpublic").as_deref(),
            Some("/admin/../public")
        );
        assert_eq!(written("/a/./b").as_deref(), Some("/a/./b"));
    }
}
