//! `Conv2d::forward` at the input's dtype (the C-Abstractor's convolutions under bf16).
//!
//! Why: burn's `Conv2d::forward` convolves with its `f32` weight, so a `bf16` input would meet
//! an `f32` tensor. This is the same computation (stride, dilation, groups, explicit or no
//! padding) with the weight and bias cast to the input's dtype at use; the cast's backward
//! returns their gradients in `f32`. On `f32` input it is `conv.forward(x)`.

use burn::nn::PaddingConfig2d;
use burn::nn::conv::Conv2d;
use burn::prelude::*;
use burn::tensor::DType;
use burn::tensor::ops::ConvOptions;

/// `conv.forward(x)` with the parameters at `x`'s dtype (`f32`: burn's own forward).
///
/// # Shapes
/// - `x`: `[b, c_in, h, w]` → `[b, c_out, h', w']`
pub fn conv2d(conv: &Conv2d, x: Tensor<4>) -> Tensor<4> {
    let dtype = x.dtype();
    if dtype == DType::F32 {
        return conv.forward(x);
    }
    // burn-nn's `calculate_padding_2d_pairs` is crate-private: the explicit forms here
    let ((top, bottom), (left, right)) = match conv.padding {
        PaddingConfig2d::Valid => ((0, 0), (0, 0)),
        PaddingConfig2d::Explicit(top, left, bottom, right) => ((top, bottom), (left, right)),
        PaddingConfig2d::Same => {
            panic!("ops::conv2d: padding Same at {dtype:?} (the connectors use explicit padding)")
        }
    };
    let options = ConvOptions::new_with_padding(
        conv.stride,
        [(top, bottom), (left, right)],
        conv.dilation,
        conv.groups,
    );
    let bias = conv.bias.as_ref().map(|b| b.val().cast(dtype));
    burn::tensor::module::conv2d(x, conv.weight.val().cast(dtype), bias, options)
}
