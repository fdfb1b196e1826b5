//! `Linear::forward` with the leading dimensions folded into the rows.
//!
//! Why: for a `[b, t, d_in]` input with `t` a multiple of its row tile, burn 0.22.1's `linear`
//! keeps the batched form (`MatmulTransformPolicy::BetterTiling`, a GPU heuristic), and on flex
//! that runs `b` separate single-threaded GEMMs that each pack the same weight; the input
//! gradient (`linear_x_backward`) follows the same path. Folded, forward and input gradient are
//! one `[b·t, d_in] @ [d_in, d_out]` GEMM each, split over the rayon pool inside `gemm`.

use burn::nn::Linear;
use burn::prelude::*;

/// `layer.forward(x)` as one 2-D matmul over all rows (same values).
///
/// # Shapes
/// - `x`: `[..., d_in]` → `[..., d_out]`
pub fn linear<const D: usize>(layer: &Linear, x: Tensor<D>) -> Tensor<D> {
    let mut dims = x.dims();
    if D <= 2 {
        return layer.forward(x);
    }
    let d_in = dims[D - 1];
    let rows = dims[..D - 1].iter().product::<usize>();
    let y = layer.forward(x.reshape([rows, d_in])); // [rows, d_out]
    dims[D - 1] = y.dims()[1];
    y.reshape(dims)
}
