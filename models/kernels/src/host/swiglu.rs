//! SwiGLU `silu(a) ∘ b` and its two input gradients, one parallel pass each.

use super::exp::sigmoid;
use super::{CHUNK, F32s, simd, tensor, zeros};
use burn::prelude::*;
use rayon::prelude::*;

/// `silu(a) ∘ b`; both `f32` on `Flex` ([`on_flex_f32`](super::on_flex_f32)).
///
/// # Shapes
/// - `a`, `b`: `[..., f]` (equal) → `[..., f]`
pub fn forward<const D: usize>(a: &Tensor<D>, b: &Tensor<D>) -> Tensor<D> {
    let shape = a.dims();
    let (a, b) = (F32s::expect(a), F32s::expect(b));
    let (a, b) = (a.slice(), b.slice());
    let mut out = zeros(a.len());
    out.par_chunks_mut(CHUNK).zip(a.par_chunks(CHUNK)).zip(b.par_chunks(CHUNK)).for_each(|((o, a), b)| {
        simd(
            #[inline(always)]
            || {
                for ((o, &a), &b) in o.iter_mut().zip(a).zip(b) {
                    *o = a * sigmoid(a) * b;
                }
            },
        )
    });
    tensor(out, shape)
}

/// `(da, db)` for the output gradient `g`: `da = g ∘ b ∘ σ(a) ∘ (1 + a (1 − σ(a)))`,
/// `db = g ∘ silu(a)`, written over `g`'s and `b`'s storage when nothing else holds them.
/// All `f32` on `Flex`.
pub fn backward<const D: usize>(a: &Tensor<D>, b: Tensor<D>, g: Tensor<D>) -> (Tensor<D>, Tensor<D>) {
    let fa = F32s::expect(a);
    let (mut da, mut db) = (F32s::expect_take(g).into_mut(), F32s::expect_take(b).into_mut());
    da.slice_mut()
        .par_chunks_mut(CHUNK)
        .zip(db.slice_mut().par_chunks_mut(CHUNK))
        .zip(fa.slice().par_chunks(CHUNK))
        .for_each(|((ga, gb), a)| {
            simd(
                #[inline(always)]
                || {
                    for ((ga, gb), &a) in ga.iter_mut().zip(gb.iter_mut()).zip(a) {
                        let (s, g, b) = (sigmoid(a), *ga, *gb);
                        *gb = g * a * s;
                        *ga = g * b * s * (1.0 + a * (1.0 - s));
                    }
                },
            )
        });
    (da.into_tensor(), db.into_tensor())
}
