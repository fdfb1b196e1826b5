//! Exact (erf) GELU and its gradient, one parallel pass each.

use super::exp::exp;
use super::{CHUNK, F32s, simd, tensor, zeros};
use burn::prelude::*;
use rayon::prelude::*;

const FRAC_1_SQRT_2: f32 = std::f32::consts::FRAC_1_SQRT_2;
/// `1 / √(2π)`.
const FRAC_1_SQRT_2PI: f32 = 0.398_942_3;

/// `erfc(z)` for `z ≥ 0` without the `exp(−z²)` factor: Numerical Recipes' `erfcc`
/// (Chebyshev fit, fractional error < 1.2e-7 for every `z`): `erfc(z) = t · exp(−z² + p(t))`,
/// `t = 1 / (1 + z/2)`. Returns `t · exp(p(t))`.
#[inline(always)]
fn erfc_scaled(z: f32) -> f32 {
    let t = 1.0 / (1.0 + 0.5 * z);
    let p = 0.170_872_77_f32;
    let p = p * t - 0.822_152_23;
    let p = p * t + 1.488_515_9;
    let p = p * t - 1.135_204;
    let p = p * t + 0.278_868_07;
    let p = p * t - 0.186_288_06;
    let p = p * t + 0.096_784_18;
    let p = p * t + 0.374_091_96;
    let p = p * t + 1.000_023_7;
    let p = p * t - 1.265_512_2;
    t * exp(p)
}

/// `(Φ(x), φ(x))`: the standard normal CDF and density. `Φ(x) = erfc(−x/√2) / 2`, taken from
/// the tail that does not cancel, so `Φ` keeps its relative accuracy for very negative `x`.
#[inline(always)]
fn cdf_pdf(x: f32) -> (f32, f32) {
    let e = exp(-0.5 * x * x); // exp(−z²), z = |x|/√2
    let tail = 0.5 * e * erfc_scaled(x.abs() * FRAC_1_SQRT_2); // Φ(−|x|)
    let cdf = if x < 0.0 { tail } else { 1.0 - tail };
    (cdf, e * FRAC_1_SQRT_2PI)
}

/// `gelu(x) = x Φ(x)`; `x` `f32` on `Flex` ([`on_flex_f32`](super::on_flex_f32)).
///
/// # Shapes
/// - `x`: any → the same
pub fn forward<const D: usize>(x: &Tensor<D>) -> Tensor<D> {
    let shape = x.dims();
    let x = F32s::expect(x);
    let mut out = zeros(x.slice().len());
    out.par_chunks_mut(CHUNK).zip(x.slice().par_chunks(CHUNK)).for_each(|(o, x)| {
        simd(
            #[inline(always)]
            || {
                for (o, &x) in o.iter_mut().zip(x) {
                    *o = x * cdf_pdf(x).0;
                }
            },
        )
    });
    tensor(out, shape)
}

/// `dx = g (Φ(x) + x φ(x))`, written over `g`'s storage when nothing else holds it.
/// Both `f32` on `Flex`.
pub fn backward<const D: usize>(x: &Tensor<D>, g: Tensor<D>) -> Tensor<D> {
    let x = F32s::expect(x);
    let mut dx = F32s::expect_take(g).into_mut();
    dx.slice_mut().par_chunks_mut(CHUNK).zip(x.slice().par_chunks(CHUNK)).for_each(|(g, x)| {
        simd(
            #[inline(always)]
            || {
                for (g, &x) in g.iter_mut().zip(x) {
                    let (cdf, pdf) = cdf_pdf(x);
                    *g *= cdf + x * pdf;
                }
            },
        )
    });
    dx.into_tensor()
}
