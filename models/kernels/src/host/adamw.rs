//! One AdamW update of one parameter, in one parallel pass over `p, g, m, v` (burn-optim's
//! `AdamW` does ~12 separate element-wise tensor ops, each allocating). The arithmetic is
//! burn-optim 0.22.1's, operation for operation in `f32`, so both give the same values.

use super::{CHUNK, F32s, simd};
use burn::prelude::*;
use rayon::prelude::*;

/// The scalars of one update.
#[derive(Debug, Clone, Copy)]
pub struct AdamWStep {
    pub lr: f64,
    pub beta1: f32,
    pub beta2: f32,
    pub eps: f32,
    pub weight_decay: f32,
    /// The step count after this update (1 for the first).
    pub time: usize,
}

/// `(p, m, v)` after one update with gradient `g`; `moments = None` on the first step (they
/// start from zero). `p`, `m`, `v` are overwritten in place when nothing else holds them.
/// All `f32` on `Flex` ([`on_flex_f32`](super::on_flex_f32)), of one shape.
pub fn update<const D: usize>(
    p: Tensor<D>,
    g: &Tensor<D>,
    moments: Option<(Tensor<D>, Tensor<D>)>,
    s: AdamWStep,
) -> (Tensor<D>, Tensor<D>, Tensor<D>) {
    let gs = F32s::expect(g);
    let (m, v) = match moments {
        Some((m, v)) => (F32s::expect_take(m).into_mut(), F32s::expect_take(v).into_mut()),
        // burn starts from (1 − β1) g and (1 − β2) g², i.e. this update applied to zeros
        None => {
            let zeros = || F32s::expect_take(g.zeros_like()).into_mut();
            (zeros(), zeros())
        }
    };
    let (mut p, mut m, mut v) = (F32s::expect_take(p).into_mut(), m, v);
    let (f1, f2) = (1.0 - s.beta1, 1.0 - s.beta2);
    let time = s.time as i32;
    let (c1, c2) = (1f32 - s.beta1.powi(time), 1f32 - s.beta2.powi(time));
    let keep = (1.0 - s.lr * s.weight_decay as f64) as f32;
    let lr = s.lr as f32;
    p.slice_mut()
        .par_chunks_mut(CHUNK)
        .zip(m.slice_mut().par_chunks_mut(CHUNK))
        .zip(v.slice_mut().par_chunks_mut(CHUNK))
        .zip(gs.slice().par_chunks(CHUNK))
        .for_each(|(((p, m), v), g)| {
            simd(
                #[inline(always)]
                || {
                    for (((p, m), v), &g) in p.iter_mut().zip(m.iter_mut()).zip(v.iter_mut()).zip(g) {
                        *m = *m * s.beta1 + g * f1;
                        *v = *v * s.beta2 + g * g * f2;
                        let delta = (*m / c1) / ((*v / c2).sqrt() + s.eps);
                        *p = *p * keep - delta * lr;
                    }
                },
            )
        });
    (p.into_tensor(), m.into_tensor(), v.into_tensor())
}
