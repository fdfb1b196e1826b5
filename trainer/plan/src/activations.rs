//! Activations kept for the backward pass of one micro-batch, in values (not bytes).
//!
//! What is counted is what burn's autodiff keeps on the flex backend with this workspace's
//! fused ops (`mm1_models::ops`): a fused op keeps its inputs (linear: the input; RMSNorm:
//! the input; attention: q, k, v, o and the row log-sum-exp, FlashAttention-style, never
//! the `t × tk` scores; SwiGLU: gate and up), burn's decomposed ops (LayerNorm, QuickGELU,
//! SiLU, the connector's convolutions) keep roughly one tensor per op. Transients of the
//! backward pass (one layer's recomputed `t × tk` probabilities and their gradient, the
//! logits' gradient) are added as the largest one. Calibrated against peak RSS on CPU by
//! `scripts/plan_check.sh` (docs/training.md, "Planning a run").

use mm1_models::{Activation, ConnectorConfig, LlmConfig, Mm1Config, VisionConfig};

use mm1_config::Recompute;

/// Values kept per micro-batch, by component, plus the largest backward transient.
#[derive(Debug, Clone, Copy, PartialEq, Default, serde::Serialize)]
pub struct ActivationCount {
    pub vision: f64,
    pub connector: f64,
    pub llm: f64,
    /// Logits of the scored positions (kept by the fused cross-entropy); 0 with recomputed
    /// blocks when their phase of the backward pass is the peak.
    pub head: f64,
    /// Largest transient of the backward pass (of the peak phase with recomputed blocks).
    pub transient: f64,
    /// With activation checkpointing: the values of the one block being recomputed (0 when
    /// the head's phase is the peak).
    pub recompute: f64,
}

impl ActivationCount {
    pub fn total(&self) -> f64 {
        self.vision + self.connector + self.llm + self.head + self.transient + self.recompute
    }
}

/// Work of one micro-batch on one rank.
#[derive(Debug, Clone, Copy)]
pub struct MicroBatch {
    /// Sequences `b`.
    pub seqs: usize,
    /// Positions per sequence `t`.
    pub seq_len: usize,
    /// Images `n` (over the micro-batch).
    pub images: usize,
}

/// Per decoder layer and token: `(attention half, FFN half)`.
fn llm_layer(c: &LlmConfig, moe_layer: bool) -> f64 {
    let (d, f) = (c.width as f64, c.ffn_dim as f64);
    let kv = (c.kv_heads * c.head_dim()) as f64;
    // RMSNorm input, normed input (q/k/v linear), q, k, v, o, lse per head
    let attn = 2.0 * d + d + 2.0 * kv + d + c.heads as f64;
    // residual (post-norm input), normed input; dense: gate, up, SwiGLU out
    let ffn = match (&c.moe, moe_layer) {
        // router logits + probs, then per chosen expert: gathered input, gate, up, out, y
        (Some(m), true) => 2.0 * m.num_experts as f64 + m.top_k as f64 * (2.0 * d + 3.0 * f),
        _ => 3.0 * f,
    };
    attn + 2.0 * d + ffn
}

/// Per ViT block and token: 2 decomposed LayerNorms (~3 tensors each), q/k/v/o, the
/// residual, fc1 input and output, the activation (QuickGELU: 3 decomposed ops).
fn vit_block(c: &VisionConfig) -> f64 {
    let (w, mlp) = (c.width as f64, c.mlp_dim as f64);
    let act = match c.activation {
        Activation::Gelu => mlp,
        Activation::QuickGelu => 3.0 * mlp,
    };
    2.0 * 3.0 * w + 4.0 * w + w + w + mlp + act
}

/// Per image: the connector at the patch grid (stage 1) and at the pooled grid.
fn connector(c: &ConnectorConfig, v: &VisionConfig, d: f64) -> f64 {
    let (dv, p) = (v.width as f64, v.num_patches() as f64);
    let m = c.num_tokens() as f64;
    // per position of a RegNet bottleneck: input, 3 × (conv out + LayerNorm2d ~3 + SiLU), SE
    let bottleneck = |ci: f64, co: f64, n: f64| n * (ci + 3.0 * 5.0 * co + 2.0 * co);
    match c {
        ConnectorConfig::AvgPool(_) => p * dv + m * dv,
        ConnectorConfig::AttnPool(_) => p * 5.0 * dv + m * 5.0 * dv + m * d,
        ConnectorConfig::CAbstractor(a) => {
            let (hid, depth) = (a.hidden as f64, a.depth as f64);
            let stage1 =
                bottleneck(dv, hid, p) + (depth - 1.0) * bottleneck(hid, hid, p) + p * (dv + 4.0 * hid);
            let stage2 = depth * bottleneck(hid, hid, m);
            stage1 + stage2 + m * (hid + a.mlp_depth as f64 * d)
        }
    }
}

/// Values kept for one micro-batch. A block that `recompute` names keeps only its input.
/// With recomputed blocks the backward pass has two phases that do not overlap
/// (`trainer/src/recompute/`): the head's (its logits and their gradient, freed before the
/// first block is recomputed), then the blocks' (one recomputed block's values and its
/// attention probabilities); the larger one is counted.
pub fn count(m: &Mm1Config, mb: MicroBatch, recompute: Recompute, scored: usize) -> ActivationCount {
    let c = &m.llm;
    let (b, t, n) = (mb.seqs as f64, mb.seq_len as f64, mb.images as f64);
    let tokens = b * t;
    let d = c.width as f64;
    let vit_tokens = 1.0 + m.vision.num_patches() as f64;
    let vit_depth = m.vision.feature_depth().unwrap_or(m.vision.layers);
    let vw = m.vision.width as f64;
    // per block: (kept, recomputed at the peak)
    let kept = |all: f64, input: f64, i: usize| if recompute.block(i) { (input, all) } else { (all, 0.0) };
    let llm_blocks: Vec<(f64, f64)> =
        (0..c.layers).map(|i| kept(tokens * llm_layer(c, c.is_moe_layer(i)), tokens * d, i)).collect();
    let vit_block_all = n * vit_tokens * vit_block(&m.vision);
    let vit_blocks: Vec<(f64, f64)> =
        (0..vit_depth).map(|i| kept(vit_block_all, n * vit_tokens * vw, i)).collect();
    let llm_layers: f64 = llm_blocks.iter().map(|k| k.0).sum();
    let vit_layers: f64 = vit_blocks.iter().map(|k| k.0).sum();
    let vit_recompute = if m.freeze.vision { &[][..] } else { &vit_blocks[..] };
    let recompute = llm_blocks.iter().chain(vit_recompute).map(|k| k.1).fold(0.0, f64::max);
    let vision = if m.freeze.vision { 0.0 } else { vit_layers + 2.0 * n * vit_tokens * vw };
    // embedding output, image-token scatter, final norm input and output
    let llm = llm_layers + 4.0 * tokens * d;
    let heads_probs = |rows: f64, cols: f64, heads: f64| 2.0 * rows * cols * heads;
    let attention = f64::max(
        b * heads_probs(t, t, c.heads as f64),
        n * heads_probs(vit_tokens, vit_tokens, m.vision.heads as f64),
    );
    let logits = scored as f64 * c.vocab_size as f64;
    let (head, transient, recompute) = if recompute == 0.0 {
        (logits, attention.max(logits), 0.0)
    } else if logits + logits >= recompute + attention {
        (logits, logits, 0.0)
    } else {
        (0.0, attention, recompute)
    };
    ActivationCount {
        vision,
        connector: n * connector(&m.connector, &m.vision, d),
        llm,
        head,
        transient,
        recompute,
    }
}
