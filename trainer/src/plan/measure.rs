//! The planner's check against measurement (`mm1-train plan --measure-steps N`, run by
//! `scripts/plan_check.sh`): RSS before the model exists, then N full training steps
//! (forward, loss, backward, clip, AdamW; blocks recomputed as `train.activation_checkpointing`
//! says) on `bench`'s in-memory batch (one image per sequence), then the process's peak RSS
//! (`VmHWM`). A benchmark, not a test: the numbers depend on the allocator and the backend.

use serde::Serialize;

use crate::bench::synthetic_batch;
use crate::config::RunConfig;
use crate::optim::GroupedAdamW;
use crate::recompute::Recompute;
use crate::run::{RunError, train_device};
use crate::step::{LocalStep, train_step_with_recompute};

#[derive(Debug, Clone, Copy, Serialize)]
pub struct Measured {
    pub steps: usize,
    /// `VmRSS` before the model is allocated.
    pub start_rss_bytes: f64,
    /// `VmHWM` after the steps.
    pub peak_rss_bytes: f64,
    pub growth_bytes: f64,
}

/// A `kB` field of `/proc/self/status`, in bytes.
fn status_bytes(field: &str) -> Result<f64, RunError> {
    let path = std::path::PathBuf::from("/proc/self/status");
    let text =
        std::fs::read_to_string(&path).map_err(|source| RunError::Io { path: path.clone(), source })?;
    text.lines()
        .find_map(|l| l.strip_prefix(field)?.trim().strip_suffix("kB")?.trim().parse::<f64>().ok())
        .map(|kb| kb * 1024.0)
        .ok_or_else(|| RunError::Stop(format!("no {field} in /proc/self/status")))
}

/// Peak RSS growth of `steps` training steps of `cfg` (batch of `data.batch_size`
/// sequences, `optim.grad_accum` micro-batches per step) from before the model exists.
pub fn peak_rss_growth(cfg: &RunConfig, steps: usize) -> Result<Measured, RunError> {
    let device = train_device(cfg.train.device)?;
    device.seed(cfg.train.seed);
    let start = status_bytes("VmRSS:")?;
    let model = cfg.model.init(&device)?;
    let mut model = crate::precision::apply(model, cfg.train.precision, cfg.train.device, &device)?;
    let resolved = cfg.optim.resolve(crate::run::non_embedding_params(&model));
    let settings = crate::optim::AdamWSettings::from_config(&cfg.optim, &resolved, &cfg.model.freeze);
    let mut optim = GroupedAdamW::new(&model, &settings)?;
    let batches: Vec<_> =
        (0..cfg.optim.grad_accum.max(1)).map(|i| synthetic_batch(cfg, cfg.train.seed + i as u64)).collect();
    let recompute = Recompute::from_config(&cfg.train);
    for _ in 0..steps.max(1) {
        let (m, _) = train_step_with_recompute(
            model,
            &mut optim,
            &batches,
            resolved.lr,
            &device,
            &LocalStep,
            recompute,
        )?;
        model = m;
    }
    let peak = status_bytes("VmHWM:")?;
    drop(model);
    Ok(Measured {
        steps: steps.max(1),
        start_rss_bytes: start,
        peak_rss_bytes: peak,
        growth_bytes: peak - start,
    })
}
