//! Pre-LN transformer block of the CLIP vision tower (HF `CLIPEncoderLayer`):
//! `x = x + attn(ln1(x)); x = x + mlp(ln2(x))`.

use super::attention::VitAttention;
use crate::config::{Activation, VisionConfig};
use burn::nn::{LayerNorm, LayerNormConfig, Linear, LinearConfig};
use burn::prelude::*;
use burn::tensor::activation::sigmoid;
use mm1_kernels::{gelu, layer_norm, linear};

/// `fc1 → activation → fc2`.
#[derive(Module, Debug)]
pub struct VitMlp {
    pub fc1: Linear,
    pub fc2: Linear,
    /// `true`: quick_gelu (OpenAI CLIP), `false`: exact GELU.
    pub quick_gelu: bool,
}

impl VitMlp {
    /// # Shapes
    /// - `x`: `[b, t, d]` → `[b, t, d]`
    pub fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        let h = linear(&self.fc1, x); // [b, t, mlp]
        let h = if self.quick_gelu { h.clone() * sigmoid(h * 1.702) } else { gelu(h) };
        linear(&self.fc2, h)
    }
}

#[derive(Module, Debug)]
pub struct VitBlock {
    pub layer_norm1: LayerNorm,
    pub self_attn: VitAttention,
    pub layer_norm2: LayerNorm,
    pub mlp: VitMlp,
}

impl VitBlock {
    pub fn new(cfg: &VisionConfig, device: &Device) -> Self {
        let ln = || LayerNormConfig::new(cfg.width).with_epsilon(cfg.layer_norm_eps).init(device);
        Self {
            layer_norm1: ln(),
            self_attn: VitAttention::new(cfg.width, cfg.heads, device),
            layer_norm2: ln(),
            mlp: VitMlp {
                fc1: LinearConfig::new(cfg.width, cfg.mlp_dim).init(device),
                fc2: LinearConfig::new(cfg.mlp_dim, cfg.width).init(device),
                quick_gelu: cfg.activation == Activation::QuickGelu,
            },
        }
    }

    /// # Shapes
    /// - `x`: `[b, t, d]` → `[b, t, d]`
    pub fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        let x = x.clone() + self.self_attn.forward(layer_norm(&self.layer_norm1, x));
        x.clone() + self.mlp.forward(layer_norm(&self.layer_norm2, x))
    }
}
