//! Grouped-query self-attention with rotary embeddings (HF `LlamaAttention`, no biases).

use super::rope::RopeTables;
use burn::nn::{Linear, LinearConfig};
use burn::prelude::*;
use mm1_kernels::{AttentionMask, gqa_attention, linear, linears};

#[derive(Module, Debug)]
pub struct LlmAttention {
    pub q_proj: Linear,
    pub k_proj: Linear,
    pub v_proj: Linear,
    pub o_proj: Linear,
    pub heads: usize,
    pub kv_heads: usize,
}

/// Keys and values of the tokens seen so far (one layer), after RoPE.
#[derive(Debug, Clone)]
pub struct LayerKv {
    /// `[b, t, kvh, dh]`
    pub k: Tensor<4>,
    /// `[b, t, kvh, dh]`
    pub v: Tensor<4>,
}

impl LlmAttention {
    pub fn new(width: usize, heads: usize, kv_heads: usize, device: &Device) -> Self {
        let dh = width / heads;
        let lin = |i, o| LinearConfig::new(i, o).with_bias(false).init(device);
        Self {
            q_proj: lin(width, heads * dh),
            k_proj: lin(width, kv_heads * dh),
            v_proj: lin(width, kv_heads * dh),
            o_proj: lin(heads * dh, width),
            heads,
            kv_heads,
        }
    }

    /// Attention over `x` and, if given, the cached keys/values of earlier tokens.
    /// Returns the output and the extended cache.
    ///
    /// # Shapes
    /// - `x`: `[b, t, d]`; `rope`: tables for these `t` tokens; `mask`: `[b, 1, t, t_past + t]`
    ///   (`true` = masked) → `[b, t, d]`
    pub fn forward(
        &self,
        x: Tensor<3>,
        rope: &RopeTables,
        mask: &AttentionMask,
        past: Option<LayerKv>,
    ) -> (Tensor<3>, LayerKv) {
        let [b, t, d] = x.dims();
        let (h, kvh) = (self.heads, self.kv_heads);
        let dh = d / h;
        let heads = |y: Tensor<3>, n: usize| y.reshape([b, t, n, dh]); // [b, t, n, dh], no copy
        let [q, k, v] = linears([&self.q_proj, &self.k_proj, &self.v_proj], x); // [b, t, h·dh | kvh·dh]
        let (q, k, v) = (rope.apply(heads(q, h)), rope.apply(heads(k, kvh)), heads(v, kvh));
        let (k, v) = match past {
            Some(p) => (Tensor::cat(vec![p.k, k], 1), Tensor::cat(vec![p.v, v], 1)), // [b, tk, kvh, dh]
            None => (k, v),
        };
        let cache = LayerKv { k: k.clone(), v: v.clone() };
        // each KV head serves h / kvh query heads (HF `repeat_kv`), without copying K/V
        let a = gqa_attention(q, k, v, Some(mask)); // [b, t, h, dh]
        (linear(&self.o_proj, a.reshape([b, t, d])), cache)
    }
}
