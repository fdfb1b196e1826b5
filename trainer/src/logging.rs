//! Run logging: `mm1-logging` (TensorBoard events, metrics.jsonl, progress), re-exported.

pub use mm1_logging::*;
