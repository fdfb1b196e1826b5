//! The one error type of the crate. Bad *samples* are not errors (they are skipped and counted,
//! see `skip.rs`); these are the failures that stop the loader.

use thiserror::Error;

#[derive(Debug, Error)]
pub enum DataError {
    /// The `[data]` section does not fit itself or the model's `PipelineShape`.
    #[error("data config: {0}")]
    Config(String),
    /// A shard spec names nothing, or a shard listing/opening failed for every shard.
    #[error("shards: {0}")]
    Shards(String),
    /// Tokenizer file missing/invalid, or a special token absent from its vocabulary.
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    /// More samples were skipped than `data.max_skip_fraction` allows.
    #[error(
        "too many bad samples: {skipped} of {seen} skipped ({fraction:.3} > max_skip_fraction {max}); by reason: {reasons}"
    )]
    TooManySkipped { skipped: u64, seen: u64, fraction: f64, max: f64, reasons: String },
    /// A restored `LoaderState` does not belong to this config / rank.
    #[error("loader state: {0}")]
    State(String),
    /// An internal invariant of packing was violated (a bug, reported instead of a panic).
    #[error("packing invariant: {0}")]
    Invariant(String),
    #[error("io: {context}: {source}")]
    Io { context: String, source: std::io::Error },
    /// The background pipeline thread ended unexpectedly.
    #[error("pipeline thread: {0}")]
    Pipeline(String),
}

impl DataError {
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        DataError::Io { context: context.into(), source }
    }
}

pub type Result<T, E = DataError> = std::result::Result<T, E>;
