//! Masked next-token cross-entropy (`ops/cross_entropy.rs`) row by row: one parallel pass over
//! the logits forward (log-sum-exp and the target's log-probability) and one backward
//! (`(softmax − onehot) · mask · g`).

use super::exp::exp;
use super::{F32s, for_rows, max, simd, sum_map, tensor};
use burn::prelude::*;
use rayon::prelude::*;

/// The target ids of `[n, 1]` as `usize`, checked against the vocabulary `v`.
fn target_ids(targets: &Tensor<2, Int>, v: usize) -> Vec<usize> {
    let ids = targets.clone().into_data();
    ids.iter::<i64>()
        .enumerate()
        .map(|(row, id)| {
            usize::try_from(id).ok().filter(|&id| id < v).unwrap_or_else(|| {
                panic!("masked_nll: target id {id} at row {row} is outside the vocabulary of {v}")
            })
        })
        .collect()
}

/// `(nll, lse)`, both `[n, 1]`: `lse = log Σ exp(logits)` per row and
/// `nll = (lse − logits[target]) · mask`. Logits and mask `f32` on `Flex`
/// ([`on_flex_f32`](super::on_flex_f32)).
///
/// # Shapes
/// - `logits`: `[n, v]`, `targets`, `mask`: `[n, 1]`
pub fn forward(logits: &Tensor<2>, targets: &Tensor<2, Int>, mask: &Tensor<2>) -> (Tensor<2>, Tensor<2>) {
    let [n, v] = logits.dims();
    let (x, mask) = (F32s::expect(logits), F32s::expect(mask));
    let (x, mask) = (x.slice(), mask.slice());
    let ids = target_ids(targets, v);
    let (nll, lse): (Vec<f32>, Vec<f32>) = (0..n)
        .into_par_iter()
        .map(|r| {
            let row = &x[r * v..][..v];
            let lse = simd(
                #[inline(always)]
                || {
                    let m = max(row);
                    m + sum_map(row, |x| exp(x - m)).ln()
                },
            );
            ((lse - row[ids[r]]) * mask[r], lse)
        })
        .unzip();
    (tensor(nll, [n, 1]), tensor(lse, [n, 1]))
}

/// `d loss / d logits = (exp(logits − lse) − onehot(target)) · mask · g` (`[n, v]`),
/// written over the logits' storage when nothing else holds it (the largest tensor of the
/// step at real vocabulary sizes).
/// Float tensors `f32` on `Flex`.
///
/// # Shapes
/// - `logits`: `[n, v]`, `targets`, `mask`, `lse`, `g`: `[n, 1]`
pub fn backward(
    logits: Tensor<2>,
    targets: &Tensor<2, Int>,
    mask: &Tensor<2>,
    lse: &Tensor<2>,
    g: &Tensor<2>,
) -> Tensor<2> {
    let [_, v] = logits.dims();
    let (mask, lse, g) = (F32s::expect(mask), F32s::expect(lse), F32s::expect(g));
    let (mask, lse, g) = (mask.slice(), lse.slice(), g.slice());
    let ids = target_ids(targets, v);
    let mut d = F32s::expect_take(logits).into_mut();
    for_rows(
        d.slice_mut(),
        v,
        #[inline(always)]
        |r, d| {
            let (w, l) = (mask[r] * g[r], lse[r]);
            for d in d.iter_mut() {
                *d = exp(*d - l) * w; // the logit, overwritten by its gradient
            }
            d[ids[r]] -= w;
        },
    );
    d.into_tensor()
}
