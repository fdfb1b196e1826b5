//! Checkpoints written while training goes on (torchtitan's async checkpointing): the step loop
//! hands a snapshot to one writer thread and continues. The snapshot is the model itself (burn
//! tensors are immutable handles: the next optimizer step makes new tensors, and a buffer shared
//! with the writer is never updated in place), the optimizer state serialised on the training
//! thread, and the small JSON/TOML state. At most one write is in flight: the next checkpoint
//! waits for it, and so does the end of the run. Publishing stays atomic (`CheckpointDir::write`).

use std::path::PathBuf;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use burn::module::Module;

use super::{CheckpointDir, CheckpointError, OptimLayout, TrainState};

/// A finished write.
#[derive(Debug, Clone)]
pub struct Written {
    pub path: PathBuf,
    /// How long the writer thread took.
    pub write_time: Duration,
}

type Pending = JoinHandle<Result<Written, CheckpointError>>;

/// The one writer thread of a run (none between writes).
#[derive(Debug, Default)]
pub struct BackgroundWriter {
    pending: Option<Pending>,
}

impl BackgroundWriter {
    pub fn new() -> Self {
        Self::default()
    }

    /// Waits for the write in flight (returning it), then starts writing `model` and the rest as
    /// the checkpoint of `state.step` into `dir`.
    pub fn submit<M: Module + Send + 'static>(
        &mut self,
        dir: CheckpointDir,
        model: M,
        optim_bytes: burn::tensor::Bytes,
        (state, config_toml, layout): (TrainState, String, OptimLayout),
    ) -> Result<Option<Written>, CheckpointError> {
        let previous = self.wait()?;
        self.pending = Some(std::thread::spawn(move || {
            let t0 = Instant::now();
            let path = dir.write(&model, &optim_bytes, &state, &config_toml, &layout)?;
            Ok(Written { path, write_time: t0.elapsed() })
        }));
        Ok(previous)
    }

    /// Waits for the write in flight, if any.
    pub fn wait(&mut self) -> Result<Option<Written>, CheckpointError> {
        let Some(handle) = self.pending.take() else { return Ok(None) };
        match handle.join() {
            Ok(result) => result.map(Some),
            Err(payload) => std::panic::resume_unwind(payload),
        }
    }
}

impl Drop for BackgroundWriter {
    /// A run that ends early (an error) still finishes the checkpoint it started.
    fn drop(&mut self) {
        if let Some(handle) = self.pending.take()
            && let Ok(Err(e)) = handle.join()
        {
            eprintln!("warning: background checkpoint write failed: {e}");
        }
    }
}
