//! `mm1-train plan`: parameters, memory and FLOPs of a run per rank, from its config alone
//! (no tensor is allocated), before launch; torchtitan's and Megatron's back-of-envelope
//! maths, counted for this workspace's model (`params.rs` is checked against the real model).
//!
//! Precision, activation checkpointing and the ZeRO stage come from the config
//! (`train.precision`, `train.activation_checkpointing`, `parallel.zero`). This crate holds no
//! tensor code; the check against a measured training process (`measure`) is in the trainer.

mod activations;
mod flops;
mod memory;
mod params;
mod perf;
mod table;

pub use activations::{ActivationCount, MicroBatch};
pub use flops::FlopsModel;
pub use memory::{MemoryBytes, RankParams};
pub use params::{ParamCounts, largest_unit_gradients};
pub use perf::PerfMeter;
pub use table::render;

use mm1_config::Recompute;
use mm1_config::RunConfig;

/// Working precision, `train.precision` (the planner reads it from the config).
pub use mm1_config::Precision;

/// ZeRO stage, `parallel.zero` (`parallel/zero/`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
pub enum Zero {
    Zero,
    /// AdamW moments sharded over the data-parallel ranks.
    One,
    /// Also the reduced gradients; under activation checkpointing the local ones too, unit by unit.
    Two,
}

impl Zero {
    pub fn from_stage(s: u8) -> Result<Self, String> {
        match s {
            0 => Ok(Self::Zero),
            1 => Ok(Self::One),
            2 => Ok(Self::Two),
            _ => Err(format!("parallel.zero must be 0, 1 or 2 (got {s})")),
        }
    }

    pub fn stage(self) -> u8 {
        self as u8
    }
}

/// What the planner assumes beyond the config.
#[derive(Debug, Clone, Copy)]
pub struct PlanOptions {
    /// Peak dense TFLOP/s of one device (e.g. 989 for an H100 SXM in bf16).
    pub peak_tflops: f64,
    /// Model FLOPs utilisation assumed for the step time.
    pub mfu: f64,
    /// Device memory in bytes, to say whether the plan fits.
    pub device_memory: Option<f64>,
    /// Images per sequence (default `data.max_images_per_seq`, the worst case).
    pub images_per_seq: Option<usize>,
}

impl Default for PlanOptions {
    fn default() -> Self {
        Self { peak_tflops: 0.0, mfu: 0.4, device_memory: None, images_per_seq: None }
    }
}

/// The plan of one rank.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Plan {
    pub params: ParamCounts,
    pub rank: RankParams,
    pub memory: MemoryBytes,
    pub activations: ActivationCount,
    /// `train.activation_checkpointing` in words ("none", "every block", "every 2nd block").
    pub activation_checkpointing: String,
    /// `train.precision`.
    pub precision: Precision,
    /// Bytes per kept activation value.
    pub activation_bytes: f64,
    /// Training FLOPs of one optimizer step on one rank: `[vision, connector, llm layers, LM head]`.
    pub step_flops: [f64; 4],
    pub flops: FlopsModel,
    /// Seconds per step at `peak_tflops · mfu` (0 when no peak is given).
    pub step_time_s: f64,
    /// Positions per step on one rank: `batch_size · seq_len · grad_accum`.
    pub tokens_per_step: f64,
    pub images_per_step: f64,
    pub dp: usize,
    pub ep: usize,
    /// `parallel.zero`.
    pub zero: Zero,
    /// ZeRO-2 under activation checkpointing: the most local gradient values held before
    /// they are reduced (one unit's); `None`: the whole local gradient is held.
    pub unfinished_gradients: Option<u64>,
}

impl Plan {
    pub fn step_flops_total(&self) -> f64 {
        self.step_flops.iter().sum()
    }

    pub fn fits(&self, device_memory: f64) -> bool {
        self.memory.total() <= device_memory
    }
}

/// Plan `cfg` under `opts` (the config is validated first, as `mm1-train` does).
pub fn plan(cfg: &RunConfig, opts: &PlanOptions) -> Result<Plan, String> {
    cfg.model.validate().map_err(|e| e.to_string())?;
    if !(opts.mfu > 0.0 && opts.mfu <= 1.0) {
        return Err(format!("--mfu must be in (0, 1] (got {})", opts.mfu));
    }
    let m = &cfg.model;
    let (dp, ep) = (cfg.parallel.dp.max(1), cfg.parallel.ep.max(1));
    let params = ParamCounts::of(m);
    let experts_held = params.experts / ep as u64;
    let trainable = |frozen: bool, n: u64| if frozen { 0 } else { n };
    let rank = RankParams {
        held: params.total() - params.experts + experts_held,
        trainable_dense: trainable(m.freeze.vision, params.vision)
            + trainable(m.freeze.connector, params.connector)
            + trainable(m.freeze.llm, params.llm_dense),
        trainable_experts: trainable(m.freeze.llm, experts_held),
    };
    let precision = cfg.train.precision;
    let zero = Zero::from_stage(cfg.parallel.zero)?;
    let recompute = Recompute::from_config(&cfg.train);
    // ZeRO-2 under activation checkpointing reduces each unit's gradients during the backward pass
    let per_unit = zero == Zero::Two && recompute != Recompute::Nothing && dp > 1;
    let unfinished = per_unit.then(|| params::largest_unit_gradients(m));
    let mut memory = memory::state_bytes(rank, precision, zero, (dp, ep), unfinished);
    let images_per_seq = opts.images_per_seq.unwrap_or(cfg.data.max_images_per_seq);
    let (b, t) = (cfg.data.batch_size, cfg.data.seq_len);
    let mb = MicroBatch { seqs: b, seq_len: t, images: b * images_per_seq };
    let scored = b * t.saturating_sub(images_per_seq * m.num_image_tokens());
    let acts = activations::count(m, mb, recompute, scored);
    let activation_bytes = if precision == Precision::Bf16 { 2.0 } else { 4.0 };
    // the loss upcasts the logits: the head and the backward transients count as f32
    // (mm1_models::Mm1Model::with_compute_dtype)
    let f32_values = acts.head + acts.transient;
    memory.activations = activation_bytes * (acts.total() - f32_values) + 4.0 * f32_values;
    let accum = cfg.optim.grad_accum.max(1) as f64;
    let flops = FlopsModel::new(m, t);
    let step_flops = flops.train_parts(b as f64 * accum, (mb.images as f64) * accum);
    let total: f64 = step_flops.iter().sum();
    let step_time_s = if opts.peak_tflops > 0.0 { total / (opts.peak_tflops * 1e12 * opts.mfu) } else { 0.0 };
    Ok(Plan {
        params,
        rank,
        memory,
        activations: acts,
        activation_checkpointing: recompute.describe(),
        activation_bytes,
        step_flops,
        flops,
        step_time_s,
        tokens_per_step: (b * t) as f64 * accum,
        images_per_step: mb.images as f64 * accum,
        dp,
        ep,
        precision,
        zero,
        unfinished_gradients: unfinished,
    })
}

/// `80GB` (10⁹), `80GiB` (2³⁰), `512MB`, `512MiB` or a plain number of bytes.
pub fn parse_bytes(s: &str) -> Result<f64, String> {
    let t = s.trim();
    let split = t.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: f64 = num.trim().parse().map_err(|_| format!("--device-memory: cannot read {s:?} (e.g. 80GB)"))?;
    let scale = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "kb" => 1e3,
        "mb" => 1e6,
        "gb" => 1e9,
        "tb" => 1e12,
        "kib" => 1024.0,
        "mib" => 1024f64.powi(2),
        "gib" => 1024f64.powi(3),
        "tib" => 1024f64.powi(4),
        _ => return Err(format!("--device-memory: unknown unit {unit:?} in {s:?} (GB, GiB, MB, MiB)")),
    };
    Ok(n * scale)
}
