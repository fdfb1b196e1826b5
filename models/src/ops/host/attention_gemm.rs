//! The attention's matrix products per KV group (`ops/attention.rs` stacks a group's query
//! heads along the rows: `rep` blocks of `t` query rows), skipping the key blocks that a
//! causal mask hides.
//!
//! Why: with a mask that hides every key after the query's position (the decoder's
//! segment-causal mask), the scores above the diagonal are `−∞`, their probabilities `0`,
//! and their gradients `0`. Taking the query rows in blocks of [`QUERY_BLOCK`] and each block
//! only against the keys up to its last row, as PyTorch's causal SDPA does, skips about
//! 40 % of the attention's multiply-adds at `t = 256` (the entries left out stay `0` in the
//! zeroed output buffers, which the masked softmax turns back into exact zeros).
//! Every product writes into one fresh buffer ([`super::gemm`]); the `b · kvh` groups are
//! split over the rayon pool.

use super::gemm::{MatRef, gemm_into_strided};
use rayon::prelude::*;

/// Query rows per block when skipping masked keys.
const QUERY_BLOCK: usize = 64;

/// The layout of one call: `groups` (`b · kvh`) KV groups, each with `rep · t` stacked query
/// rows against `tk` keys of width `dh`.
#[derive(Debug, Clone, Copy)]
pub struct Groups {
    pub groups: usize,
    pub rep: usize,
    pub t: usize,
    pub tk: usize,
    pub dh: usize,
    /// Whether the mask hides every key after the query's position (key `j` for query `i` when
    /// `j > i + tk − t`), so that those blocks may be skipped.
    pub causal: bool,
}

impl Groups {
    fn rows(&self) -> usize {
        self.rep * self.t
    }

    /// `(query rows, keys 0..kv)` of each block of one group: the whole `[rep · t, tk]` at once,
    /// or with `causal` each block of [`QUERY_BLOCK`] rows of one query head against the keys
    /// its last row may see.
    fn blocks(&self) -> Vec<(std::ops::Range<usize>, usize)> {
        if !self.causal {
            return vec![(0..self.rows(), self.tk)];
        }
        let mut blocks = Vec::new();
        for r in 0..self.rep {
            for i0 in (0..self.t).step_by(QUERY_BLOCK) {
                let i1 = (i0 + QUERY_BLOCK).min(self.t);
                let kv = (i1 + self.tk - self.t).min(self.tk);
                blocks.push((r * self.t + i0..r * self.t + i1, kv));
            }
        }
        blocks
    }
}

/// `a bᵀ` per group: scores `q kᵀ`, or `dp = g vᵀ`. Skipped entries are `0`.
///
/// # Shapes
/// - `a`: `[groups, rep · t, dh]`, `b`: `[groups, tk, dh]` → `[groups, rep · t, tk]`
pub fn a_bt(a: &[f32], b: &[f32], g: Groups) -> Vec<f32> {
    let (rows, blocks) = (g.rows(), g.blocks());
    per_group(g.groups, rows * g.tk, |z, out| {
        let (a, b) = (MatRef::block(a, z, rows, g.dh), MatRef::block(b, z, g.tk, g.dh));
        for (r, kv) in &blocks {
            let out = &mut out[r.start * g.tk..];
            gemm_into_strided(a.sub(r.clone(), 0..g.dh), b.sub(0..*kv, 0..g.dh).t(), out, g.tk, false);
        }
    })
}

/// `p b` per group: the output `p v`, or `dq = ds k`.
///
/// # Shapes
/// - `p`: `[groups, rep · t, tk]`, `b`: `[groups, tk, dh]` → `[groups, rep · t, dh]`
pub fn p_b(p: &[f32], b: &[f32], g: Groups) -> Vec<f32> {
    let (rows, blocks) = (g.rows(), g.blocks());
    per_group(g.groups, rows * g.dh, |z, out| {
        let (p, b) = (MatRef::block(p, z, rows, g.tk), MatRef::block(b, z, g.tk, g.dh));
        for (r, kv) in &blocks {
            let out = &mut out[r.start * g.dh..];
            gemm_into_strided(p.sub(r.clone(), 0..*kv), b.sub(0..*kv, 0..g.dh), out, g.dh, false);
        }
    })
}

/// `pᵀ b` per group, summed over the group's query rows: `dv = pᵀ g`, or `dk = dsᵀ q`.
///
/// # Shapes
/// - `p`: `[groups, rep · t, tk]`, `b`: `[groups, rep · t, dh]` → `[groups, tk, dh]`
pub fn pt_b(p: &[f32], b: &[f32], g: Groups) -> Vec<f32> {
    let (rows, blocks) = (g.rows(), g.blocks());
    per_group(g.groups, g.tk * g.dh, |z, out| {
        let (p, b) = (MatRef::block(p, z, rows, g.tk), MatRef::block(b, z, rows, g.dh));
        for (r, kv) in &blocks {
            gemm_into_strided(p.sub(r.clone(), 0..*kv).t(), b.sub(r.clone(), 0..g.dh), out, g.dh, true);
        }
    })
}

/// A zeroed `[groups, len]` buffer with `f(z, block z)` run for every group, the groups split
/// over the rayon pool (the zeros too: `vec![0.0; n]` would write them on one thread when
/// the allocator reuses memory).
fn per_group(groups: usize, len: usize, f: impl Fn(usize, &mut [f32]) + Sync) -> Vec<f32> {
    let mut out = Vec::with_capacity(groups * len);
    out.par_extend(rayon::iter::repeat_n(0.0, groups * len));
    if len > 0 {
        out.par_chunks_mut(len).enumerate().for_each(|(z, block)| f(z, block));
    }
    out
}

/// Whether the additive mask `bias` (`[b, t, tk]`, `0` or `−∞`) hides every key after each
/// query's position (`j > i + tk − t`), as a causal mask does.
pub fn hides_future(bias: &[f32], t: usize, tk: usize) -> bool {
    assert!(
        tk >= t && bias.len().is_multiple_of(t * tk),
        "hides_future: [{}] is not [b, {t}, {tk}]",
        bias.len()
    );
    tk == 0
        || bias.par_chunks(tk).enumerate().all(|(row, keys)| {
            let i = row % t;
            keys[i + 1 + tk - t..].iter().all(|&m| m == f32::NEG_INFINITY)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(len: usize, k: usize) -> Vec<f32> {
        (0..len).map(|i| ((i * k) % 89) as f32 / 25.0 - 1.7).collect()
    }

    /// `p` with the entries a causal mask hides set to 0 (what the masked softmax gives).
    fn causal_zeros(mut p: Vec<f32>, g: Groups) -> Vec<f32> {
        for (row, keys) in p.chunks_mut(g.tk).enumerate() {
            let i = row % g.t;
            keys[i + 1 + g.tk - g.t..].fill(0.0);
        }
        p
    }

    #[test]
    fn skipping_blocks_changes_nothing_under_a_causal_mask() {
        // t not a multiple of the block, more keys than queries (a KV cache), two heads per group
        for (t, tk) in [(150, 150), (70, 100)] {
            let full = Groups { groups: 3, rep: 2, t, tk, dh: 16, causal: false };
            let skip = Groups { causal: true, ..full };
            let rows = full.rep * t;
            let (q, k) = (values(3 * rows * 16, 7), values(3 * tk * 16, 11));
            let p = causal_zeros(values(3 * rows * tk, 5), full);
            let close = |x: Vec<f32>, y: Vec<f32>| {
                let worst = x.iter().zip(&y).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
                assert!(worst < 1e-4, "max |diff| {worst}");
            };
            close(causal_zeros(a_bt(&q, &k, skip), full), causal_zeros(a_bt(&q, &k, full), full));
            close(p_b(&p, &k, skip), p_b(&p, &k, full));
            close(pt_b(&p, &q, skip), pt_b(&p, &q, full));
        }
    }

    #[test]
    fn hides_future_tells_causal_masks() {
        let (t, tk) = (3, 5);
        let mut bias = vec![0.0; 2 * t * tk];
        for (row, keys) in bias.chunks_mut(tk).enumerate() {
            keys[row % t + 1 + tk - t..].fill(f32::NEG_INFINITY);
        }
        assert!(hides_future(&bias, t, tk));
        bias[tk + 4] = 0.0; // batch 0, query 1 may now see key 4
        assert!(!hides_future(&bias, t, tk));
    }
}
