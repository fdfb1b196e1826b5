//! Live throughput (issue #16 item 6), as torchtitan's `MetricsProcessor` logs it: positions
//! per second per rank, achieved model TFLOP/s per rank from the planner's FLOPs of the step
//! ([`FlopsModel`]), and MFU in percent of `train.device_peak_tflops` when that is set.

use super::FlopsModel;
use mm1_config::RunConfig;

/// The step's FLOPs on one rank, fixed by the config up to the number of images.
#[derive(Debug, Clone, Copy)]
pub struct PerfMeter {
    flops: FlopsModel,
    /// Sequences per step on one rank (`batch_size · grad_accum`).
    seqs: f64,
    /// Positions per step on one rank (`seqs · seq_len`, padding included: it is computed).
    positions: f64,
    dp: f64,
    peak_tflops: f64,
}

impl PerfMeter {
    pub fn new(cfg: &RunConfig) -> Self {
        let seqs = (cfg.data.batch_size * cfg.optim.grad_accum.max(1)) as f64;
        Self {
            flops: FlopsModel::new(&cfg.model, cfg.data.seq_len),
            seqs,
            positions: seqs * cfg.data.seq_len as f64,
            dp: cfg.parallel.dp.max(1) as f64,
            peak_tflops: cfg.train.device_peak_tflops,
        }
    }

    /// Training FLOPs of one step on one rank, given the step's images over all ranks.
    pub fn step_flops(&self, images_all_ranks: usize) -> f64 {
        self.flops.train_flops(self.seqs, images_all_ranks as f64 / self.dp)
    }

    /// `perf/tokens_per_s`, `perf/tflops` and (with a peak) `perf/mfu` of a step that took
    /// `step_time` seconds.
    pub fn values(&self, images_all_ranks: usize, step_time: f64) -> Vec<(String, f64)> {
        let tflops = self.step_flops(images_all_ranks) / step_time / 1e12;
        let mut v = vec![
            ("perf/tokens_per_s".to_string(), self.positions / step_time),
            ("perf/tflops".into(), tflops),
        ];
        if self.peak_tflops > 0.0 {
            v.push(("perf/mfu".into(), 100.0 * tflops / self.peak_tflops));
        }
        v
    }
}
