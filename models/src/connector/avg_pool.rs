//! Average-pooling connector (MM1 §3.2 "Average Pooling"): adaptive average pooling of the
//! patch grid to √M×√M, then a linear projection to the LLM width.

use super::{map_to_tokens, tokens_to_map};
use crate::config::AvgPoolConfig;
use burn::nn::pool::{AdaptiveAvgPool2d, AdaptiveAvgPool2dConfig};
use burn::nn::{Linear, LinearConfig};
use burn::prelude::*;
use mm1_kernels::linear_at_input_dtype;

#[derive(Module, Debug)]
pub struct AvgPool {
    pub pool: AdaptiveAvgPool2d,
    pub proj: Linear,
}

impl AvgPool {
    pub fn new(cfg: &AvgPoolConfig, vision_width: usize, llm_width: usize, device: &Device) -> Self {
        let side = cfg.num_tokens.isqrt();
        Self {
            pool: AdaptiveAvgPool2dConfig::new([side, side]).init(),
            proj: LinearConfig::new(vision_width, llm_width).init(device),
        }
    }

    /// # Shapes
    /// - `x`: `[b, gh*gw, dv]` → `[b, m, d]`
    pub fn forward(&self, x: Tensor<3>, grid: [usize; 2]) -> Tensor<3> {
        let pooled = self.pool.forward(tokens_to_map(x, grid)); // [b, dv, √m, √m]
        linear_at_input_dtype(&self.proj, map_to_tokens(pooled)) // [b, m, d]
    }
}
