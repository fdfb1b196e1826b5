//! `mm1-train bench`: time the full training step (forward, loss, backward, global-norm
//! clip, AdamW) on a batch already in memory, exactly as `shared/bench/torch_step_baseline.py`
//! does: random tokens, one image per sequence whose tokens lead the sequence, two
//! untimed warm-up steps, median over the timed ones. A second, shorter run takes the same
//! step apart (tensors from the batch, forward + loss, backward, clip + AdamW) and reports the
//! median of each phase, so a regression shows where it is (see `docs/performance.md`).

use std::time::Instant;

use mm1_data::{Batch, SourceCounts};
use rand::{Rng, SeedableRng};

use crate::config::RunConfig;
use crate::optim::GroupedAdamW;
use crate::recompute::Recompute;
use crate::run::{RunError, train_device};
use crate::step::{LocalStep, batch_to_tensors, forward_batch, train_step, train_step_with_recompute};

/// Result of a benchmark, printed as one JSON line with `--json`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct BenchResult {
    pub ms_per_step: f64,
    pub tokens_per_s: f64,
    pub steps: usize,
    pub params: usize,
    pub batch_size: usize,
    pub seq_len: usize,
    pub mean_ms_per_step: f64,
    pub min_ms_per_step: f64,
    /// Medians over a separate run of `min(steps, 5)` steps, each taken apart into phases.
    pub phases: PhaseTimes,
}

/// Wall time of the phases of one training step, in ms.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PhaseTimes {
    /// Host batch → device tensors.
    pub to_tensors_ms: f64,
    /// Model forward and the loss, read back (the device has finished).
    pub forward_ms: f64,
    /// `backward()` and collecting the parameter gradients.
    pub backward_ms: f64,
    /// Global-norm clip and the AdamW update.
    pub optim_ms: f64,
}

/// A batch of `b` sequences of `t` random tokens, each led by one image's placeholders.
pub fn synthetic_batch(cfg: &RunConfig, seed: u64) -> Batch {
    let (b, t) = (cfg.data.batch_size, cfg.data.seq_len);
    let m = cfg.model.num_image_tokens();
    let s = cfg.model.image_size()[0];
    let vocab = cfg.model.llm.vocab_size as u32;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let row = |_| (0..t).map(|i| i < m).collect::<Vec<bool>>();
    let image_mask: Vec<bool> = (0..b).flat_map(row).collect();
    Batch {
        batch_size: b,
        seq_len: t,
        input_ids: (0..b * t).map(|_| rng.random_range(0..vocab)).collect(),
        targets: (0..b * t).map(|_| rng.random_range(0..vocab)).collect(),
        loss_mask: image_mask.iter().map(|&im| !im).collect(),
        image_mask,
        segment_ids: vec![1; b * t],
        position_ids: (0..b).flat_map(|_| 0..t as u32).collect(),
        source_ids: vec![0; b * t],
        n_images: b,
        image_size: s,
        num_image_tokens: m,
        images: (0..b * 3 * s * s).map(|_| rng.random_range(-1.0f32..1.0)).collect(),
        sources: vec![SourceCounts {
            name: "bench".into(),
            samples: b as u64,
            tokens: (b * t) as u64,
            images: b as u64,
        }],
        dropped_tokens: 0,
        dropped_images: 0,
        keys_sha256: String::new(),
        keys: Vec::new(),
        index: 0,
    }
}

/// What a bench run trains: the model and its optimizer on the configured device, the one
/// in-memory batch, and the peak learning rate (the bench steps at a constant rate).
struct BenchSetup {
    device: burn::tensor::Device,
    model: mm1_models::Mm1Model,
    optim: GroupedAdamW,
    batch: [Batch; 1],
    lr: f64,
}

fn setup(cfg: &RunConfig) -> Result<BenchSetup, RunError> {
    let device = train_device(cfg.train.device)?;
    device.seed(cfg.train.seed);
    let model = cfg.model.init(&device)?;
    let model = crate::precision::apply(model, cfg.train.precision, cfg.train.device, &device)?;
    let resolved = cfg.optim.resolve(crate::run::non_embedding_params(&model));
    let settings = crate::optim::AdamWSettings::from_config(&cfg.optim, &resolved, &cfg.model.freeze);
    let optim = GroupedAdamW::new(&model, &settings)?;
    let batch = [synthetic_batch(cfg, cfg.train.seed)];
    Ok(BenchSetup { device, model, optim, batch, lr: resolved.lr })
}

/// The loss of each of the first `steps` training steps a bench run takes (its 2 warm-up steps
/// first), untimed: what `trainer/tests/golden_losses.rs` compares with its golden file.
pub fn bench_losses(cfg: &RunConfig, steps: usize) -> Result<Vec<f64>, RunError> {
    let BenchSetup { device, mut model, mut optim, batch, lr } = setup(cfg)?;
    let mut losses = Vec::with_capacity(steps);
    for _ in 0..steps {
        let (m, report) = train_step(model, &mut optim, &batch, lr, &device)?;
        model = m;
        losses.push(report.loss);
    }
    Ok(losses)
}

/// Run `steps` timed training steps (after 2 warm-up steps) on one in-memory batch, blocks
/// recomputed as `train.activation_checkpointing` says (the phase split keeps every activation).
pub fn bench(cfg: &RunConfig, steps: usize) -> Result<BenchResult, RunError> {
    let BenchSetup { device, mut model, mut optim, batch, lr } = setup(cfg)?;
    let params = optim.plan().total_numel;
    let recompute = Recompute::from_config(&cfg.train);
    let mut times = Vec::with_capacity(steps);
    for i in 0..steps + 2 {
        let t0 = Instant::now();
        let (m, report) =
            train_step_with_recompute(model, &mut optim, &batch, lr, &device, &LocalStep, recompute)?;
        model = m;
        // `train_step` reads the loss and grad norm back, so the step has finished here.
        let dt = t0.elapsed().as_secs_f64();
        if !report.loss.is_finite() {
            return Err(RunError::Stop(format!("bench: non-finite loss at step {i}")));
        }
        if i >= 2 {
            times.push(dt);
        }
    }
    let mut phases = [(); 4].map(|_| Vec::new());
    for _ in 0..steps.clamp(1, 5) {
        let (m, split) = timed_phases(model, &mut optim, &batch[0], lr, &device)?;
        model = m;
        for (acc, dt) in phases.iter_mut().zip(split) {
            acc.push(dt);
        }
    }
    let [to_tensors, forward, backward, optim] = phases.map(|v| median(&v) * 1e3);
    let median_s = median(&times);
    let (b, t) = (cfg.data.batch_size, cfg.data.seq_len);
    let n = times.len();
    Ok(BenchResult {
        ms_per_step: median_s * 1e3,
        tokens_per_s: (b * t) as f64 / median_s,
        steps,
        params,
        batch_size: b,
        seq_len: t,
        mean_ms_per_step: times.iter().sum::<f64>() / n as f64 * 1e3,
        min_ms_per_step: times.iter().copied().fold(f64::INFINITY, f64::min) * 1e3,
        phases: PhaseTimes {
            to_tensors_ms: to_tensors,
            forward_ms: forward,
            backward_ms: backward,
            optim_ms: optim,
        },
    })
}

fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let n = s.len();
    if n % 2 == 1 { s[n / 2] } else { 0.5 * (s[n / 2 - 1] + s[n / 2]) }
}

/// One step of [`train_step`] on a single batch, taken apart: seconds spent in
/// `[to_tensors, forward, backward, optim]`. Each phase ends with a read-back or with
/// eager host work, so the times are not shifted between phases by asynchronous devices.
fn timed_phases(
    model: mm1_models::Mm1Model,
    optim: &mut GroupedAdamW,
    batch: &Batch,
    lr: f64,
    device: &burn::tensor::Device,
) -> Result<(mm1_models::Mm1Model, [f64; 4]), RunError> {
    let denom = batch.loss_tokens().max(1) as f64;
    let t0 = Instant::now();
    let tensors = batch_to_tensors(batch, device)?;
    let t1 = Instant::now();
    let out = forward_batch(&model, tensors)?;
    let objective = out.ce_sum().div_scalar(denom) + out.aux;
    let loss = objective.clone().into_scalar::<f32>();
    let t2 = Instant::now();
    let grads = optim.grads(objective.backward(), &model);
    let t3 = Instant::now();
    let (model, stats) = optim.step(lr, model, grads);
    let t4 = Instant::now();
    if !loss.is_finite() || !stats.grad_norm.is_finite() {
        return Err(RunError::Stop(format!(
            "bench: non-finite loss {loss} or grad norm {}",
            stats.grad_norm
        )));
    }
    let s = |a: Instant, b: Instant| (b - a).as_secs_f64();
    Ok((model, [s(t0, t1), s(t1, t2), s(t2, t3), s(t3, t4)]))
}
