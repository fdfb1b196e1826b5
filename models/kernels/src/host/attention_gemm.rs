//! The attention's matrix products per head, on q, k, v and their gradients as the
//! projections lay them out (`[b, t, h, dh]`: a head of one batch element is a strided
//! `[t, dh]` matrix), skipping the key blocks that a causal mask hides.
//!
//! Why the layout: moving the heads in front of the tokens (`[b, h, t, dh]`) costs a
//! contiguous copy of q, k, v and the output forward and of their gradients backward, eight
//! per layer, mostly on one thread (burn-flex's `copy_2d_tiled`; its share of the step before
//! and after: docs/performance.md, "Heads where the projections put them"). The products
//! read and write the heads where they are, as FlashAttention's
//! `[b, t, h, dh]` interface does. The scores stay stacked per KV group
//! (`[b, kvh, rep · t, tk]`: the `rep` query heads that share a KV head, one after another).
//!
//! Why the blocks: with a mask that hides every key after the query's position (the
//! decoder's segment-causal mask), the scores above the diagonal are `−∞`, their
//! probabilities `0`, and their gradients `0`. Taking the query rows in blocks of
//! [`QUERY_BLOCK`] and each block only against the keys up to its last row, as PyTorch's
//! causal SDPA does, skips about 40 % of the attention's multiply-adds at `t = 256` (the
//! entries left out stay `0` in the zeroed output buffers, which the masked softmax turns
//! back into exact zeros). Every product writes into one fresh buffer ([`super::gemm`]),
//! split over the rayon pool by heads or by blocks of rows.

use super::gemm::{MatRef, gemm_into_strided};
use rayon::prelude::*;
use std::ops::Range;

/// Query (or key) rows per block when skipping masked keys, and per parallel task.
const QUERY_BLOCK: usize = 64;

/// The layout of one call: `batch` elements of `t` queries in `kvh · rep` heads against `tk`
/// keys in `kvh` heads, all of width `dh`.
#[derive(Debug, Clone, Copy)]
pub struct Groups {
    pub batch: usize,
    pub kvh: usize,
    pub rep: usize,
    pub t: usize,
    pub tk: usize,
    pub dh: usize,
    /// Whether the mask hides every key after the query's position (key `j` for query `i` when
    /// `j > i + tk − t`), so that those blocks may be skipped.
    pub causal: bool,
}

impl Groups {
    fn heads(&self) -> usize {
        self.kvh * self.rep
    }

    /// Query head `hq` of batch element `n` in `[batch, t, h, dh]` values (q, o, or their
    /// gradients): a `[t, dh]` view with rows `h · dh` apart.
    fn query_head<'a>(&self, x: &'a [f32], n: usize, hq: usize) -> MatRef<'a> {
        let width = self.heads() * self.dh;
        MatRef::block(x, n, self.t, width).sub(0..self.t, hq * self.dh..(hq + 1) * self.dh)
    }

    /// KV head `g` of batch element `n` in `[batch, tk, kvh, dh]` values (k, v).
    fn kv_head<'a>(&self, x: &'a [f32], n: usize, g: usize) -> MatRef<'a> {
        let width = self.kvh * self.dh;
        MatRef::block(x, n, self.tk, width).sub(0..self.tk, g * self.dh..(g + 1) * self.dh)
    }

    /// Query head `hq`'s `[t, tk]` scores of batch element `n` in `[batch, kvh, rep · t, tk]`
    /// scores (head `hq` is block `n · h + hq`).
    fn scores<'a>(&self, p: &'a [f32], n: usize, hq: usize) -> MatRef<'a> {
        MatRef::block(p, n * self.heads() + hq, self.t, self.tk)
    }

    /// The keys `0..kv` that query rows `rows` may see: all of them, or with `causal` the keys
    /// up to the last row's position.
    fn keys_seen(&self, rows: &Range<usize>) -> usize {
        match self.causal {
            true => (rows.end + self.tk - self.t).min(self.tk),
            false => self.tk,
        }
    }

    /// The query rows `i0..t` that may see key rows `keys` (with `causal`, those at or after
    /// the first key's position).
    fn queries_seeing(&self, keys: &Range<usize>) -> Range<usize> {
        match self.causal {
            true => (keys.start + self.t).saturating_sub(self.tk).min(self.t)..self.t,
            false => 0..self.t,
        }
    }

    /// `0..n` in blocks of [`QUERY_BLOCK`]: one block when nothing is skipped and `whole`.
    fn blocks(&self, n: usize, whole: bool) -> Vec<Range<usize>> {
        let step = if whole && !self.causal { n.max(1) } else { QUERY_BLOCK };
        (0..n).step_by(step).map(|i0| i0..(i0 + step).min(n)).collect()
    }
}

/// `a bᵀ` per query head: scores `q kᵀ`, or `dp = g vᵀ`. Skipped entries are `0`.
///
/// # Shapes
/// - `a`: `[batch, t, h, dh]`, `b`: `[batch, tk, kvh, dh]` → `[batch, kvh, rep · t, tk]`
pub fn a_bt(a: &[f32], b: &[f32], g: Groups) -> Vec<f32> {
    let (h, blocks) = (g.heads(), g.blocks(g.t, true));
    zeroed(g.batch * h * g.t * g.tk, g.t * g.tk, |z, out| {
        let (n, hq) = (z / h, z % h); // batch element, query head
        let (a, b) = (g.query_head(a, n, hq), g.kv_head(b, n, hq / g.rep));
        for rows in &blocks {
            let kv = g.keys_seen(rows);
            let out = &mut out[rows.start * g.tk..];
            gemm_into_strided(a.sub(rows.clone(), 0..g.dh), b.sub(0..kv, 0..g.dh).t(), out, g.tk, false);
        }
    })
}

/// `p b` per query head: the output `p v`, or `dq = ds k`; blocks of query rows in parallel.
///
/// # Shapes
/// - `p`: `[batch, kvh, rep · t, tk]`, `b`: `[batch, tk, kvh, dh]` → `[batch, t, h, dh]`
pub fn p_b(p: &[f32], b: &[f32], g: Groups) -> Vec<f32> {
    let h = g.heads();
    let width = h * g.dh; // one output row: all heads of one query
    zeroed_blocks(g.batch, g.t, width, &g.blocks(g.t, false), |n, rows, out| {
        let kv = g.keys_seen(rows);
        for hq in 0..h {
            let (p, b) = (g.scores(p, n, hq), g.kv_head(b, n, hq / g.rep));
            let out = &mut out[hq * g.dh..];
            gemm_into_strided(p.sub(rows.clone(), 0..kv), b.sub(0..kv, 0..g.dh), out, width, false);
        }
    })
}

/// `pᵀ b` per KV head, summed over its query heads: `dv = pᵀ g`, or `dk = dsᵀ q`; blocks of
/// key rows in parallel.
///
/// # Shapes
/// - `p`: `[batch, kvh, rep · t, tk]`, `b`: `[batch, t, h, dh]` → `[batch, tk, kvh, dh]`
pub fn pt_b(p: &[f32], b: &[f32], g: Groups) -> Vec<f32> {
    let h = g.heads();
    let width = g.kvh * g.dh; // one output row: all KV heads of one key
    zeroed_blocks(g.batch, g.tk, width, &g.blocks(g.tk, false), |n, keys, out| {
        let rows = g.queries_seeing(keys);
        for hq in 0..h {
            let (p, b) = (g.scores(p, n, hq), g.query_head(b, n, hq));
            let out = &mut out[(hq / g.rep) * g.dh..];
            let pt = p.sub(rows.clone(), keys.clone()).t();
            gemm_into_strided(pt, b.sub(rows.clone(), 0..g.dh), out, width, true);
        }
    })
}

/// A zeroed buffer of `len` values ([`super::zeros`]) with `f(z, chunk z)` run for every
/// chunk of `chunk` values, the chunks split over the rayon pool.
fn zeroed(len: usize, chunk: usize, f: impl Fn(usize, &mut [f32]) + Sync) -> Vec<f32> {
    let mut out = super::zeros(len);
    if chunk > 0 {
        out.par_chunks_mut(chunk).enumerate().for_each(|(z, block)| f(z, block));
    }
    out
}

/// A zeroed `[batch, rows, width]` buffer with `f(n, block, out)` run in parallel for every
/// batch element `n` and row block of `blocks` (which cover `0..rows` in order), `out` holding
/// exactly that block's rows of element `n`.
fn zeroed_blocks(
    batch: usize,
    rows: usize,
    width: usize,
    blocks: &[Range<usize>],
    f: impl Fn(usize, &Range<usize>, &mut [f32]) + Sync,
) -> Vec<f32> {
    let mut out = super::zeros(batch * rows * width);
    let mut pieces = Vec::with_capacity(batch * blocks.len());
    let mut rest: &mut [f32] = &mut out;
    for n in 0..batch {
        for block in blocks {
            let (piece, tail) = std::mem::take(&mut rest).split_at_mut(block.len() * width);
            pieces.push((n, block, piece));
            rest = tail;
        }
    }
    pieces.into_par_iter().for_each(|(n, block, piece)| f(n, block, piece));
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

    fn close(x: &[f32], y: &[f32]) {
        assert_eq!(x.len(), y.len());
        let worst = x.iter().zip(y).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
        assert!(worst < 1e-4, "max |diff| {worst}");
    }

    /// The three products as loops over `[b, t, h, dh]` heads and `[b, kvh, rep · t, tk]` scores.
    fn naive(q: &[f32], k: &[f32], p: &[f32], g: Groups) -> [Vec<f32>; 3] {
        let h = g.heads();
        let qi = |n: usize, i: usize, hq: usize, c: usize| q[((n * g.t + i) * h + hq) * g.dh + c];
        let kj = |n: usize, j: usize, kv: usize, c: usize| k[((n * g.tk + j) * g.kvh + kv) * g.dh + c];
        let pij = |n: usize, hq: usize, i: usize, j: usize| p[((n * h + hq) * g.t + i) * g.tk + j];
        let mut s = vec![0.0; g.batch * h * g.t * g.tk];
        let mut o = vec![0.0; g.batch * g.t * h * g.dh];
        let mut dk = vec![0.0; g.batch * g.tk * g.kvh * g.dh];
        for n in 0..g.batch {
            for hq in 0..h {
                for i in 0..g.t {
                    for j in 0..g.tk {
                        for c in 0..g.dh {
                            s[((n * h + hq) * g.t + i) * g.tk + j] +=
                                qi(n, i, hq, c) * kj(n, j, hq / g.rep, c);
                            o[((n * g.t + i) * h + hq) * g.dh + c] +=
                                pij(n, hq, i, j) * kj(n, j, hq / g.rep, c);
                            dk[((n * g.tk + j) * g.kvh + hq / g.rep) * g.dh + c] +=
                                pij(n, hq, i, j) * qi(n, i, hq, c);
                        }
                    }
                }
            }
        }
        [s, o, dk]
    }

    #[test]
    fn products_on_strided_heads_match_loops() {
        // two query heads per KV head, 2 batch elements, rows in several blocks
        let g = Groups { batch: 2, kvh: 2, rep: 2, t: 70, tk: 70, dh: 8, causal: false };
        let (q, k) = (values(2 * 70 * 4 * 8, 7), values(2 * 70 * 2 * 8, 11));
        let p = values(2 * 4 * 70 * 70, 5);
        let [s, o, dk] = naive(&q, &k, &p, g);
        close(&a_bt(&q, &k, g), &s);
        close(&p_b(&p, &k, g), &o);
        close(&pt_b(&p, &q, g), &dk);
    }

    #[test]
    fn skipping_blocks_changes_nothing_under_a_causal_mask() {
        // t not a multiple of the block, more keys than queries (a KV cache), two heads per group
        for (t, tk) in [(150, 150), (70, 100)] {
            let full = Groups { batch: 3, kvh: 2, rep: 2, t, tk, dh: 16, causal: false };
            let skip = Groups { causal: true, ..full };
            let (q, k) = (values(3 * t * 4 * 16, 7), values(3 * tk * 2 * 16, 11));
            let p = causal_zeros(values(3 * 4 * t * tk, 5), full);
            close(&causal_zeros(a_bt(&q, &k, skip), full), &causal_zeros(a_bt(&q, &k, full), full));
            close(&p_b(&p, &k, skip), &p_b(&p, &k, full));
            close(&pt_b(&p, &q, skip), &pt_b(&p, &q, full));
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
