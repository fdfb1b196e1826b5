//! The one error type of config loading; every message names the file and/or the key.

use std::path::PathBuf;

/// What can go wrong reading, layering, deserialising, validating or writing a run config.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: TOML syntax error: {message}")]
    Syntax { path: PathBuf, message: String },
    #[error("config files include each other in a cycle: {chain}")]
    Cycle { chain: String },
    /// `base`, `[[patch]]` or the file itself is malformed.
    #[error("{path}: {message}")]
    Layering { path: PathBuf, message: String },
    #[error("--set {arg}: {message}")]
    BadSet { arg: String, message: String },
    /// A misspelt key: names the key, its section and where it was written.
    #[error("unknown key `{key}` in [{section}] (from {origin}); expected one of: {expected}")]
    UnknownKey { key: String, section: String, origin: String, expected: String },
    /// A value of the wrong type or outside the allowed set (e.g. an unknown `kind`).
    #[error("bad value for `{key}` (from {origin}): {message}")]
    BadValue { key: String, origin: String, message: String },
    /// `RunConfig::validate` failed; `origin` says where the key was set, when known.
    #[error("invalid config: `{key}`{}: {message}", origin.as_ref().map(|o| format!(" (from {o})")).unwrap_or_default())]
    Invalid { key: String, origin: Option<String>, message: String },
    #[error("cannot serialise the resolved config: {0}")]
    Serialize(String),
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl ConfigError {
    /// A validation failure of `key`.
    pub fn invalid(key: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigError::Invalid { key: key.into(), origin: None, message: message.into() }
    }

    /// The dotted key this error is about, if it is about one.
    pub fn key(&self) -> Option<&str> {
        match self {
            ConfigError::UnknownKey { key, .. }
            | ConfigError::BadValue { key, .. }
            | ConfigError::Invalid { key, .. } => Some(key),
            _ => None,
        }
    }
}
