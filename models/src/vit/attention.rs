//! Multi-head attention with separate q/k/v/out projections and biases, as HF
//! `CLIPAttention` (no mask: every patch sees every patch).

use burn::nn::{Linear, LinearConfig};
use burn::prelude::*;
use mm1_kernels::{gqa_attention, linear, linears};

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
        let [q, k, v] = linears([&self.q_proj, &self.k_proj, &self.v_proj], x); // each [b, t, d]
        self.attend(q, k, v)
    }

    /// Queries from `q_in`, keys and values from `kv_in` (attention pooling).
    ///
    /// # Shapes
    /// - `q_in`: `[b, m, d]`, `kv_in`: `[b, t, d]` → `[b, m, d]`
    pub fn forward_cross(&self, q_in: Tensor<3>, kv_in: Tensor<3>) -> Tensor<3> {
        let q = linear(&self.q_proj, q_in); // [b, m, d]
        let [k, v] = linears([&self.k_proj, &self.v_proj], kv_in); // each [b, t, d]
        self.attend(q, k, v)
    }

    /// The heads' attention over projected queries, keys and values, and the output projection.
    ///
    /// # Shapes
    /// - `q`: `[b, m, d]`, `k`, `v`: `[b, t, d]` → `[b, m, d]`
    fn attend(&self, q: Tensor<3>, k: Tensor<3>, v: Tensor<3>) -> Tensor<3> {
        let ([b, m, d], [_, t, _]) = (q.dims(), k.dims());
        let h = self.heads;
        let heads = |y: Tensor<3>, n: usize| y.reshape([b, n, h, d / h]); // [b, n, h, dh], no copy
        let a = gqa_attention(heads(q, m), heads(k, t), heads(v, t), None); // [b, m, h, dh]
        linear(&self.out_proj, a.reshape([b, m, d]))
    }
}
