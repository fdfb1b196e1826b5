//! `[model.llm]` and `[model.llm.moe]`: Llama-style decoder, dense or mixture-of-experts.

use serde::{Deserialize, Serialize};

/// `[model.llm]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LlmConfig {
    pub vocab_size: usize,
    pub width: usize,
    pub layers: usize,
    pub heads: usize,
    /// Key/value heads for grouped-query attention; must divide `heads`.
    pub kv_heads: usize,
    /// SwiGLU hidden width.
    pub ffn_dim: usize,
    pub rope_theta: f64,
    pub rms_norm_eps: f64,
    /// Share the token embedding with the output head.
    pub tie_embeddings: bool,
    /// Longest sequence (RoPE table length).
    pub max_seq_len: usize,
    /// `[model.llm.moe]`: replace the FFN of every `every`-th layer by a mixture of experts.
    pub moe: Option<MoeConfig>,
}

impl Default for LlmConfig {
    /// MM1's 1.2B ablation decoder.
    fn default() -> Self {
        crate::presets::llm_1_2b()
    }
}

impl LlmConfig {
    pub fn head_dim(&self) -> usize {
        self.width / self.heads.max(1)
    }

    /// Whether layer `i` (0-based) uses the MoE FFN: layers `every-1, 2*every-1, ...`.
    pub fn is_moe_layer(&self, i: usize) -> bool {
        self.moe.as_ref().is_some_and(|m| m.every > 0 && (i + 1).is_multiple_of(m.every))
    }
}

/// `[model.llm.moe]` (MM1 §3.4: top-2 routing, load-balance 0.01, router z-loss 0.001).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MoeConfig {
    pub num_experts: usize,
    pub top_k: usize,
    /// Every `every`-th layer is an MoE layer (1: all layers).
    pub every: usize,
    /// Expert capacity = ceil(capacity_factor * tokens * top_k / num_experts); tokens routed
    /// beyond it are dropped (they pass through the residual only) and counted.
    /// `0` disables the capacity limit.
    pub capacity_factor: f64,
    /// GShard load-balancing loss coefficient.
    pub load_balance_coef: f64,
    /// Router z-loss coefficient (ST-MoE).
    pub z_loss_coef: f64,
    /// Initialise every expert as a copy of one dense FFN ("sparse upcycling"); a dense
    /// checkpoint's FFN weights are then loaded into every expert.
    pub upcycle: bool,
}

impl Default for MoeConfig {
    fn default() -> Self {
        Self {
            num_experts: 64,
            top_k: 2,
            every: 2,
            capacity_factor: 1.25,
            load_balance_coef: 0.01,
            z_loss_coef: 0.001,
            upcycle: false,
        }
    }
}
