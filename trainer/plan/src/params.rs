//! Parameter counts from `[model]` alone, layer by layer as `mm1-models` builds them
//! (`vit/`, `connector/`, `llm/`); `trainer/tests/plan_params.rs` checks them against the
//! allocated model's `num_params()` for dense, MoE and each connector kind.

use mm1_models::{ConnectorConfig, LlmConfig, Mm1Config, VisionConfig};

/// Parameter counts of one model (whole model, not per rank).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
pub struct ParamCounts {
    pub vision: u64,
    pub connector: u64,
    /// LLM without the experts: embedding, attention, dense FFNs, routers, norms, head.
    pub llm_dense: u64,
    /// Expert FFNs of all MoE layers (0 for a dense LLM).
    pub experts: u64,
    /// Experts a token runs through: `experts · top_k / num_experts`.
    pub experts_active: u64,
}

impl ParamCounts {
    pub fn of(m: &Mm1Config) -> Self {
        let (llm_dense, experts, experts_active) = llm(&m.llm);
        Self {
            vision: vision(&m.vision),
            connector: connector(&m.connector, &m.vision, m.llm.width as u64),
            llm_dense,
            experts,
            experts_active,
        }
    }

    pub fn total(&self) -> u64 {
        self.vision + self.connector + self.llm_dense + self.experts
    }

    /// Parameters one token (and its image) runs through.
    pub fn active(&self) -> u64 {
        self.vision + self.connector + self.llm_dense + self.experts_active
    }
}

/// Trainable parameters whose local gradients the segmented backward pass (activation
/// checkpointing) holds at most at once before they are finished (`recompute/finish.rs`): one
/// unit's — the ViT stem, a ViT block, the connector, the embedding, a decoder layer, or the
/// final norm with the head — plus, with a tied head, the embedding's head term, held from the
/// head back to the embedding unit. Frozen towers (`[model.freeze]`) give none.
pub fn largest_unit_gradients(m: &Mm1Config) -> u64 {
    let (v, l, f) = (&m.vision, &m.llm, &m.freeze);
    let (d, vocab) = (l.width as u64, l.vocab_size as u64);
    let depth = v.feature_depth().unwrap_or(v.layers) as u64;
    let vision_units = [vision(v) - depth * vit_block(v), if depth > 0 { vit_block(v) } else { 0 }];
    let vision_max = if f.vision { 0 } else { vision_units.into_iter().max().unwrap_or(0) };
    let connector = if f.connector { 0 } else { connector(&m.connector, v, d) };
    if f.llm {
        return vision_max.max(connector);
    }
    let layer = (0..l.layers).map(|i| decoder_layer(l, i)).max().unwrap_or(0);
    // tied: the head's term of the embedding waits through every layer for the embedding's
    let (head, pending) = if l.tie_embeddings { (d + vocab * d, vocab * d) } else { (d + d * vocab, 0) };
    let llm = [head, layer + pending, vocab * d + pending].into_iter().max().unwrap_or(0);
    vision_max.max(connector).max(llm)
}

/// Decoder layer `i`: 2 RMSNorms, attention, and its FFN or its router and experts.
fn decoder_layer(c: &LlmConfig, i: usize) -> u64 {
    let d = c.width as u64;
    let ffn_part = match (&c.moe, c.is_moe_layer(i)) {
        (Some(m), true) => d * m.num_experts as u64 + m.num_experts as u64 * ffn(c),
        _ => ffn(c),
    };
    2 * d + attention(c) + ffn_part
}

/// `Linear` with bias: `i·o + o`.
fn lin(i: u64, o: u64) -> u64 {
    i * o + o
}

/// burn's `LayerNorm`: gamma and beta.
fn layer_norm(w: u64) -> u64 {
    2 * w
}

/// One CLIP block: 2 LayerNorms, q/k/v/out projections with bias, fc1/fc2 with bias.
fn vit_block(c: &VisionConfig) -> u64 {
    let (w, mlp) = (c.width as u64, c.mlp_dim as u64);
    2 * layer_norm(w) + 4 * lin(w, w) + lin(w, mlp) + lin(mlp, w)
}

/// Patch conv (no bias), class token, position table (at the pretrained grid), pre-LN and
/// the blocks up to `feature_layer` (later blocks are not built).
pub fn vision(c: &VisionConfig) -> u64 {
    let (w, p) = (c.width as u64, c.patch_size as u64);
    let [gh, gw] = c.pretrained_grid();
    let depth = c.feature_depth().unwrap_or(c.layers) as u64;
    3 * p * p * w + w + (1 + (gh * gw) as u64) * w + layer_norm(w) + depth * vit_block(c)
}

/// RegNet bottleneck `ci → co` (`connector/regnet.rs`): 1×1, depthwise 3×3, SE (width
/// `round(ci/4)`), 1×1, three LayerNorm2d, and a 1×1 + norm shortcut when `ci != co`.
fn bottleneck(ci: u64, co: u64) -> u64 {
    let se = ((ci as f64 * 0.25).round() as u64).max(1);
    let convs = ci * co + 9 * co + co * co;
    let down = if ci != co { ci * co + layer_norm(co) } else { 0 };
    convs + 3 * layer_norm(co) + lin(co, se) + lin(se, co) + down
}

pub fn connector(c: &ConnectorConfig, v: &VisionConfig, d: u64) -> u64 {
    let dv = v.width as u64;
    match c {
        ConnectorConfig::AvgPool(_) => lin(dv, d),
        ConnectorConfig::AttnPool(a) => {
            a.num_tokens as u64 * dv + layer_norm(dv) + 4 * lin(dv, dv) + lin(dv, d)
        }
        ConnectorConfig::CAbstractor(a) => {
            let hid = a.hidden as u64;
            let pos = if a.pos_emb { v.num_patches() as u64 * dv } else { 0 };
            let depth = a.depth as u64;
            let stages = bottleneck(dv, hid) + (2 * depth - 1) * bottleneck(hid, hid);
            let readout = lin(hid, d) + (a.mlp_depth as u64).saturating_sub(1) * lin(d, d);
            pos + stages + readout
        }
    }
}

/// Bias-free q/k/v/o projections of one decoder layer (grouped-query K/V).
pub fn attention(c: &LlmConfig) -> u64 {
    let (d, dh) = (c.width as u64, c.head_dim() as u64);
    let (h, kvh) = (c.heads as u64, c.kv_heads as u64);
    2 * d * h * dh + 2 * d * kvh * dh
}

/// One SwiGLU FFN (gate, up, down; no bias).
pub fn ffn(c: &LlmConfig) -> u64 {
    3 * c.width as u64 * c.ffn_dim as u64
}

/// `(dense, experts, active experts)` of the decoder.
fn llm(c: &LlmConfig) -> (u64, u64, u64) {
    let (d, v) = (c.width as u64, c.vocab_size as u64);
    let head = if c.tie_embeddings { 0 } else { d * v };
    let mut dense = v * d + d + head; // embedding, final RMSNorm, head
    let (mut experts, mut active) = (0, 0);
    for i in 0..c.layers {
        dense += 2 * d + attention(c); // 2 RMSNorms (gamma only) + attention
        match (&c.moe, c.is_moe_layer(i)) {
            (Some(m), true) => {
                dense += d * m.num_experts as u64; // router, no bias
                experts += m.num_experts as u64 * ffn(c);
                active += m.top_k as u64 * ffn(c);
            }
            _ => dense += ffn(c),
        }
    }
    (dense, experts, active)
}
