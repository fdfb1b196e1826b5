//! One call per logging step fans out to TensorBoard, `metrics.jsonl` and the progress display.

use std::io;
use std::path::Path;

use super::{EventWriter, MetricsJsonl, Progress};
use mm1_config::LogConfig;

/// Everything the training loop logs to.
pub struct RunLogger {
    tensorboard: Option<EventWriter>,
    jsonl: MetricsJsonl,
    progress: Progress,
    every: u64,
}

impl RunLogger {
    /// Opens the run folder's logs. `start_step` is the step resumed from (0 for a new run):
    /// `metrics.jsonl` drops lines after it, TensorBoard gets a new event file.
    pub fn open(run_dir: &Path, cfg: &LogConfig, start_step: u64, total_steps: u64) -> io::Result<Self> {
        let resume = (start_step > 0).then_some(start_step);
        Ok(Self {
            tensorboard: if cfg.tensorboard { Some(EventWriter::create(run_dir)?) } else { None },
            jsonl: MetricsJsonl::open(run_dir, resume)?,
            progress: Progress::new(cfg.progress, start_step, total_steps),
            every: cfg.every.max(1),
        })
    }

    /// Whether `step` is a logging step (`step % log.every == 0`).
    pub fn should_log(&self, step: u64) -> bool {
        step.is_multiple_of(self.every)
    }

    /// The resolved config as a TensorBoard text summary (shown in TensorBoard's Text tab).
    pub fn log_config(&mut self, step: u64, resolved_toml: &str, hash: &str) -> io::Result<()> {
        if let Some(tb) = &mut self.tensorboard {
            // Indented by four spaces: the text plugin renders markdown, this keeps it verbatim.
            let body: String = resolved_toml.lines().map(|l| format!("    {l}\n")).collect();
            tb.text("config", step, &format!("sha256 `{hash}`\n\n{body}"))?;
            tb.flush()?;
        }
        Ok(())
    }

    /// Scalars of one step to every sink (names: `loss`, `loss/caption`, `lr`, ...).
    pub fn log(&mut self, step: u64, values: &[(&str, f64)]) -> io::Result<()> {
        if let Some(tb) = &mut self.tensorboard {
            tb.scalars(step, values.iter().copied())?;
            tb.flush()?;
        }
        self.jsonl.write(step, values.iter().copied())?;
        self.progress.update(step, values.iter().copied());
        Ok(())
    }

    /// A text line for the user (does not break the progress bar).
    pub fn message(&self, msg: &str) {
        self.progress.println(msg);
    }

    pub fn event_file(&self) -> Option<&Path> {
        self.tensorboard.as_ref().map(EventWriter::path)
    }

    pub fn finish(&mut self) -> io::Result<()> {
        self.progress.finish();
        if let Some(tb) = &mut self.tensorboard {
            tb.flush()?;
        }
        Ok(())
    }
}
