//! Bytes per rank of weights, gradients, optimizer state and activations under a precision,
//! a ZeRO stage and data/expert parallel sizes (ZeRO, Rajbhandari et al. 2020, §3). f32
//! training holds 4 + 4 + 8 bytes per parameter (weights, gradients, AdamW's two moments).
//! This workspace's bf16 mixed precision (`train.precision = "bf16"`) keeps the f32 parameters
//! as the master weights and casts each one to bf16 at use, where the autodiff graph keeps the
//! copy until the backward pass: 2 (bf16 copies) + 4 (f32 master) + 4 (f32 gradients) + 8, not
//! the paper's 2 + 2 + 12 with bf16 gradients (PyTorch autocast's layout, as torchtitan's FSDP
//! mixed precision). ZeRO (`parallel.zero`, `parallel/zero/`) shards the moments over the
//! data-parallel ranks (an expert's over its `dp / ep` replicas); the master weights are the
//! parameters every rank computes with, so they are not sharded. ZeRO-2 shards the *reduced*
//! gradients too. burn's backward hands back every local gradient of a graph at once, so after
//! one backward pass through the whole model (`train.activation_checkpointing = "none"`) the
//! whole local gradient is held at the peak under every stage and is counted so here; under
//! activation checkpointing the backward pass goes unit by unit and ZeRO-2 reduces each unit's
//! gradients at once (`recompute/finish.rs`), so a rank holds its own sums (its share) plus
//! the largest set of unfinished local gradients ([`crate::params::largest_unit_gradients`]).

use super::{Precision, Zero};

/// Parameters one rank holds, split by how ZeRO may shard them.
#[derive(Debug, Clone, Copy, PartialEq, Default, serde::Serialize)]
pub struct RankParams {
    /// All parameters the rank holds (its experts only under expert parallelism).
    pub held: u64,
    /// Trainable parameters replicated over all `dp` ranks.
    pub trainable_dense: u64,
    /// Trainable expert parameters, replicated over `dp / ep` ranks.
    pub trainable_experts: u64,
}

/// Bytes per rank.
#[derive(Debug, Clone, Copy, PartialEq, Default, serde::Serialize)]
pub struct MemoryBytes {
    /// Working weights: the f32 parameters, or under bf16 their bf16 copies made at use.
    pub weights: f64,
    /// f32 master weights (bf16 only): the parameters themselves, on every rank.
    pub master: f64,
    pub gradients: f64,
    /// AdamW moments (two f32 values per trainable parameter).
    pub optimizer: f64,
    pub activations: f64,
}

impl MemoryBytes {
    pub fn total(&self) -> f64 {
        self.weights + self.master + self.gradients + self.optimizer + self.activations
    }
}

/// Weights, master, gradients and optimizer bytes of `p` on one rank; `dp` data-parallel
/// ranks, `ep` expert-parallel group size; `unfinished`: with ZeRO-2 reducing unit by unit
/// (activation checkpointing, `dp > 1`), the most local gradient values held before they are
/// reduced.
pub fn state_bytes(
    p: RankParams,
    precision: Precision,
    zero: Zero,
    (dp, ep): (usize, usize),
    unfinished: Option<u64>,
) -> MemoryBytes {
    let (dp, ep) = (dp.max(1) as f64, ep.max(1) as f64);
    // ZeRO shards a dense value over dp ranks, an expert value over the dp / ep replicas
    let sharded = |on: bool| {
        let (dense_div, expert_div) = if on { (dp, (dp / ep).max(1.0)) } else { (1.0, 1.0) };
        p.trainable_dense as f64 / dense_div + p.trainable_experts as f64 / expert_div
    };
    let (w, master) = match precision {
        Precision::F32 => (4.0, 0.0),
        Precision::Bf16 => (2.0, 4.0),
    };
    MemoryBytes {
        weights: w * p.held as f64,
        master: master * p.held as f64,
        gradients: 4.0
            * match unfinished {
                Some(n) => (sharded(true) + n as f64).min(sharded(false)), // own sums + one unit's
                None => sharded(false), // the local gradient is whole (above)
            },
        optimizer: 8.0 * sharded(zero >= Zero::One),
        activations: 0.0,
    }
}
