//! `[optim]`: AdamW with per-component learning rates, global-norm clipping and accumulation.
//!
//! The MM1 learning-rate rule (MM1 §3.4, "Model scaling") is `lr_rule = "mm1"`:
//! `η = exp(−0.4214 ln N − 0.5535)` with N the non-embedding parameter count, and decoupled
//! weight decay `λ = 0.1 η`.

use serde::{Deserialize, Serialize};

/// `[optim]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OptimConfig {
    /// Peak learning rate (after warmup). Ignored when `lr_rule = "mm1"`.
    pub lr: f64,
    /// `"fixed"`: use `lr` and `weight_decay` as written; `"mm1"`: compute both from N.
    pub lr_rule: LrRule,
    /// AdamW `[β1, β2]`.
    pub betas: [f64; 2],
    /// AdamW ε.
    pub eps: f64,
    /// AdamW weight-decay coefficient in the PyTorch/burn convention `θ ← θ − lr·wd·θ`.
    /// Ignored when `lr_rule = "mm1"` (then `lr·wd = 0.1·lr`, i.e. `wd = 0.1`).
    pub weight_decay: f64,
    /// Apply weight decay to norm weights and biases too (MM1/LLaVA exclude them: `false`).
    pub decay_norms_and_biases: bool,
    /// Apply weight decay to embedding tensors (token/position embeddings, class token).
    /// nanoGPT/HF Trainer/torchtitan decay them: `true`; some recipes exclude them.
    pub decay_embeddings: bool,
    /// Clip the **global** L2 norm of all gradients to this value; `0` turns clipping off.
    pub grad_clip: f64,
    /// Micro-batches whose gradients are summed before one optimizer step.
    pub grad_accum: usize,
    /// `[optim.lr_multipliers]`: per-component factors on the scheduled learning rate.
    pub lr_multipliers: LrMultipliers,
}

impl Default for OptimConfig {
    fn default() -> Self {
        Self {
            lr: 1e-4,
            lr_rule: LrRule::Fixed,
            betas: [0.9, 0.95],
            eps: 1e-8,
            weight_decay: 0.1,
            decay_norms_and_biases: false,
            decay_embeddings: true,
            grad_clip: 1.0,
            grad_accum: 1,
            lr_multipliers: LrMultipliers::default(),
        }
    }
}

/// How the peak learning rate and the weight decay are chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LrRule {
    /// `optim.lr` and `optim.weight_decay` as written.
    Fixed,
    /// MM1 §3.4: `lr = exp(−0.4214 ln N − 0.5535)`, decoupled decay `0.1·lr`.
    Mm1,
}

/// `[optim.lr_multipliers]`: the scheduled learning rate times this factor per component.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LrMultipliers {
    pub vision: f64,
    pub connector: f64,
    pub llm: f64,
}

impl Default for LrMultipliers {
    fn default() -> Self {
        Self { vision: 1.0, connector: 1.0, llm: 1.0 }
    }
}

/// Peak learning rate and weight decay after applying `lr_rule`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ResolvedOptim {
    /// Peak learning rate (the schedule scales it per step).
    pub lr: f64,
    /// Coefficient for burn's `AdamWConfig::with_weight_decay` (`θ ← θ − lr·wd·θ`).
    pub weight_decay: f64,
}

impl ResolvedOptim {
    /// Per-step decoupled decay at peak, `lr · wd` (MM1's λ).
    pub fn decoupled_weight_decay(&self) -> f64 {
        self.lr * self.weight_decay
    }
}

impl OptimConfig {
    /// Applies `lr_rule`; `non_embedding_params` is N of the MM1 rule (unused for `"fixed"`).
    pub fn resolve(&self, non_embedding_params: u64) -> ResolvedOptim {
        match self.lr_rule {
            LrRule::Fixed => ResolvedOptim { lr: self.lr, weight_decay: self.weight_decay },
            LrRule::Mm1 => {
                let lr = mm1_lr(non_embedding_params);
                // λ = 0.1·η decoupled; burn multiplies its coefficient by lr, so wd = λ/η = 0.1.
                ResolvedOptim { lr, weight_decay: MM1_WEIGHT_DECAY_OVER_LR }
            }
        }
    }
}

/// MM1's decoupled weight decay over learning rate, `λ / η` (MM1 §3.4). burn's AdamW multiplies
/// its weight-decay coefficient by the current lr, so this is the coefficient to pass it.
pub const MM1_WEIGHT_DECAY_OVER_LR: f64 = 0.1;

/// MM1's peak learning rate for `n` non-embedding parameters: `exp(−0.4214 ln n − 0.5535)`
/// (MM1 §3.4).
pub fn mm1_lr(n: u64) -> f64 {
    (-0.4214 * (n.max(1) as f64).ln() - 0.5535).exp()
}
