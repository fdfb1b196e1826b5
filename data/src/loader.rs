//! `Loader`: the public entry point. Runs the `Pipeline` on a background thread with a bounded
//! queue of finished batches (`data.prefetch`), each paired with the state after it, so `state()`
//! always describes the last batch *returned*, never the prefetched ones.

use std::sync::Arc;
use std::sync::mpsc::{Receiver, sync_channel};

use crate::batch::Batch;
use crate::config::{DataConfig, PipelineShape};
use crate::error::{DataError, Result};
use crate::pipeline::Pipeline;
use crate::shards::{ShardOpener, WdsOpener};
use crate::state::{LoaderState, LoaderStats};

enum Engine {
    /// `prefetch = 0`: batches are built on the caller's thread.
    Inline(Box<Pipeline>),
    Thread(Receiver<Result<(Batch, LoaderState)>>),
}

/// Yields packed batches for one rank of `world`.
pub struct Loader {
    engine: Engine,
    state: LoaderState,
    failed: Option<String>,
}

impl Loader {
    /// Starts at the beginning of the stream. Validates the config, the model shape and the
    /// tokenizer, and expands and splits the shard specs, before returning.
    pub fn new(cfg: &DataConfig, shape: PipelineShape, rank: usize, world: usize) -> Result<Self> {
        Self::with_opener(cfg, shape, rank, world, None, Arc::new(WdsOpener))
    }

    /// Starts exactly where `state` (from `Loader::state`, same config, rank and world) left off.
    pub fn restore(
        cfg: &DataConfig,
        shape: PipelineShape,
        rank: usize,
        world: usize,
        state: LoaderState,
    ) -> Result<Self> {
        Self::with_opener(cfg, shape, rank, world, Some(state), Arc::new(WdsOpener))
    }

    /// As `new`/`restore` with another shard reader behind the `ShardOpener` trait.
    pub fn with_opener(
        cfg: &DataConfig,
        shape: PipelineShape,
        rank: usize,
        world: usize,
        state: Option<LoaderState>,
        opener: Arc<dyn ShardOpener>,
    ) -> Result<Self> {
        let mut p = Pipeline::new(cfg, shape, rank, world, opener)?;
        if let Some(s) = state {
            p.restore(s)?;
        }
        let state = p.state();
        let engine = if cfg.prefetch == 0 {
            Engine::Inline(Box::new(p))
        } else {
            let (tx, rx) = sync_channel(cfg.prefetch);
            std::thread::Builder::new()
                .name(format!("mm1-data-rank{rank}"))
                .spawn(move || {
                    loop {
                        let r = p.next_batch().map(|b| (b, p.state()));
                        let stop = r.is_err();
                        // A failed send means the loader was dropped.
                        if tx.send(r).is_err() || stop {
                            return;
                        }
                    }
                })
                .map_err(|e| DataError::Pipeline(format!("cannot start the loader thread: {e}")))?;
            Engine::Thread(rx)
        };
        Ok(Self { engine, state, failed: None })
    }

    /// The next packed batch (blocks only when the pipeline is behind). After an error the
    /// loader stays failed and repeats the error.
    pub fn next_batch(&mut self) -> Result<Batch> {
        if let Some(m) = &self.failed {
            return Err(DataError::Pipeline(format!("loader already failed: {m}")));
        }
        let r = match &mut self.engine {
            Engine::Inline(p) => p.next_batch().map(|b| (b, p.state())),
            Engine::Thread(rx) => rx.recv().unwrap_or_else(|_| {
                Err(DataError::Pipeline("the loader thread ended without a reason".into()))
            }),
        };
        match r {
            Ok((batch, state)) => {
                self.state = state;
                Ok(batch)
            }
            Err(e) => {
                self.failed = Some(e.to_string());
                Err(e)
            }
        }
    }

    /// State after the last batch returned by `next_batch` (before the first: the start state).
    pub fn state(&self) -> LoaderState {
        self.state.clone()
    }

    /// Running totals up to the last returned batch: realised mixture, skips per reason, drops.
    pub fn stats(&self) -> &LoaderStats {
        &self.state.stats
    }
}
