//! SwiGLU feed-forward (Shazeer 2020; HF `LlamaMLP`): `down(silu(gate(x)) * up(x))`.

use burn::nn::{Linear, LinearConfig};
use burn::prelude::*;

use mm1_kernels::{linear, linears, swiglu};

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
        let [gate, up] = linears([&self.gate_proj, &self.up_proj], x); // each [..., ffn]
        let h = swiglu(gate, up); // [..., ffn]
        linear(&self.down_proj, h)
    }
}
