//! mm1-data: WebDataset shards → packed multimodal batches as plain `Vec` buffers.
//!
//! Knows nothing of burn (docs/architecture.md). The trainer calls:
//! ```ignore
//! let shape = PipelineShape { image_size: 336, num_image_tokens: 144 };
//! let mut loader = Loader::new(&cfg.data, shape, rank, world)?;      // or Loader::restore(.., state)
//! let batch: Batch = loader.next_batch()?;                              // flat [b*t] / [n*3*h*w] buffers
//! let state: LoaderState = loader.state();                              // serde, save with the checkpoint
//! ```
//! Formats, config keys and the loader state are documented in docs/data.md.

pub mod assemble;
pub mod batch;
pub mod config;
pub mod error;
pub mod fuzz;
pub mod image;
pub mod inspect;
pub mod loader;
pub mod pack;
pub mod pipeline;
pub mod preview;
pub mod probe;
pub mod rng;
pub mod sample;
pub mod shards;
pub mod skip;
pub mod source;
pub mod stall;
pub mod state;
pub mod streams;
pub mod synth;
pub mod tokenizer;

pub use batch::{Batch, SourceCounts};
pub use config::{DataConfig, EvalDataConfig, PipelineShape, ResizeMode, SampleKind, SourceConfig};
pub use error::{DataError, Result};
pub use loader::Loader;
pub use shards::{RawSample, ShardItem, ShardOpener, WdsOpener};
pub use skip::{SkipCounts, SkipReason};
pub use state::{LoaderState, LoaderStats, PartialDoc, SampleLoc, SourceState, SourceTotals};
pub use streams::StreamSet;
pub use synth::SynthConfig;
pub use tokenizer::TextTokenizer;
