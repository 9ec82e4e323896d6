//! The file layer: `proxy.toml` parsed once into a [`Tree`], with the line of every key.
//!
//! Lines and keys come from the TOML parser's spans, so a key is found however it is written
//! (`[jwt]` then `ttl = …`, `jwt.ttl = …`, `jwt = { ttl = … }`, `"ttl" = …`). A file that is
//! not TOML, has an unknown key or a value of the wrong type is reported with file, line and
//! dotted key; so are values found invalid later, through [`FileLayer::line_of`].

use std::path::{Path, PathBuf};

use serde::Deserialize as _;
use toml::de::{DeTable, DeValue, Deserializer};
use toml_parser::parser::EventReceiver;
use toml_parser::{ErrorSink, Raw, Source, Span};

use super::dotted;
use super::error::ConfigError;
use super::keys::Tree;

/// `proxy.toml` as one layer of the tree.
#[derive(Debug, Clone)]
pub struct FileLayer {
    pub path: PathBuf,
    /// The text the layer was parsed from: a second load at start (port 0) parses it again
    /// instead of reading a pipe that has nothing left to give.
    pub text: String,
    pub tree: Tree,
    /// The tree as a table: only the keys the file sets.
    pub table: toml::Table,
    /// Every dotted key the file sets (sections too) with the line of its key.
    lines: Vec<(String, usize)>,
}

impl FileLayer {
    /// The line (1-based) on which the file sets `key`.
    pub fn line_of(&self, key: &str) -> Option<usize> {
        self.lines.iter().find(|(k, _)| k == key).map(|(_, l)| *l)
    }
}

/// Parses the file text (once) into its layer; errors carry file, line and dotted key.
pub fn parse(path: &Path, text: &str) -> Result<FileLayer, ConfigError> {
    let error = |e: toml::de::Error| {
        let offset = e.span().map(|s| s.start).unwrap_or(0);
        ConfigError::File {
            path: path.to_path_buf(),
            line: line_of_offset(text, offset),
            key: key_at(text, offset).unwrap_or_else(|| "?".into()),
            message: e.message().trim().to_string(),
        }
    };
    let doc = DeTable::parse(text).map_err(error)?;
    let mut lines = Vec::new();
    collect_lines(text, "", doc.get_ref(), &mut lines);
    let tree = Tree::deserialize(Deserializer::from(doc)).map_err(error)?;
    Ok(FileLayer {
        path: path.to_path_buf(),
        text: text.to_string(),
        table: tree.to_table()?,
        tree,
        lines,
    })
}

/// The line of every key, and of every table in a list of tables as `key.<index>` (from 0):
/// an error in the second rule names the line of the key at fault, `access.rules.1.paths`.
fn collect_lines(text: &str, prefix: &str, table: &DeTable<'_>, out: &mut Vec<(String, usize)>) {
    for (k, v) in table.iter() {
        let key = dotted::join(prefix, k.get_ref());
        out.push((key.clone(), line_of_offset(text, k.span().start)));
        match v.get_ref() {
            DeValue::Table(inner) => collect_lines(text, &key, inner, out),
            DeValue::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    if let DeValue::Table(inner) = item.get_ref() {
                        let at = format!("{key}.{i}");
                        out.push((at.clone(), line_of_offset(text, item.span().start)));
                        collect_lines(text, &at, inner, out);
                    }
                }
            }
            _ => {}
        }
    }
}

fn line_of_offset(text: &str, offset: usize) -> usize {
    let end = offset.min(text.len());
    text.as_bytes()[..end]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

/// The dotted key the parser was reading at `offset`: the table header and the key path of
/// the line (inline tables included). Works on text that is not valid TOML too, so a syntax
/// error is named by its key like any other.
fn key_at(text: &str, offset: usize) -> Option<String> {
    let tokens = Source::new(text).lex().into_vec();
    let mut r = KeyAt {
        text,
        offset,
        table: Vec::new(),
        header: None,
        path: Vec::new(),
        nesting: Vec::new(),
        arrays: 0,
        found: None,
    };
    toml_parser::parser::parse_document(&tokens, &mut r, &mut ());
    let key = r.found.take().unwrap_or_else(|| r.context());
    (!key.is_empty()).then_some(key)
}

/// Follows the parser's events up to `offset`.
struct KeyAt<'t> {
    text: &'t str,
    offset: usize,
    /// The key of the current `[table]`.
    table: Vec<String>,
    /// A `[table]` header being read.
    header: Option<Vec<String>>,
    /// The key path of the current key/value, inside inline tables too.
    path: Vec<String>,
    /// `path`'s length and the array depth at each open inline table.
    nesting: Vec<(usize, usize)>,
    /// Depth of open arrays: a newline inside one does not end the key/value.
    arrays: usize,
    found: Option<String>,
}

impl KeyAt<'_> {
    fn context(&self) -> String {
        match &self.header {
            Some(h) => h.join("."),
            None => self
                .table
                .iter()
                .chain(&self.path)
                .cloned()
                .collect::<Vec<_>>()
                .join("."),
        }
    }

    /// Called before an event is applied: the first event at or past `offset` ends the search.
    fn reached(&mut self, span: Span) {
        if self.found.is_none() && span.start() >= self.offset {
            self.found = Some(self.context());
        }
    }
}

impl EventReceiver for KeyAt<'_> {
    fn std_table_open(&mut self, span: Span, _: &mut dyn ErrorSink) {
        self.reached(span);
        self.header = Some(Vec::new());
        self.path.clear();
    }
    fn std_table_close(&mut self, span: Span, _: &mut dyn ErrorSink) {
        self.reached(span);
        self.table = self.header.take().unwrap_or_default();
    }
    fn array_table_open(&mut self, span: Span, e: &mut dyn ErrorSink) {
        self.std_table_open(span, e);
    }
    fn array_table_close(&mut self, span: Span, e: &mut dyn ErrorSink) {
        self.std_table_close(span, e);
    }
    fn inline_table_open(&mut self, span: Span, _: &mut dyn ErrorSink) -> bool {
        self.reached(span);
        self.nesting.push((self.path.len(), self.arrays));
        true
    }
    fn inline_table_close(&mut self, span: Span, _: &mut dyn ErrorSink) {
        self.reached(span);
        let (n, _) = self.nesting.pop().unwrap_or_default();
        self.path.truncate(n);
    }
    fn simple_key(
        &mut self,
        span: Span,
        encoding: Option<toml_parser::decoder::Encoding>,
        _: &mut dyn ErrorSink,
    ) {
        // A key that holds the offset is part of what is being read.
        let holds = span.start() <= self.offset && self.offset < span.end();
        if !holds {
            self.reached(span);
        }
        let mut key = String::new();
        if let Some(raw) = self.text.get(span.start()..span.end()) {
            Raw::new_unchecked(raw, encoding, span).decode_key(&mut key, &mut ());
        }
        match &mut self.header {
            Some(h) => h.push(key),
            None => self.path.push(key),
        }
        if holds {
            self.reached(Span::new_unchecked(self.offset, self.offset));
        }
    }
    fn array_open(&mut self, span: Span, _: &mut dyn ErrorSink) -> bool {
        self.reached(span);
        self.arrays += 1;
        true
    }
    fn array_close(&mut self, span: Span, _: &mut dyn ErrorSink) {
        self.reached(span);
        self.arrays = self.arrays.saturating_sub(1);
    }
    fn key_val_sep(&mut self, span: Span, _: &mut dyn ErrorSink) {
        self.reached(span);
    }
    fn scalar(
        &mut self,
        span: Span,
        _: Option<toml_parser::decoder::Encoding>,
        _: &mut dyn ErrorSink,
    ) {
        self.reached(span);
    }
    fn value_sep(&mut self, span: Span, _: &mut dyn ErrorSink) {
        self.reached(span);
        // The next key of an inline table starts from the table's own path (a comma between
        // array items is not one of its separators).
        if let Some(&(n, arrays)) = self.nesting.last() {
            if arrays == self.arrays {
                self.path.truncate(n);
            }
        }
    }
    fn newline(&mut self, span: Span, _: &mut dyn ErrorSink) {
        self.reached(span);
        if self.nesting.is_empty() && self.arrays == 0 && self.header.is_none() {
            self.path.clear();
        }
    }
    fn error(&mut self, span: Span, _: &mut dyn ErrorSink) {
        self.reached(span);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(text: &str) -> (usize, String, String) {
        match parse(Path::new("proxy.toml"), text).unwrap_err() {
            ConfigError::File {
                line, key, message, ..
            } => (line, key, message),
            e => panic!("wrong error {e:?}"),
        }
    }

    #[test]
    fn unknown_key_is_reported_with_line_and_key() {
        let (line, key, _) = err("port = 4000\n\n[cors]\nallowed_origin = []\n");
        assert_eq!((line, key.as_str()), (4, "cors.allowed_origin"));
        let (line, key, _) = err("port = 4000\njwt = { ttl = \"1m\",\n  tll = \"2m\" }\n");
        assert_eq!((line, key.as_str()), (3, "jwt.tll"));
    }

    #[test]
    fn wrong_type_is_reported_with_line_whatever_the_form() {
        let e = parse(Path::new("p.toml"), "dev = false\nport = \"x\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("p.toml:2: `port`"), "{e}");
        for text in [
            "dev = false\n[jwt]\nttl = 3\n",
            "dev = false\n\njwt.ttl = 3\n",
            "dev = false\n\njwt = { issuer = \"x\", ttl = 3 }\n",
            "dev = false\n[jwt]\n\"ttl\" = 3\n",
            "dev = false\n[jwt]\n'ttl' = 3\n",
        ] {
            let (line, key, _) = err(text);
            assert_eq!((line, key.as_str()), (3, "jwt.ttl"), "{text}");
        }
        let (line, key, _) = err("[jwt]\naudience = [\"a\",\n  3]\n");
        assert_eq!((line, key.as_str()), (3, "jwt.audience"));
        let (line, key, _) = err("jwt = { audience = [\"a\",\n  3], issuer = \"i\" }\n");
        assert_eq!((line, key.as_str()), (2, "jwt.audience"));
    }

    #[test]
    fn syntax_errors_name_the_key_being_written() {
        let (line, key, _) = err("port = 4000\n[cors\nallowed_origins = []\n");
        assert_eq!((line, key.as_str()), (2, "cors"));
        let (line, key, _) = err("[jwt]\nttl = = 3\n");
        assert_eq!((line, key.as_str()), (2, "jwt.ttl"));
        let (line, _, _) = err("[jwt]\nttl = \"a\"\n[jwt]\nttl = \"b\"\n");
        assert_eq!(line, 3);
        assert!(parse(Path::new("p.toml"), "port = = 3").is_err());
    }

    #[test]
    fn lines_follow_spans_in_every_form() {
        let text =
            "a = 1\n[redirects]\n# c\ndefault_redirect_url = \"x\"\njwt = { ttl = \"2m\" }\n";
        // `jwt` here is a key of [redirects]: an unknown one.
        assert!(parse(Path::new("p.toml"), text).is_err());
        let text = "port = 1\njwt.issuer = \"i\"\n[redirects]\n# c\n\"default_redirect_url\" = \"x\"\n[session]\ncache_ttl = \"1s\"\n";
        let f = parse(Path::new("p.toml"), text).unwrap();
        assert_eq!(f.line_of("port"), Some(1));
        assert_eq!(f.line_of("jwt.issuer"), Some(2));
        assert_eq!(f.line_of("redirects.default_redirect_url"), Some(5));
        assert_eq!(f.line_of("session.cache_ttl"), Some(7));
        assert_eq!(f.line_of("jwt.ttl"), None);
        assert_eq!(f.tree.jwt.issuer.as_deref(), Some("i"));
        assert_eq!(dotted::leaves(&f.table).len(), 4);
    }
}
