//! Typed configuration errors: each names where the bad value came from (flag, env var, or
//! file + line + key) so the one line the user sees tells them what to fix.

use std::path::PathBuf;

/// Where a setting came from; used in error messages and in "pinned" warnings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    Default,
    File { path: PathBuf, line: Option<usize> },
    Env(String),
    Flag(&'static str),
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Origin::Default => write!(f, "the built-in default"),
            Origin::File {
                path,
                line: Some(l),
            } => write!(f, "{}:{l}", path.display()),
            Origin::File { path, line: None } => write!(f, "{}", path.display()),
            Origin::Env(v) => write!(f, "env {v}"),
            Origin::Flag(v) => write!(f, "flag {v}"),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A value failed validation; `origin` says where it was given.
    #[error("{origin}: `{key}`: {message}")]
    Invalid {
        key: String,
        origin: Origin,
        message: String,
    },
    /// A rule that spans several settings (e.g. exactly one Ory upstream).
    #[error("{0}")]
    Rule(String),
    /// proxy.toml is not valid TOML, has an unknown key, or a value of the wrong type.
    #[error("{path}:{line}: `{key}`: {message}")]
    File {
        path: PathBuf,
        line: usize,
        key: String,
        message: String,
    },
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}
