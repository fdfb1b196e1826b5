//! The small trainer-owned sections: `[schedule]`, `[train]`, `[checkpoint]`,
//! `[log]` and `[parallel]`. Each struct mirrors its TOML section 1:1.

use serde::{Deserialize, Serialize};

/// `[schedule]`: linear warmup, then decay to `min_lr_ratio · lr` at `train.steps`
/// (MM1: 2000 warmup steps, cosine to 10% of peak).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ScheduleConfig {
    /// Steps of linear warmup from 0 to the peak learning rate.
    pub warmup_steps: u64,
    /// Shape of the decay after warmup.
    pub decay: Decay,
    /// Floor of the decay as a fraction of the peak.
    pub min_lr_ratio: f64,
}

impl Default for ScheduleConfig {
    fn default() -> Self {
        Self { warmup_steps: 2000, decay: Decay::Cosine, min_lr_ratio: 0.1 }
    }
}

/// Decay shape after warmup.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Decay {
    /// Half cosine from the peak to the floor.
    Cosine,
    /// Straight line from the peak to the floor.
    Linear,
    /// Stay at the peak.
    Constant,
}

/// `[train]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrainConfig {
    /// Total optimizer steps (scripts rely on this key: `train.steps`).
    pub steps: u64,
    /// Seed of parameter initialisation and of every trainer-side random draw.
    pub seed: u64,
    /// A step whose loss or gradient is NaN/Inf is skipped; this many in a row stop the run.
    pub max_nonfinite_in_a_row: u32,
    /// Backend the run uses.
    pub device: DeviceKind,
    /// Working precision: `f32`, or `bf16` mixed precision (f32 parameters, gradients and
    /// AdamW state; bf16 activations and matmuls; norms, softmax, router and loss in f32).
    pub precision: Precision,
    /// Sequences per optimizer step over all ranks and micro-batches; when non-zero it must
    /// equal `data.batch_size × parallel.dp × optim.grad_accum` (MM1: 512).
    pub global_batch_size: usize,
    /// Peak dense TFLOP/s of one device (e.g. 989 for an H100 SXM in bf16); when > 0 the logs
    /// carry `perf/mfu`. `0`: not logged.
    pub device_peak_tflops: f64,
    /// Recompute block activations in the backward pass instead of keeping them
    /// (torchtitan's `activation_checkpoint.mode`; see `trainer/src/recompute.rs`).
    pub activation_checkpointing: ActivationCheckpointing,
    /// With `activation_checkpointing = "every_n"`: every n-th ViT and decoder block is
    /// recomputed, counted from 1 in each tower (torchtitan's `selective_ac_option = "n"`).
    pub activation_checkpointing_every: usize,
}

/// Which blocks keep only their input for the backward pass (and are recomputed there).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActivationCheckpointing {
    /// Keep every activation.
    #[default]
    None,
    /// Every ViT and decoder block (torchtitan's `mode = "full"`).
    Blocks,
    /// Every `train.activation_checkpointing_every`-th block.
    EveryN,
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            steps: 1000,
            seed: 0,
            max_nonfinite_in_a_row: 5,
            device: DeviceKind::Flex,
            precision: Precision::F32,
            global_batch_size: 0,
            device_peak_tflops: 0.0,
            activation_checkpointing: ActivationCheckpointing::None,
            activation_checkpointing_every: 2,
        }
    }
}

/// `train.precision`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Precision {
    /// Everything in f32.
    #[default]
    F32,
    /// Mixed precision (Micikevicius et al. 2018, with bf16 as in MM1 and torchtitan): f32
    /// master weights and optimizer state, bf16 activations (`docs/training.md`, "Mixed precision").
    Bf16,
}

impl Precision {
    /// The name as written in TOML.
    pub fn name(self) -> &'static str {
        match self {
            Self::F32 => "f32",
            Self::Bf16 => "bf16",
        }
    }
}

/// Backend selected at run time (`flex` is burn's pure-Rust CPU backend).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeviceKind {
    Flex,
    Wgpu,
    Cuda,
}

impl DeviceKind {
    /// The name as written in TOML.
    pub fn name(self) -> &'static str {
        match self {
            DeviceKind::Flex => "flex",
            DeviceKind::Wgpu => "wgpu",
            DeviceKind::Cuda => "cuda",
        }
    }
}

/// `[checkpoint]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CheckpointConfig {
    /// Steps between checkpoints (scripts rely on `checkpoint.every`); one is always written
    /// at the end; `0` writes only that one.
    pub every: u64,
    /// Checkpoints kept in the run folder (older ones are deleted).
    pub keep_last: usize,
    /// Write checkpoints on a background thread while training goes on (at most one write in
    /// flight); `false` writes them on the training thread.
    pub background: bool,
}

impl Default for CheckpointConfig {
    fn default() -> Self {
        Self { every: 1000, keep_last: 3, background: true }
    }
}

/// `[log]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// Steps between log lines (scripts rely on `log.every`).
    pub every: u64,
    /// Write TensorBoard event files into the run folder.
    pub tensorboard: bool,
    /// How progress is shown on stderr.
    pub progress: ProgressMode,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self { every: 10, tensorboard: true, progress: ProgressMode::Auto }
    }
}

/// Progress display on stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProgressMode {
    /// A bar when stderr is a terminal, plain lines otherwise.
    Auto,
    /// Always plain lines (batch jobs, CI, `tee`).
    Plain,
    /// Nothing on stderr (metrics still go to files).
    Off,
}

/// `[parallel]`: data and expert parallelism (sizes are validated before anything runs).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ParallelConfig {
    /// Data-parallel ranks.
    pub dp: usize,
    /// Expert-parallel group size; divides `dp` and the number of experts.
    pub ep: usize,
    /// Seconds a collective may wait for the other ranks before the run fails.
    pub collective_timeout_s: u64,
    /// ZeRO stage over the data-parallel ranks: 0 every rank holds the whole AdamW state; 1 each
    /// rank holds the moments of its own parameters only (gradients all-reduced, updated
    /// parameters all-gathered); 2 also receives only its own parameters' summed gradients
    /// (reduce-scatter). Needs `ep = 1`; with `dp = 1` there is nothing to shard.
    pub zero: u8,
}

impl Default for ParallelConfig {
    fn default() -> Self {
        Self { dp: 1, ep: 1, collective_timeout_s: 600, zero: 0 }
    }
}

/// Which blocks keep only their input for the backward pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Recompute {
    /// Keep every activation (one backward pass through the whole graph).
    #[default]
    Nothing,
    /// Every n-th block of each tower, counted from 1 (`"blocks"`: n = 1).
    EveryNth(usize),
}

impl Recompute {
    /// From `train.activation_checkpointing` (and `_every`).
    pub fn from_config(train: &TrainConfig) -> Self {
        match train.activation_checkpointing {
            ActivationCheckpointing::None => Self::Nothing,
            ActivationCheckpointing::Blocks => Self::EveryNth(1),
            ActivationCheckpointing::EveryN => Self::EveryNth(train.activation_checkpointing_every.max(1)),
        }
    }

    /// Whether block `i` (0-based within its tower: ViT or decoder) is recomputed; with
    /// n = 2 that is blocks 1, 3, 5, ... as torchtitan's `selective_ac_option = "2"`.
    pub fn block(self, i: usize) -> bool {
        match self {
            Self::Nothing => false,
            Self::EveryNth(n) => (i + 1).is_multiple_of(n.max(1)),
        }
    }

    /// In words, for the planner: "none", "every block", "every 2nd block".
    pub fn describe(self) -> String {
        match self {
            Self::Nothing => "none".into(),
            Self::EveryNth(1) => "every block".into(),
            Self::EveryNth(2) => "every 2nd block".into(),
            Self::EveryNth(3) => "every 3rd block".into(),
            Self::EveryNth(n) => format!("every {n}th block"),
        }
    }
}
