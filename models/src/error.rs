//! The crate's one error type.

/// Everything that can go wrong building, running or loading a model.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// An invalid `[model]` configuration (names the key and both numbers).
    #[error("invalid model config: {0}")]
    Config(String),
    /// Input tensors that do not fit the model (names both counts/shapes).
    #[error("invalid model input: {0}")]
    Input(String),
    /// A weight file that does not fit the model (names the file/key and both shapes).
    #[error("weights: {0}")]
    Weights(String),
    /// File-system error, with the path.
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
}
