//! Why the key actor could not do what it was asked.

use std::path::PathBuf;

use super::jwk::JwkError;

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("JWT keys file {path}: {message}")]
    File { path: PathBuf, message: String },
    #[error(transparent)]
    Jwk(#[from] JwkError),
    #[error("cannot serialise the JWKS: {0}")]
    Serialise(#[from] serde_json::Error),
    #[error("the key actor has stopped")]
    Stopped,
    #[error("JWT keys file {0} is read-only here (keys_file_read_only): rotate it where it is kept, with `ory-proxy keys rotate`")]
    ReadOnly(PathBuf),
}
