//! Bicubic resampling of the patch position-embedding grid, bit-for-bit the maths of
//! PyTorch `F.interpolate(mode="bicubic", align_corners=False)` as HF CLIP's
//! `interpolate_pos_encoding` calls it (A = -0.75, border indices clamped).
//!
//! Bicubic interpolation is separable, so it is two small matrix products with weight
//! matrices built here on the host: differentiable and backend-agnostic.

use burn::prelude::*;

const A: f64 = -0.75;

fn cubic_near(x: f64) -> f64 {
    ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0
}

fn cubic_far(x: f64) -> f64 {
    ((A * x - 5.0 * A) * x + 8.0 * A) * x - 4.0 * A
}

/// Row-major `[out, inp]` weights: `y[i] = Σ_j w[i, j] x[j]`.
pub fn bicubic_weights(inp: usize, out: usize) -> Vec<f32> {
    let mut w = vec![0.0f64; out * inp];
    // PyTorch: scale = in / out computed in f32 when no scale factor is given.
    let scale = (inp as f32 / out as f32) as f64;
    for i in 0..out {
        let real = scale * (i as f64 + 0.5) - 0.5;
        let base = real.floor();
        let t = real - base;
        let coeffs = [cubic_far(t + 1.0), cubic_near(t), cubic_near(1.0 - t), cubic_far(2.0 - t)];
        for (k, c) in coeffs.iter().enumerate() {
            let j = (base as i64 - 1 + k as i64).clamp(0, inp as i64 - 1) as usize;
            w[i * inp + j] += c;
        }
    }
    w.into_iter().map(|v| v as f32).collect()
}

/// Resample a `[gh*gw, d]` grid of embeddings to `[nh*nw, d]`.
///
/// # Shapes
/// - `grid`: `[gh * gw, d]` (row-major over the grid)
/// - output: `[nh * nw, d]`
pub fn resize_grid(grid: Tensor<2>, from: [usize; 2], to: [usize; 2]) -> Tensor<2> {
    let [gh, gw] = from;
    let [nh, nw] = to;
    let [_, d] = grid.dims();
    let device = grid.device();
    let wh = Tensor::<2>::from_data(TensorData::new(bicubic_weights(gh, nh), [nh, gh]), &device);
    let ww = Tensor::<2>::from_data(TensorData::new(bicubic_weights(gw, nw), [nw, gw]), &device);
    let rows = wh.matmul(grid.reshape([gh, gw * d])); // [nh, gw*d]
    let rows = rows.reshape([nh, gw, d]); // [nh, gw, d]
    let ww = ww.unsqueeze_dim::<3>(0).repeat_dim(0, nh); // [nh, nw, gw]
    ww.matmul(rows).reshape([nh * nw, d]) // [nh, nw, d] -> [nh*nw, d]
}
