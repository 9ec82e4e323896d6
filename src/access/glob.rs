//! The globs of access rules: over paths (`*` within one segment, `**` any number of whole
//! segments) and over email addresses (`*` any run of characters, case-insensitive).
//!
//! Both match in time linear in the input for each pattern piece (the greedy algorithm with one
//! backtrack point, as for `*` in file names): a hostile path of thousands of segments costs
//! thousands of comparisons, never an exponential search.

use memchr::memmem;

/// One segment of a path glob.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Seg {
    /// Exactly these bytes.
    Literal(Box<[u8]>),
    /// A segment with `*` in it: the pieces between the stars, in order.
    Star(Wild),
    /// `**`: any number of segments, none included.
    AnyDepth,
}

/// `*`-globs within one string: the literal pieces between the stars (`a*b` is `["a", "b"]`).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Wild {
    pieces: Box<[Box<[u8]>]>,
}

impl Wild {
    fn new(text: &[u8]) -> Wild {
        Wild {
            pieces: text.split(|&b| b == b'*').map(Box::from).collect(),
        }
    }

    /// Whether `s` is the first piece, then each middle piece in order, then the last one.
    fn matches(&self, s: &[u8]) -> bool {
        let Some((first, rest)) = self.pieces.split_first() else {
            return s.is_empty();
        };
        let Some((last, middle)) = rest.split_last() else {
            return **first == *s;
        };
        // An empty piece is not compared: a zero-length compare against an empty slice's
        // dangling pointer took ~100 ns here, in libc's memcmp (a tenth of the budget).
        if s.len() < first.len() + last.len()
            || !(first.is_empty() || s.starts_with(first))
            || !(last.is_empty() || s.ends_with(last))
        {
            return false;
        }
        let mut hay = &s[first.len()..s.len() - last.len()];
        for piece in middle {
            match memmem::find(hay, piece) {
                Some(i) => hay = &hay[i + piece.len()..],
                None => return false,
            }
        }
        true
    }
}

impl Seg {
    fn matches(&self, segment: &[u8]) -> bool {
        match self {
            Seg::Literal(l) => **l == *segment,
            Seg::Star(w) => w.matches(segment),
            Seg::AnyDepth => true,
        }
    }
}

/// A path glob of a rule, such as `/admin/**` or `/files/*.pdf`, matched against the path's
/// segments (see [`super::path`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathGlob {
    text: Box<str>,
    segs: Box<[Seg]>,
}

impl PathGlob {
    /// The glob as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Parses a glob as written in `paths`; the error says what is wrong with it.
    pub fn parse(text: &str) -> Result<PathGlob, String> {
        let Some(rest) = text.strip_prefix('/') else {
            return Err(format!("{text:?} must start with /"));
        };
        if let Some(c) = text
            .chars()
            .find(|c| c.is_control() || c.is_whitespace() || matches!(c, '?' | '#' | '%' | ';'))
        {
            return Err(format!(
                "{text:?} contains {c:?}: write the path as an app reads it, decoded, without query or ;parameters"
            ));
        }
        if rest.is_empty() {
            return Ok(PathGlob {
                text: text.into(),
                segs: Box::new([]),
            });
        }
        if let Some(bare) = rest.strip_suffix('/').filter(|b| !b.ends_with('/')) {
            return Err(format!(
                "{text:?} ends with /: paths are matched without a trailing slash; write \"/{bare}\" (or \"/{bare}/**\" for everything below it)"
            ));
        }
        let mut segs: Vec<Seg> = Vec::new();
        for seg in rest.split('/') {
            match seg {
                "" => return Err(format!("{text:?} has an empty segment (//)")),
                "." | ".." => {
                    return Err(format!(
                        "{text:?} has a dot segment: paths are matched with dot segments resolved"
                    ))
                }
                "**" => {
                    // `**/**` is `**`.
                    if segs.last() != Some(&Seg::AnyDepth) {
                        segs.push(Seg::AnyDepth);
                    }
                }
                s if s.contains("**") => {
                    return Err(format!(
                        "{text:?}: `**` stands for whole segments only (like /a/**/b); `*` matches within one"
                    ))
                }
                s if s.contains('*') => segs.push(Seg::Star(Wild::new(s.as_bytes()))),
                s => segs.push(Seg::Literal(s.as_bytes().into())),
            }
        }
        Ok(PathGlob {
            text: text.into(),
            segs: segs.into(),
        })
    }

    /// The same glob with ASCII letters lowercased, for the case-insensitive reading.
    pub fn to_ascii_lowercase(&self) -> PathGlob {
        let lower = |b: &[u8]| -> Box<[u8]> { b.to_ascii_lowercase().into() };
        PathGlob {
            text: self.text.to_ascii_lowercase().into(),
            segs: self
                .segs
                .iter()
                .map(|s| match s {
                    Seg::Literal(l) => Seg::Literal(lower(l)),
                    Seg::Star(w) => Seg::Star(Wild {
                        pieces: w.pieces.iter().map(|p| lower(p)).collect(),
                    }),
                    Seg::AnyDepth => Seg::AnyDepth,
                })
                .collect(),
        }
    }

    /// The first segment when it is literal: the rule index files the glob under it.
    pub fn first_literal(&self) -> Option<&[u8]> {
        match self.segs.first() {
            None => Some(b""),
            Some(Seg::Literal(l)) => Some(l),
            Some(_) => None,
        }
    }

    /// Whether the glob matches the path made of `segments`.
    pub fn matches(&self, segments: &[&[u8]]) -> bool {
        let pat = &self.segs;
        let (mut p, mut s) = (0, 0);
        // The last `**` seen and the segment it was tried at: where to resume on a mismatch.
        let mut resume: Option<(usize, usize)> = None;
        while s < segments.len() {
            match pat.get(p) {
                Some(Seg::AnyDepth) => {
                    resume = Some((p, s));
                    p += 1;
                    continue;
                }
                Some(seg) if seg.matches(segments[s]) => {
                    p += 1;
                    s += 1;
                    continue;
                }
                _ => {}
            }
            match resume {
                // Let the `**` take one segment more.
                Some((star, at)) => {
                    p = star + 1;
                    s = at + 1;
                    resume = Some((star, at + 1));
                }
                None => return false,
            }
        }
        pat[p..].iter().all(|seg| *seg == Seg::AnyDepth)
    }
}

/// An `allow_emails` entry such as `*@example.org`: `*` matches any run of characters, letters
/// in any case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmailGlob {
    text: Box<str>,
    wild: Wild,
}

impl EmailGlob {
    /// The glob as written (trimmed).
    pub fn as_str(&self) -> &str {
        &self.text
    }

    pub fn parse(text: &str) -> Result<EmailGlob, String> {
        let t = text.trim();
        if !t.contains('@') {
            return Err(format!(
                "{text:?} is not an address glob: write whole addresses like \"*@example.org\" or \"ada@example.org\""
            ));
        }
        if t.chars().any(|c| c.is_control() || c.is_whitespace()) {
            return Err(format!("{text:?} contains a space or a control character"));
        }
        Ok(EmailGlob {
            text: t.into(),
            wild: Wild::new(t.to_lowercase().as_bytes()),
        })
    }

    /// Whether `address`, already lowercase (see [`super::SessionFacts`]), matches.
    pub fn matches(&self, address: &str) -> bool {
        self.wild.matches(address.as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn segs(path: &str) -> Vec<&[u8]> {
        path.split('/')
            .filter(|s| !s.is_empty())
            .map(str::as_bytes)
            .collect()
    }

    fn m(glob: &str, path: &str) -> bool {
        PathGlob::parse(glob).unwrap().matches(&segs(path))
    }

    #[test]
    fn double_star_is_any_number_of_segments() {
        assert!(m("/admin/**", "/admin"));
        assert!(m("/admin/**", "/admin/x"));
        assert!(m("/admin/**", "/admin/x/y/z"));
        assert!(!m("/admin/**", "/administrator"));
        assert!(!m("/admin/**", "/"));
        assert!(m("/**", "/"));
        assert!(m("/**", "/a/b"));
        assert!(m("/a/**/z", "/a/z"));
        assert!(m("/a/**/z", "/a/b/c/z"));
        assert!(!m("/a/**/z", "/a/b/c/z/q"));
        assert!(m("/a/**/b/**/c", "/a/x/b/y/b/z/c"));
        assert!(m("/**/edit", "/posts/1/edit"));
        assert!(!m("/**/edit", "/posts/1/edit/x"));
    }

    #[test]
    fn one_star_stays_within_a_segment() {
        assert!(m("/files/*.pdf", "/files/a.pdf"));
        assert!(m("/files/*.pdf", "/files/.pdf"));
        assert!(!m("/files/*.pdf", "/files/a/b.pdf"));
        assert!(!m("/files/*.pdf", "/files/a.pdfx"));
        assert!(m("/users/*", "/users/42"));
        assert!(!m("/users/*", "/users"));
        assert!(!m("/users/*", "/users/42/x"));
        assert!(m("/a*b*c", "/abc"));
        assert!(m("/a*b*c", "/axxbyyc"));
        assert!(!m("/a*b*c", "/ac"));
        assert!(!m("/ab*ba", "/aba"), "pieces must not overlap");
        assert!(m("/", "/"));
        assert!(!m("/", "/x"));
        assert!(m("/admin", "/admin"));
        assert!(!m("/admin", "/admin/x"));
    }

    #[test]
    fn a_hostile_path_costs_linear_time() {
        let long = "/a".repeat(20_000) + "/b";
        let glob = PathGlob::parse("/**/a/**/a/**/c").unwrap();
        let t = std::time::Instant::now();
        assert!(!glob.matches(&segs(&long)));
        assert!(t.elapsed() < std::time::Duration::from_secs(1));
    }

    #[test]
    fn bad_globs_are_refused_with_a_reason() {
        for (bad, why) in [
            ("admin/**", "start with /"),
            ("/admin/", "trailing slash"),
            ("/a//b", "empty segment"),
            ("/a/../b", "dot segment"),
            ("/a/./b", "dot segment"),
            ("/a**", "whole segments"),
            ("/a/**b", "whole segments"),
            ("/a?x", "decoded"),
            ("/a%2Fb", "decoded"),
            ("/a;x", "decoded"),
            ("/a b", "decoded"),
        ] {
            let e = PathGlob::parse(bad).unwrap_err();
            let hint = match why {
                "trailing slash" => "without a trailing slash",
                other => other,
            };
            assert!(e.contains(hint), "{bad}: {e}");
        }
        let collapsed = PathGlob::parse("/a/**/**/b").unwrap();
        assert_eq!(collapsed.segs, PathGlob::parse("/a/**/b").unwrap().segs);
        assert_eq!(collapsed.as_str(), "/a/**/**/b");
    }

    #[test]
    fn email_globs_ignore_case_and_need_an_at() {
        let g = EmailGlob::parse("*@Example.org").unwrap();
        assert!(g.matches("ada@example.org"));
        assert!(!g.matches("ada@example.org.evil"));
        assert!(!g.matches("ada@notexample.org"));
        assert!(EmailGlob::parse("ada@example.org")
            .unwrap()
            .matches("ada@example.org"));
        assert!(EmailGlob::parse("example.org").is_err());
        assert!(EmailGlob::parse("a b@x").is_err());
    }
}
