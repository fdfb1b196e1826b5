//! LayerNorm (Ba et al. 2016; HF `CLIPVisionTransformer`'s norms) at the activations' dtype.
//!
//! Why: burn's `LayerNorm::forward` multiplies by its `f32` weight, so a `bf16` input would
//! meet an `f32` tensor. Mixed precision normalises in `f32` (mean and variance of `bf16`
//! values lose too many digits, as PyTorch's autocast keeps `layer_norm` in `f32`) and returns
//! the activations' dtype; on `f32` input this is exactly `norm.forward(x)`.

use burn::nn::LayerNorm;
use burn::prelude::*;

/// `norm.forward(x)` computed in `f32`, returned in `x`'s dtype.
///
/// # Shapes
/// - `x`: `[..., d]` → `[..., d]`
pub fn layer_norm<const D: usize>(norm: &LayerNorm, x: Tensor<D>) -> Tensor<D> {
    let dtype = x.dtype();
    norm.forward(super::upcast(x)).cast(dtype)
}
