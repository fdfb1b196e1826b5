//! Model FLOPs of the forward pass, counted as `2 · multiply-adds` of the matrix products
//! (norms, softmax, RoPE and other element-wise ops are left out, as in PaLM App. B and
//! torchtitan's `get_num_flop_per_token`). Attention scores count the full `t × t` product,
//! not the causal half, as those do. Training is `3 ×` forward (backward = 2 × forward),
//! except a frozen vision encoder (and a frozen connector behind it), which run forward only.

use mm1_models::{ConnectorConfig, LlmConfig, Mm1Config, VisionConfig};

use super::params;

/// Forward FLOPs per unit of work, from `[model]`.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct FlopsModel {
    /// Decoder layers (projections, FFN or routed experts, attention) for one sequence of
    /// `seq_len` positions.
    pub llm_per_seq: f64,
    /// Of `llm_per_seq`: the attention score and value products.
    pub attention_per_seq: f64,
    /// LM head for one sequence (every position).
    pub head_per_seq: f64,
    /// Vision encoder for one image.
    pub vit_per_image: f64,
    /// Connector for one image.
    pub connector_per_image: f64,
    /// Training multiplier of each part: `[vision, connector, llm]` (3, or 1 when frozen).
    pub train_factor: [f64; 3],
}

impl FlopsModel {
    pub fn new(m: &Mm1Config, seq_len: usize) -> Self {
        let (llm_per_seq, attention_per_seq) = llm(&m.llm, seq_len as f64);
        let vision_fwd_only = m.freeze.vision;
        let connector_fwd_only = vision_fwd_only && m.freeze.connector;
        Self {
            llm_per_seq,
            attention_per_seq,
            head_per_seq: 2.0 * seq_len as f64 * (m.llm.width * m.llm.vocab_size) as f64,
            vit_per_image: vit(&m.vision),
            connector_per_image: connector(&m.connector, &m.vision, m.llm.width as f64),
            train_factor: [
                if vision_fwd_only { 1.0 } else { 3.0 },
                if connector_fwd_only { 1.0 } else { 3.0 },
                3.0,
            ],
        }
    }

    /// Training FLOPs of `seqs` sequences holding `images` images:
    /// `[vision, connector, llm layers, LM head]`.
    pub fn train_parts(&self, seqs: f64, images: f64) -> [f64; 4] {
        let [fv, fc, fl] = self.train_factor;
        [
            fv * images * self.vit_per_image,
            fc * images * self.connector_per_image,
            fl * seqs * self.llm_per_seq,
            fl * seqs * self.head_per_seq,
        ]
    }

    /// Training FLOPs (forward + backward) of `seqs` sequences holding `images` images.
    pub fn train_flops(&self, seqs: f64, images: f64) -> f64 {
        self.train_parts(seqs, images).iter().sum()
    }
}

/// `(all decoder layers, of which attention products)` for one sequence of `t` positions.
fn llm(c: &LlmConfig, t: f64) -> (f64, f64) {
    let d = c.width as f64;
    let attn_products = 4.0 * t * t * (c.heads * c.head_dim()) as f64; // QKᵀ and PV
    let mut total = 0.0;
    for i in 0..c.layers {
        total += 2.0 * t * params::attention(c) as f64 + attn_products;
        total += match (&c.moe, c.is_moe_layer(i)) {
            // router + top_k experts per token
            (Some(m), true) => {
                2.0 * t * (d * m.num_experts as f64 + (m.top_k as u64 * params::ffn(c)) as f64)
            }
            _ => 2.0 * t * params::ffn(c) as f64,
        };
    }
    (total, c.layers as f64 * attn_products)
}

/// Patch conv and the blocks that run, over `1 + p` tokens.
fn vit(c: &VisionConfig) -> f64 {
    let (w, mlp) = (c.width as f64, c.mlp_dim as f64);
    let p = c.num_patches() as f64;
    let t = 1.0 + p;
    let depth = c.feature_depth().unwrap_or(c.layers) as f64;
    let patch = 2.0 * p * 3.0 * (c.patch_size * c.patch_size) as f64 * w;
    let block = 2.0 * t * (4.0 * w * w + 2.0 * w * mlp) + 4.0 * t * t * w;
    patch + depth * block
}

/// RegNet bottleneck `ci → co` at `n` positions (convs and SE; norms left out).
fn bottleneck(ci: f64, co: f64, n: f64) -> f64 {
    let se = (ci * 0.25).round().max(1.0);
    let down = if ci != co { ci * co } else { 0.0 };
    2.0 * n * (ci * co + 9.0 * co + co * co + down) + 2.0 * 2.0 * co * se
}

fn connector(c: &ConnectorConfig, v: &VisionConfig, d: f64) -> f64 {
    let (dv, p) = (v.width as f64, v.num_patches() as f64);
    let m = c.num_tokens() as f64;
    match c {
        ConnectorConfig::AvgPool(_) => 2.0 * m * dv * d,
        ConnectorConfig::AttnPool(_) => {
            2.0 * (2.0 * m + 2.0 * p) * dv * dv + 4.0 * m * p * dv + 2.0 * m * dv * d
        }
        ConnectorConfig::CAbstractor(a) => {
            let (hid, depth) = (a.hidden as f64, a.depth as f64);
            let stage1 = bottleneck(dv, hid, p) + (depth - 1.0) * bottleneck(hid, hid, p);
            let stage2 = depth * bottleneck(hid, hid, m);
            let readout = 2.0 * m * (hid * d + (a.mlp_depth as f64 - 1.0).max(0.0) * d * d);
            stage1 + stage2 + readout
        }
    }
}
