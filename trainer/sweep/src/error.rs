//! Errors of sweep planning and running; each names the file, key or run.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum SweepError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("sweep file {path}: {message}")]
    Spec { path: PathBuf, message: String },
    #[error("{0}")]
    Run(String),
}

impl SweepError {
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        SweepError::Io { path: path.into(), source }
    }

    pub fn spec(path: impl Into<PathBuf>, message: impl std::fmt::Display) -> Self {
        SweepError::Spec { path: path.into(), message: message.to_string() }
    }
}
