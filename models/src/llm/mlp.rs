//! SwiGLU feed-forward (Shazeer 2020; HF `LlamaMLP`): `down(silu(gate(x)) * up(x))`.

use burn::nn::{Linear, LinearConfig};
use burn::prelude::*;

use crate::ops::{linear, swiglu};

#[derive(Module, Debug)]
pub struct Mlp {
    pub gate_proj: Linear,
    pub up_proj: Linear,
    pub down_proj: Linear,
}

impl Mlp {
    pub fn new(width: usize, ffn_dim: usize, device: &Device) -> Self {
        let lin = |i, o| LinearConfig::new(i, o).with_bias(false).init(device);
        Self { gate_proj: lin(width, ffn_dim), up_proj: lin(width, ffn_dim), down_proj: lin(ffn_dim, width) }
    }

    /// # Shapes
    /// - `x`: `[..., d]` → `[..., d]`
    pub fn forward<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        let h = swiglu(linear(&self.gate_proj, x.clone()), linear(&self.up_proj, x)); // [..., ffn]
        linear(&self.down_proj, h)
    }
}
