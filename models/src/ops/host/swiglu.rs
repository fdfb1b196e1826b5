//! SwiGLU `silu(a) ∘ b` and its two input gradients, one parallel pass each.

use super::exp::sigmoid;
use super::{CHUNK, F32s, simd, tensor};
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
    let mut out = vec![0.0; a.len()];
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
/// `db = g ∘ silu(a)`. `da` is written over `g`'s storage when nothing else holds it.
/// All `f32` on `Flex`.
pub fn backward<const D: usize>(a: &Tensor<D>, b: &Tensor<D>, g: Tensor<D>) -> (Tensor<D>, Tensor<D>) {
    let shape = a.dims();
    let (fa, fb, fg) = (F32s::expect(a), F32s::expect(b), F32s::expect_take(g));
    let mut da = fg.into_mut();
    let mut db = vec![0.0; shape.iter().product()];
    let (a, b) = (fa.slice(), fb.slice());
    da.slice_mut()
        .par_chunks_mut(CHUNK)
        .zip(db.par_chunks_mut(CHUNK))
        .zip(a.par_chunks(CHUNK))
        .zip(b.par_chunks(CHUNK))
        .for_each(|(((ga, db), a), b)| {
            simd(
                #[inline(always)]
                || {
                    for (((ga, db), &a), &b) in ga.iter_mut().zip(db.iter_mut()).zip(a).zip(b) {
                        let s = sigmoid(a);
                        let g = *ga;
                        *db = g * a * s;
                        *ga = g * b * s * (1.0 + a * (1.0 - s));
                    }
                },
            )
        });
    (da.into_tensor(), tensor(db, shape))
}
