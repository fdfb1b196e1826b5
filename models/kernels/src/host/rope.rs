//! Rotary embedding (rotate-half, HF Llama) and its input gradient, rows of `dh` in parallel.
//! With `x = [x₁, x₂]` (halves of each head's row) and tables `c`, `s`:
//! `y = [x₁c₁ − x₂s₁, x₂c₂ + x₁s₂]` and `dx = [g₁c₁ + g₂s₂, g₂c₂ − g₁s₁]`.

use super::{F32s, for_rows};
use burn::prelude::*;

/// One row, in place over `a`: `[a₁c₁ − a₂s₁, a₂c₂ + a₁s₂]` (the rotation) or, with
/// `transpose`, `[a₁c₁ + a₂s₂, a₂c₂ − a₁s₁]` (its transpose, for the gradient).
#[inline(always)]
fn rotate(a: &mut [f32], c: &[f32], s: &[f32], transpose: bool) {
    let half = a.len() / 2;
    let (a1, a2) = a.split_at_mut(half);
    let (c1, c2) = c.split_at(half);
    let (s1, s2) = s.split_at(half);
    if transpose {
        for j in 0..half {
            let (u, v) = (a1[j], a2[j]);
            a1[j] = u * c1[j] + v * s2[j];
            a2[j] = v * c2[j] - u * s1[j];
        }
    } else {
        for j in 0..half {
            let (u, v) = (a1[j], a2[j]);
            a1[j] = u * c1[j] - v * s1[j];
            a2[j] = v * c2[j] + u * s2[j];
        }
    }
}

/// The rotation (`transpose = false`) or its transpose applied to every head's row of `x`,
/// written over `x`'s storage when nothing else holds it. All `f32` on `Flex`
/// ([`on_flex_f32`](super::on_flex_f32)).
///
/// # Shapes
/// - `x`: `[b, t, h, dh]`, `cos`, `sin`: `[b, t, 1, dh]` → `[b, t, h, dh]`
pub fn apply(x: Tensor<4>, cos: &Tensor<4>, sin: &Tensor<4>, transpose: bool) -> Tensor<4> {
    let [_, _, h, dh] = x.dims();
    let (cos, sin) = (F32s::expect(cos), F32s::expect(sin));
    let (cos, sin) = (cos.slice(), sin.slice());
    let mut y = F32s::expect_take(x).into_mut();
    for_rows(
        y.slice_mut(),
        dh,
        #[inline(always)]
        |r, row| {
            let table = (r / h) * dh; // row (batch, position) of the tables
            rotate(row, &cos[table..][..dh], &sin[table..][..dh], transpose);
        },
    );
    y.into_tensor()
}
