//! Identity headers (`[access].identity_headers`): headers the proxy sets on app requests from
//! fields of the session, for apps that read a header instead of verifying the JWT. Their
//! names are the proxy's: a client's header of such a name, in any spelling, never reaches the
//! app (the header rules drop it through [`IdentityHeaders::names`]).
//!
//! A session's values are taken from the whoami answer when its token is minted, not per
//! request. A value that is not a valid header value (a trait holding a line break or a NUL, a
//! user's attempt to add headers of their own) or longer than [`MAX_VALUE`] is left out.

use actix_web::http::header::{HeaderName, HeaderValue};
use serde_json::Value;

use crate::header_names::{identity_header_refusal, HeaderList};

/// The longest identity header value sent; a longer one is left out.
pub const MAX_VALUE: usize = 4096;

/// The fields of a session (Ory's `session` object) a path may start with.
const SESSION_FIELDS: &[&str] = &[
    "active",
    "authenticated_at",
    "authentication_methods",
    "authenticator_assurance_level",
    "devices",
    "expires_at",
    "id",
    "identity",
    "issued_at",
    "tokenized",
];

/// The fields of `identity` a path may continue with.
const IDENTITY_FIELDS: &[&str] = &[
    "created_at",
    "external_id",
    "id",
    "metadata_admin",
    "metadata_public",
    "organization_id",
    "recovery_addresses",
    "region",
    "schema_id",
    "schema_url",
    "state",
    "state_changed_at",
    "traits",
    "updated_at",
    "verifiable_addresses",
];

#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    name: HeaderName,
    /// The field as configured (`identity.traits.email`).
    field: String,
    path: Box<[Box<str>]>,
}

/// The configured identity headers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IdentityHeaders {
    entries: Vec<Entry>,
    names: HeaderList,
}

impl IdentityHeaders {
    /// From `(header name, session field)` pairs; the error names the header and says why.
    pub fn new(pairs: &[(String, String)]) -> Result<IdentityHeaders, (String, String)> {
        let mut entries: Vec<Entry> = Vec::new();
        for (name, field) in pairs {
            let name = name.trim();
            let fail = |why: String| (name.to_string(), why);
            if let Some(why) = identity_header_refusal(name) {
                return Err(fail(format!("{name:?} {why}")));
            }
            let header = HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| fail(format!("{name:?} is not a header name")))?;
            if entries.iter().any(|e| e.name == header) {
                return Err(fail(format!("{name:?} is named twice")));
            }
            let path = parse_field(field.trim()).map_err(fail)?;
            entries.push(Entry {
                name: header,
                field: field.trim().to_string(),
                path,
            });
        }
        let names: Vec<String> = entries.iter().map(|e| e.name.to_string()).collect();
        let names = HeaderList::parse(&names).map_err(|m| (String::new(), m))?;
        Ok(IdentityHeaders { entries, names })
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The names, for stripping clients' headers of them in any spelling.
    pub fn names(&self) -> &HeaderList {
        &self.names
    }

    /// `(header, field)` as configured, for people.
    pub fn pairs(&self) -> impl Iterator<Item = (&str, &str)> {
        self.entries
            .iter()
            .map(|e| (e.name.as_str(), e.field.as_str()))
    }

    /// The headers for a session, from its whoami JSON. Fields the session lacks (or holds
    /// `null`) give no header; strings are sent as they are, numbers and booleans as JSON
    /// writes them, lists and objects as compact JSON.
    pub fn values(&self, session_json: &str) -> Vec<(HeaderName, HeaderValue)> {
        if self.entries.is_empty() {
            return Vec::new();
        }
        let Ok(session) = serde_json::from_str::<Value>(session_json) else {
            return Vec::new();
        };
        let mut out = Vec::with_capacity(self.entries.len());
        for e in &self.entries {
            let Some(v) = e.path.iter().try_fold(&session, |v, k| step(v, k)) else {
                continue;
            };
            let text = match v {
                Value::Null => continue,
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            match HeaderValue::from_bytes(text.as_bytes()) {
                Ok(value) if text.len() <= MAX_VALUE => out.push((e.name.clone(), value)),
                // A user can cause this at will (their own traits): debug, not warn.
                _ => log::debug!(
                    "identity header {} left out: {} is not a header value of at most {MAX_VALUE} bytes (control characters, or too long)",
                    e.name,
                    e.field
                ),
            }
        }
        out
    }
}

/// One step down a session field path: an object's key, or a list's index.
fn step<'v>(v: &'v Value, key: &str) -> Option<&'v Value> {
    match v {
        Value::Object(m) => m.get(key),
        Value::Array(a) => a.get(key.parse::<usize>().ok()?),
        _ => None,
    }
}

/// `identity.traits.email` → its keys, checked against the fields Ory's session has.
fn parse_field(field: &str) -> Result<Box<[Box<str>]>, String> {
    let keys: Vec<&str> = field.split('.').collect();
    if keys.iter().any(|k| {
        k.is_empty()
            || !k
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    }) {
        return Err(format!(
            "{field:?} is not a session field path like \"identity.traits.email\" (keys of letters, digits, _ and -, joined by dots)"
        ));
    }
    if !SESSION_FIELDS.contains(&keys[0]) {
        return Err(format!(
            "{field:?}: a session has no field {:?} (it has {})",
            keys[0],
            SESSION_FIELDS.join(", ")
        ));
    }
    if keys[0] == "identity" {
        match keys.get(1) {
            Some(k) if !IDENTITY_FIELDS.contains(k) => {
                return Err(format!(
                    "{field:?}: an identity has no field {k:?} (it has {})",
                    IDENTITY_FIELDS.join(", ")
                ))
            }
            _ => {}
        }
    }
    Ok(keys.into_iter().map(Box::from).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> Result<IdentityHeaders, (String, String)> {
        let pairs: Vec<(String, String)> = pairs
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect();
        IdentityHeaders::new(&pairs)
    }

    fn session() -> String {
        include_str!("../../tests/data/session-example.json").to_string()
    }

    #[test]
    fn values_come_from_the_session() {
        let h = headers(&[
            ("X-Forwarded-Email", "identity.traits.email"),
            ("X-Forwarded-User", "identity.id"),
            ("X-Aal", "authenticator_assurance_level"),
            ("X-Name", "identity.traits.name"),
            ("X-Verified", "identity.verifiable_addresses.0.verified"),
            ("X-Org", "identity.organization_id"),
            ("X-Nothing", "identity.traits.phone"),
        ])
        .unwrap();
        let got: Vec<(String, String)> = h
            .values(&session())
            .into_iter()
            .map(|(n, v)| (n.to_string(), v.to_str().unwrap().to_string()))
            .collect();
        let want = [
            ("x-forwarded-email", "foo@example.org"),
            ("x-forwarded-user", "18aafd3e-b00c-4b19-81c8-351e38705126"),
            ("x-aal", "aal1"),
            ("x-name", r#"{"first":"Foo","last":"Bar"}"#),
            ("x-verified", "true"),
        ];
        let want: Vec<(String, String)> = want
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect();
        assert_eq!(got, want);
        assert!(h.names().contains("x-forwarded-email") && h.names().contains("x-name"));
    }

    #[test]
    fn hostile_values_are_left_out() {
        let h = headers(&[
            ("X-Email", "identity.traits.email"),
            ("X-Id", "identity.id"),
        ])
        .unwrap();
        for evil in [
            "a@b.c\r\nX-Admin: 1",
            "a@b.c\nX-Admin: 1",
            "a\u{0}b",
            "tab\tis\u{7f}",
        ] {
            let mut v: Value = serde_json::from_str(&session()).unwrap();
            v["identity"]["traits"]["email"] = evil.into();
            let got = h.values(&v.to_string());
            assert_eq!(got.len(), 1, "{evil:?}: {got:?}");
            assert_eq!(got[0].0, "x-id");
        }
        let mut v: Value = serde_json::from_str(&session()).unwrap();
        v["identity"]["traits"]["email"] = "x".repeat(MAX_VALUE + 1).into();
        assert_eq!(h.values(&v.to_string()).len(), 1);
        v["identity"]["traits"]["email"] = "ünïcode@example.org".into();
        assert_eq!(
            h.values(&v.to_string()).len(),
            2,
            "UTF-8 bytes are header bytes"
        );
        assert!(h.values("not json").is_empty());
    }

    #[test]
    fn names_the_proxy_owns_and_bad_fields_are_refused() {
        for name in [
            "Authorization",
            "cookie",
            "Host",
            "X-Forwarded-For",
            "X-Forwarded-Proto",
            "X-Forwarded-Host",
            "Forwarded",
            "X-Real-IP",
            "Connection",
            "Transfer-Encoding",
            "Content-Length",
            "Content-Type",
            "Ory-Base-Url-Rewrite",
            "X-Session-Token",
            "True-Client-IP",
            "X_User",
            "X.User",
            "X User",
            "",
        ] {
            assert!(
                headers(&[(name, "identity.id")]).is_err(),
                "{name:?} was accepted"
            );
        }
        for name in [
            "X-Forwarded-User",
            "X-Forwarded-Email",
            "Remote-User",
            "X-User",
        ] {
            assert!(headers(&[(name, "identity.id")]).is_ok(), "{name}");
        }
        for field in ["", "identity.", "identiy.id", "identity.trait.email", "a b"] {
            let e = headers(&[("X-User", field)]).unwrap_err();
            assert_eq!(e.0, "X-User", "{field}");
        }
        assert!(headers(&[("X-User", "identity.id"), ("x-user", "id")]).is_err());
    }
}
