//! The scalars of a logged step, and the log sink that only the main rank writes.

use std::path::Path;

use super::RunError;
use super::session::Session;
use crate::config::LogConfig;
use crate::logging::RunLogger;
use crate::parallel::data_parallel::CommStats;
use crate::step::StepReport;

/// The run's logs on rank 0; nothing on the other ranks.
pub struct LogSink {
    logger: Option<RunLogger>,
    run_dir: std::path::PathBuf,
}

impl LogSink {
    pub fn open(
        main: bool,
        run_dir: &Path,
        cfg: &LogConfig,
        start: u64,
        total: u64,
    ) -> Result<Self, RunError> {
        let io = |source| RunError::Io { path: run_dir.to_path_buf(), source };
        let logger = if main { Some(RunLogger::open(run_dir, cfg, start, total).map_err(io)?) } else { None };
        Ok(Self { logger, run_dir: run_dir.to_path_buf() })
    }

    fn io_err(&self, source: std::io::Error) -> RunError {
        RunError::Io { path: self.run_dir.clone(), source }
    }

    pub fn should_log(&self, step: u64) -> bool {
        self.logger.as_ref().is_some_and(|l| l.should_log(step))
    }

    pub fn config(&mut self, step: u64, text: &str, hash: &str) -> Result<(), RunError> {
        let Some(l) = self.logger.as_mut() else { return Ok(()) };
        let r = l.log_config(step, text, hash);
        r.map_err(|e| self.io_err(e))
    }

    pub fn values(&mut self, step: u64, values: &[(String, f64)]) -> Result<(), RunError> {
        let (Some(l), false) = (self.logger.as_mut(), values.is_empty()) else { return Ok(()) };
        let refs: Vec<(&str, f64)> = values.iter().map(|(k, v)| (k.as_str(), *v)).collect();
        let r = l.log(step, &refs);
        r.map_err(|e| self.io_err(e))
    }

    pub fn message(&self, msg: &str) {
        if let Some(l) = &self.logger {
            l.message(msg);
        }
    }

    pub fn finish(&mut self) -> Result<(), RunError> {
        let Some(l) = self.logger.as_mut() else { return Ok(()) };
        let r = l.finish();
        r.map_err(|e| self.io_err(e))
    }
}

/// Timing of one step as the loop measured it.
pub struct StepTiming {
    pub lr: f64,
    pub data_wait: f64,
    pub step_time: f64,
    pub comm: Option<CommStats>,
    /// `perf/*` of the step (`crate::plan::PerfMeter::values`).
    pub perf: Vec<(String, f64)>,
}

/// Scalars of a logged step (names in docs/training.md).
pub fn step_metrics(r: &StepReport, t: &StepTiming, s: &Session) -> Vec<(String, f64)> {
    let mut v = vec![
        ("loss".to_string(), r.loss),
        ("aux_loss".into(), r.aux_loss),
        ("lr".into(), t.lr),
        ("grad_norm".into(), r.grad_norm),
        ("clipped".into(), r.clipped as u8 as f64),
        ("tokens_per_s".into(), r.tokens as f64 / t.step_time),
        ("images_per_s".into(), r.images as f64 / t.step_time),
        ("data_wait_s".into(), t.data_wait),
        ("step_time_s".into(), t.step_time),
        ("nonfinite_steps".into(), s.state.counters.skipped_steps as f64),
        ("tokens_seen".into(), s.state.counters.tokens_seen as f64),
    ];
    v.extend(t.perf.iter().cloned());
    if let Some(c) = t.comm {
        v.push(("comm/seconds".into(), c.seconds));
        v.push(("comm/share".into(), c.seconds / t.step_time));
        v.push(("comm/bytes".into(), c.bytes as f64));
    }
    for src in &r.source_loss {
        if let Some(mean) = src.mean() {
            v.push((format!("loss/{}", src.name), mean));
        }
    }
    let stats = s.loader.stats();
    v.push(("skipped_samples".into(), stats.skipped.total() as f64));
    for (i, load) in r.expert_load.iter().enumerate() {
        let sum: usize = load.iter().sum();
        if sum == 0 {
            continue;
        }
        let mean = sum as f64 / load.len() as f64;
        let max = *load.iter().max().unwrap_or(&0) as f64;
        let min = *load.iter().min().unwrap_or(&0) as f64;
        v.push((format!("moe/layer{i}/max_over_mean"), max / mean));
        v.push((format!("moe/layer{i}/min_over_mean"), min / mean));
    }
    if !r.expert_load.is_empty() {
        v.push(("moe/dropped".into(), r.moe_dropped as f64));
    }
    v
}
