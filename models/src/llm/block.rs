//! One decoder layer (HF `LlamaDecoderLayer`):
//! `x = x + attn(norm1(x)); x = x + ffn(norm2(x))`, the FFN dense or MoE.

use super::attention::{LayerKv, LlmAttention};
use super::mlp::Mlp;
use super::moe::{MoeFfn, MoeStats};
use super::rope::RopeTables;
use crate::config::LlmConfig;
use burn::nn::{RmsNorm, RmsNormConfig};
use burn::prelude::*;
use mm1_kernels::{AttentionMask, rms_norm};

/// The feed-forward sub-layer: dense SwiGLU or mixture of experts.
// One value per model, built once: variant size does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Module, Debug)]
pub enum Ffn {
    Dense(Mlp),
    Moe(MoeFfn),
}

#[derive(Module, Debug)]
pub struct DecoderLayer {
    pub input_layernorm: RmsNorm,
    pub self_attn: LlmAttention,
    pub post_attention_layernorm: RmsNorm,
    pub mlp: Ffn,
    pub index: usize,
}

/// What a layer returns besides the hidden states.
#[derive(Debug)]
pub struct LayerOutput {
    /// `[b, t, d]`
    pub x: Tensor<3>,
    pub kv: LayerKv,
    /// MoE aux loss (weighted) and stats; `None` for a dense layer.
    pub moe: Option<(Tensor<1>, MoeStats)>,
}

impl DecoderLayer {
    pub fn new(cfg: &LlmConfig, index: usize, device: &Device) -> Self {
        let norm = || RmsNormConfig::new(cfg.width).with_epsilon(cfg.rms_norm_eps).init(device);
        let mlp = match (&cfg.moe, cfg.is_moe_layer(index)) {
            (Some(moe), true) => Ffn::Moe(MoeFfn::new(moe, cfg.width, cfg.ffn_dim, device)),
            _ => Ffn::Dense(Mlp::new(cfg.width, cfg.ffn_dim, device)),
        };
        Self {
            input_layernorm: norm(),
            self_attn: LlmAttention::new(cfg.width, cfg.heads, cfg.kv_heads, device),
            post_attention_layernorm: norm(),
            mlp,
            index,
        }
    }

    /// # Shapes
    /// - `x`: `[b, t, d]`, `mask`: `[b, 1, t, t_past + t]` → `[b, t, d]`
    pub fn forward(
        &self,
        x: Tensor<3>,
        rope: &RopeTables,
        mask: &AttentionMask,
        past: Option<LayerKv>,
    ) -> LayerOutput {
        let (a, kv) = self.self_attn.forward(rms_norm(&self.input_layernorm, x.clone()), rope, mask, past);
        let x = x + a;
        let h = rms_norm(&self.post_attention_layernorm, x.clone());
        match &self.mlp {
            Ffn::Dense(mlp) => LayerOutput { x: x + mlp.forward(h), kv, moe: None },
            Ffn::Moe(moe) => {
                let out = moe.forward(h, self.index);
                LayerOutput { x: x + out.y, kv, moe: Some((out.aux_loss, out.stats)) }
            }
        }
    }
}
