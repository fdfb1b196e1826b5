//! Bytes per rank of weights, gradients, optimizer state and activations under a precision,
//! a ZeRO stage and data/expert parallel sizes, the standard way (ZeRO, Rajbhandari et al.
//! 2020, §3: mixed precision holds 2 + 2 + 12 bytes per parameter — bf16 weights and
//! gradients, f32 master weights and the two AdamW moments; ZeRO-1 shards the 12 over the
//! data-parallel ranks, ZeRO-2 also the gradients). Training today is f32 (4 + 4 + 8) with
//! ZeRO 0; bf16 and ZeRO are what-if settings here (issue #16 items 2 and 4).

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
    /// Working weights (f32, or bf16).
    pub weights: f64,
    /// f32 master weights (bf16 only).
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
/// ranks, `ep` expert-parallel group size.
pub fn state_bytes(p: RankParams, precision: Precision, zero: Zero, dp: usize, ep: usize) -> MemoryBytes {
    let (dp, ep) = (dp.max(1) as f64, ep.max(1) as f64);
    // ZeRO shards a dense value over dp ranks, an expert value over the dp / ep replicas
    let sharded = |on: bool| {
        let (dense_div, expert_div) = if on { (dp, (dp / ep).max(1.0)) } else { (1.0, 1.0) };
        p.trainable_dense as f64 / dense_div + p.trainable_experts as f64 / expert_div
    };
    let (w, g) = match precision {
        Precision::F32 => (4.0, 4.0),
        Precision::Bf16 => (2.0, 2.0),
    };
    let master = if precision == Precision::Bf16 { 4.0 * sharded(zero >= Zero::One) } else { 0.0 };
    MemoryBytes {
        weights: w * p.held as f64,
        master,
        gradients: g * sharded(zero >= Zero::Two),
        optimizer: 8.0 * sharded(zero >= Zero::One),
        activations: 0.0,
    }
}
