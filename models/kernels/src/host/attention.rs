//! The row-wise passes of the fused attention (`ops/attention.rs`) over the stacked scores
//! `[b, kvh, rep · t, tk]`: the masked softmax with its log-sum-exp, the probabilities again
//! from that log-sum-exp, and the softmax gradient. Each overwrites the scores in place. The
//! scores come in unscaled (`q kᵀ`) and the kernels apply `1/√dh`, which saves a pass over `q`.

use super::exp::exp;
use super::{F32s, dot, for_rows, for_rows_stat, max, simd, sum_map, tensor};
use burn::prelude::*;
use rayon::prelude::*;

/// Row `r`'s additive mask (`[tk]`) in `bias` (`[b, 1, 1, t, tk]`, contiguous) for scores
/// with `rows_per_batch = kvh · rep · t` rows per batch element.
fn bias_row(bias: &[f32], r: usize, rows_per_batch: usize, t: usize, tk: usize) -> &[f32] {
    let (batch, query) = (r / rows_per_batch, r % t);
    &bias[(batch * t + query) * tk..][..tk]
}

/// `(p, lse)`: `p = softmax(s · scale + bias)` per row and `lse = log Σ exp(s · scale + bias)`
/// (`[.., 1]`), as the decomposed forward computes them (a fully masked row gives `p = 0`).
/// All tensors `f32` on `Flex` ([`on_flex_f32`](super::on_flex_f32)).
///
/// # Shapes
/// - `s`: `[b, kvh, rep * t, tk]`, `bias`: `[b, 1, 1, t, tk]` → `p` like `s`, `lse`: `[b, kvh, rep * t, 1]`
pub fn softmax(s: Tensor<4>, bias: Option<&Tensor<5>>, t: usize, scale: f32) -> (Tensor<4>, Tensor<4>) {
    let bias = bias.map(F32s::expect);
    let [b, kvh, rows, tk] = s.dims();
    let mut p = F32s::expect_take(s).into_mut();
    let mut lse = vec![0.0f32; b * kvh * rows];
    for_rows_stat(
        p.slice_mut(),
        tk,
        &mut lse,
        #[inline(always)]
        |r, x| {
            match &bias {
                Some(bias) => {
                    for (x, &m) in x.iter_mut().zip(bias_row(bias.slice(), r, kvh * rows, t, tk)) {
                        *x = *x * scale + m;
                    }
                }
                None => x.iter_mut().for_each(|x| *x *= scale),
            }
            let m = max(x).max(f32::MIN);
            for x in x.iter_mut() {
                *x = exp(*x - m);
            }
            let l = sum_map(x, |e| e).max(f32::MIN_POSITIVE);
            let inv = 1.0 / l;
            for x in x.iter_mut() {
                *x *= inv;
            }
            m + l.ln()
        },
    );
    (p.into_tensor(), tensor(lse, [b, kvh, rows, 1]))
}

/// `p = exp(s · scale + bias − lse)`, the forward's probabilities recomputed from its log-sum-exp.
/// All tensors `f32` on `Flex`.
///
/// # Shapes
/// - `s`: `[b, kvh, rep * t, tk]`, `bias`: `[b, 1, 1, t, tk]`, `lse`: `[b, kvh, rep * t, 1]` → like `s`
pub fn probs(s: Tensor<4>, bias: Option<&Tensor<5>>, lse: &Tensor<4>, t: usize, scale: f32) -> Tensor<4> {
    let (bias, lse) = (bias.map(F32s::expect), F32s::expect(lse));
    let [_, kvh, rows, tk] = s.dims();
    let mut p = F32s::expect_take(s).into_mut();
    let lse = lse.slice();
    for_rows(
        p.slice_mut(),
        tk,
        #[inline(always)]
        |r, x| {
            let l = lse[r];
            match &bias {
                Some(bias) => {
                    for (x, &m) in x.iter_mut().zip(bias_row(bias.slice(), r, kvh * rows, t, tk)) {
                        *x = exp(*x * scale + m - l);
                    }
                }
                None => {
                    for x in x.iter_mut() {
                        *x = exp(*x * scale - l);
                    }
                }
            }
        },
    );
    p.into_tensor()
}

/// `ds = p ∘ (dp − delta) · scale`, written over `dp`. All tensors `f32` on `Flex`.
///
/// # Shapes
/// - `dp`, `p`: `[b, kvh, rep * t, tk]`, `delta`: `[b, kvh, rep * t, 1]` → like `dp`
pub fn softmax_grad(dp: Tensor<4>, p: &Tensor<4>, delta: &Tensor<4>, scale: f32) -> Tensor<4> {
    let (p, delta) = (F32s::expect(p), F32s::expect(delta));
    let tk = dp.dims()[3];
    let mut ds = F32s::expect_take(dp).into_mut();
    let (p, delta) = (p.slice(), delta.slice());
    for_rows(
        ds.slice_mut(),
        tk,
        #[inline(always)]
        |r, x| {
            let d = delta[r];
            for (x, &p) in x.iter_mut().zip(&p[r * tk..][..tk]) {
                *x = p * (*x - d) * scale;
            }
        },
    );
    ds.into_tensor()
}

/// `delta = rowsum(g ∘ o)` for every query head and position, written in the scores' row
/// order (head `hq` is row block `hq` of its batch element: KV group `hq / rep`, stacked head
/// `hq % rep`). All tensors `f32` on `Flex`.
///
/// # Shapes
/// - `g`, `o`: `[b, t, h, dh]` → `[b, kvh, rep * t, 1]`
pub fn row_dots(g: &Tensor<4>, o: &Tensor<4>, kvh: usize) -> Tensor<4> {
    let [b, t, h, dh] = g.dims();
    assert_eq!(o.dims(), g.dims(), "row_dots: o {:?} vs g {:?}", o.dims(), g.dims());
    let (g, o) = (F32s::expect(g), F32s::expect(o));
    let (g, o) = (g.slice(), o.slice());
    let mut delta = vec![0.0f32; b * h * t];
    if !delta.is_empty() {
        delta.par_chunks_mut(h * t).enumerate().for_each(|(n, delta)| {
            simd(
                #[inline(always)]
                || {
                    for i in 0..t {
                        for hq in 0..h {
                            let row = ((n * t + i) * h + hq) * dh;
                            delta[hq * t + i] = dot(&g[row..][..dh], &o[row..][..dh]);
                        }
                    }
                },
            )
        });
    }
    tensor(delta, [b, kvh, h / kvh * t, 1])
}
