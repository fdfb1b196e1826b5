//! Multi-head attention with separate q/k/v/out projections and biases, as HF
//! `CLIPAttention` (no mask: every patch sees every patch).

use crate::ops::{gqa_attention, linear};
use burn::nn::{Linear, LinearConfig};
use burn::prelude::*;

#[derive(Module, Debug)]
pub struct VitAttention {
    pub q_proj: Linear,
    pub k_proj: Linear,
    pub v_proj: Linear,
    pub out_proj: Linear,
    pub heads: usize,
}

impl VitAttention {
    pub fn new(width: usize, heads: usize, device: &Device) -> Self {
        let lin = || LinearConfig::new(width, width).init(device);
        Self { q_proj: lin(), k_proj: lin(), v_proj: lin(), out_proj: lin(), heads }
    }

    /// Self-attention.
    ///
    /// # Shapes
    /// - `x`: `[b, t, d]` → `[b, t, d]`
    pub fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        self.forward_cross(x.clone(), x)
    }

    /// Queries from `q_in`, keys and values from `kv_in` (attention pooling).
    ///
    /// # Shapes
    /// - `q_in`: `[b, m, d]`, `kv_in`: `[b, t, d]` → `[b, m, d]`
    pub fn forward_cross(&self, q_in: Tensor<3>, kv_in: Tensor<3>) -> Tensor<3> {
        let [b, m, d] = q_in.dims();
        let [_, t, _] = kv_in.dims();
        let h = self.heads;
        let split = |y: Tensor<3>, n: usize| y.reshape([b, n, h, d / h]).swap_dims(1, 2); // [b, h, n, dh]
        let q = split(linear(&self.q_proj, q_in), m);
        let k = split(linear(&self.k_proj, kv_in.clone()), t);
        let v = split(linear(&self.v_proj, kv_in), t);
        let a = gqa_attention(q, k, v, None); // [b, h, m, dh]
        linear(&self.out_proj, a.swap_dims(1, 2).reshape([b, m, d]))
    }
}
