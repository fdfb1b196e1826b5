//! `Loader`: the public entry point. Shards → samples → decoded/tokenised → mixed → packed → `Batch`,
//! with bounded prefetch on a background thread and exact resume through `LoaderState`.

use crate::batch::Batch;
use crate::config::{DataConfig, PipelineShape};
use crate::error::{DataError, Result};
use crate::state::{LoaderState, LoaderStats};

/// Yields packed batches for one rank of `world`.
pub struct Loader {
    cfg: DataConfig,
    shape: PipelineShape,
    rank: usize,
    world: usize,
    state: Option<LoaderState>,
}

impl Loader {
    /// Starts the pipeline at the beginning of the stream (validates config and tokenizer first).
    pub fn new(cfg: &DataConfig, shape: PipelineShape, rank: usize, world: usize) -> Result<Self> {
        cfg.validate(&shape)?;
        Ok(Self { cfg: cfg.clone(), shape, rank, world, state: None })
    }

    /// Starts the pipeline exactly where `state` (from `Loader::state`) left off.
    pub fn restore(
        cfg: &DataConfig,
        shape: PipelineShape,
        rank: usize,
        world: usize,
        state: LoaderState,
    ) -> Result<Self> {
        cfg.validate(&shape)?;
        Ok(Self { cfg: cfg.clone(), shape, rank, world, state: Some(state) })
    }

    /// The next packed batch (blocks only when the pipeline is behind).
    pub fn next_batch(&mut self) -> Result<Batch> {
        let _ = (&self.cfg, &self.shape, self.rank, self.world);
        Err(DataError::Pipeline("loader not implemented yet".into()))
    }

    /// State after the last batch returned by `next_batch` (not after prefetched ones).
    pub fn state(&self) -> LoaderState {
        self.state.clone().expect("not implemented yet")
    }

    /// Running totals: realised mixture, skips per reason, drops.
    pub fn stats(&self) -> LoaderStats {
        self.state.as_ref().map(|s| s.stats.clone()).unwrap_or_default()
    }
}
