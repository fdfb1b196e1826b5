//! RMSNorm forward and backward row by row; the weight gradient is summed from fixed row
//! blocks in a fixed order, so it is the same on every run.

use super::{CHUNK, F32s, for_rows_stat, simd, sum_map, tensor, zeros};
use burn::prelude::*;
use rayon::prelude::*;

/// `(y, r)`: `y = x · r · γ` with `r = 1 / √(mean(x²) + eps)` per row (`[n, 1]`).
/// All `f32` on `Flex` ([`on_flex_f32`](super::on_flex_f32)).
///
/// # Shapes
/// - `x`: `[n, d]`, `gamma`: `[d]` → `y`: `[n, d]`, `r`: `[n, 1]`
pub fn forward(x: &Tensor<2>, gamma: &Tensor<1>, eps: f64) -> (Tensor<2>, Tensor<2>) {
    let [n, d] = x.dims();
    let (xs, gs) = (F32s::expect(x), F32s::expect(gamma));
    let (xs, gamma) = (xs.slice(), gs.slice());
    let mut y = zeros(n * d);
    let mut r = vec![0.0f32; n];
    for_rows_stat(
        &mut y,
        d,
        &mut r,
        #[inline(always)]
        |row, y| {
            let x = &xs[row * d..][..d];
            let inv = 1.0 / (sum_map(x, |v| v * v) / d as f32 + eps as f32).sqrt();
            for ((y, &x), &w) in y.iter_mut().zip(x).zip(gamma) {
                *y = x * inv * w;
            }
            inv
        },
    );
    (tensor(y, [n, d]), tensor(r, [n, 1]))
}

/// `(dx, dγ)` for the output gradient `g`: with `x̂ = x · r`,
/// `dx = r · (g∘γ − x̂ · mean(g∘γ∘x̂))` (written over `g`) and `dγ = Σ_rows g ∘ x̂`.
/// All `f32` on `Flex`.
///
/// # Shapes
/// - `x`, `g`: `[n, d]`, `r`: `[n, 1]`, `gamma`: `[d]` → `dx`: `[n, d]`, `dγ`: `[d]`
pub fn backward(x: &Tensor<2>, r: &Tensor<2>, gamma: &Tensor<1>, g: Tensor<2>) -> (Tensor<2>, Tensor<1>) {
    let [_, d] = x.dims();
    let (xs, rs, gs) = (F32s::expect(x), F32s::expect(r), F32s::expect(gamma));
    let (x, r, gamma) = (xs.slice(), rs.slice(), gs.slice());
    let mut dx = F32s::expect_take(g).into_mut();
    let rows_per_block = (CHUNK / d).max(1);
    // Per block of rows: its share of dγ (from g before it is overwritten), then dx in place.
    let partial: Vec<Vec<f32>> = dx
        .slice_mut()
        .par_chunks_mut(rows_per_block * d)
        .zip(x.par_chunks(rows_per_block * d))
        .zip(r.par_chunks(rows_per_block))
        .map(|((g, x), r)| {
            simd(
                #[inline(always)]
                || {
                    let mut dgamma = vec![0.0f32; d];
                    for ((g, x), &r) in g.chunks_mut(d).zip(x.chunks(d)).zip(r) {
                        let mut proj = 0.0f32;
                        for (((dg, &g), &x), &w) in dgamma.iter_mut().zip(&*g).zip(x).zip(gamma) {
                            *dg += g * x * r;
                            proj += g * w * x * r;
                        }
                        let proj = proj / d as f32;
                        for ((g, &x), &w) in g.iter_mut().zip(x).zip(gamma) {
                            *g = r * (*g * w - x * r * proj);
                        }
                    }
                    dgamma
                },
            )
        })
        .collect();
    let dgamma = partial.iter().fold(vec![0.0f32; d], |mut acc, p| {
        acc.iter_mut().zip(p).for_each(|(a, &p)| *a += p);
        acc
    });
    (dx.into_tensor(), tensor(dgamma, [d]))
}
