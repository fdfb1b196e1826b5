//! Attention-pooling connector (MM1 §3.2 "Attention Pooling", as in Flamingo's perceiver
//! resampler reduced to one cross-attention): M learned queries attend to the patch
//! features; a linear projection maps them to the LLM width.

use crate::config::AttnPoolConfig;
use crate::vit::VitAttention;
use burn::module::{Initializer, Param};
use burn::nn::{LayerNorm, LayerNormConfig, Linear, LinearConfig};
use burn::prelude::*;
use mm1_kernels::{layer_norm, linear_at_input_dtype};

#[derive(Module, Debug)]
pub struct AttnPool {
    /// `[m, dv]` learned queries.
    pub queries: Param<Tensor<2>>,
    /// Normalises the patch features before they serve as keys/values.
    pub norm: LayerNorm,
    pub attn: VitAttention,
    pub proj: Linear,
}

impl AttnPool {
    pub fn new(cfg: &AttnPoolConfig, vision_width: usize, llm_width: usize, device: &Device) -> Self {
        let normal = Initializer::Normal { mean: 0.0, std: 0.02 };
        Self {
            queries: normal.init([cfg.num_tokens, vision_width], device),
            norm: LayerNormConfig::new(vision_width).init(device),
            attn: VitAttention::new(vision_width, cfg.heads, device),
            proj: LinearConfig::new(vision_width, llm_width).init(device),
        }
    }

    /// # Shapes
    /// - `x`: `[b, p, dv]` (any grid) → `[b, m, d]`
    pub fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        let [b, _, _] = x.dims();
        let [m, dv] = self.queries.dims();
        let q = self.queries.val().cast(x.dtype()).reshape([1, m, dv]).repeat_dim(0, b); // [b, m, dv]
        let pooled = self.attn.forward_cross(q, layer_norm(&self.norm, x)); // [b, m, dv]
        linear_at_input_dtype(&self.proj, pooled) // [b, m, d]
    }
}
