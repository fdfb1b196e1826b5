//! Grouped-query scaled-dot-product attention with its own backward pass.
//!
//! Why: under autodiff burn 0.22.1 runs `attention` as the decomposed fallback (matmul,
//! scale, mask fill, max, sub, exp, sum, div, matmul), records every step and keeps the
//! full `[b, h, t, tk]` score matrix and its intermediates until the backward pass; GQA
//! also needs `repeat_kv` copies of K and V with their own backward. Here the forward
//! runs outside the graph and the backward recomputes the probabilities from the saved
//! row log-sum-exp (FlashAttention's recipe, Dao et al. 2022, §3.1), so only `q, k, v, o`
//! and `[b, h, t]` statistics are kept. Each query head reads the KV head it shares with
//! the other heads of its group, so K and V are never repeated and their gradients come out
//! already summed over the group. Heads come in as the projections lay them out
//! (`[b, t, h, dh]`, FlashAttention's interface): on flex the products read and write them
//! in place (`host/attention_gemm.rs`), with no copy to `[b, h, t, dh]` and back.
//!
//! Maths (per KV group, `s` = scale, `S = s Q Kᵀ + bias`, `P = softmax(S)`, `O = P V`):
//! `dV = Pᵀ dO`, `dP = dO Vᵀ`, `dS = P ∘ (dP − rowsum(dO ∘ O))`, `dQ = s dS K`, `dK = s dSᵀ Q`.

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::{Autodiff, Backend, DispatchKindConversion, DispatchTensor};
use burn::prelude::*;

use super::host;
use super::host::attention_gemm::{self, Groups};

/// A boolean attention mask prepared once for all the layers that use it: the additive bias
/// the fused attention adds to the scores, and whether the mask hides every future key (then
/// the products skip those blocks).
///
/// Why: building the bias (a zero-filled `[b, t, tk]` tensor and a masked fill, both serial
/// burn ops) and scanning it for causality took three passes per layer.
#[derive(Debug, Clone)]
pub struct AttentionMask {
    /// `[b, 1, t, tk]`, `true` = masked (for burn's attention on other backends).
    mask: Tensor<4, Bool>,
    /// `[b, 1, 1, t, tk]`: `0` where allowed, `−∞` where masked; never tracked by autodiff.
    bias: Tensor<5>,
    /// Whether the mask hides every future key (checked on flex; `false` elsewhere).
    causal: bool,
}

impl AttentionMask {
    /// # Shapes
    /// - `mask`: `[b, 1, t, tk]` (`true` = masked)
    pub fn new(mask: Tensor<4, Bool>) -> Self {
        let [b, _, t, tk] = mask.dims();
        let bias =
            Tensor::<4>::zeros([b, 1, t, tk], &mask.device()).mask_fill(mask.clone(), f32::NEG_INFINITY);
        let bias = untracked(bias).reshape([b, 1, 1, t, tk]); // broadcast over [kvh, rep]
        let causal = tk >= t
            && host::on_flex_f32(&bias)
            && attention_gemm::hides_future(host::F32s::expect(&bias).slice(), t, tk);
        Self { mask, bias, causal }
    }

    /// `[b, 1, t, tk]`
    pub fn dims(&self) -> [usize; 4] {
        self.mask.dims()
    }

    /// Whether the fused products skip the key blocks after each query block (the mask hides
    /// every future key, checked on flex).
    pub fn skips_future(&self) -> bool {
        self.causal
    }
}

/// `x` without autodiff tracking (its inner tensor).
fn untracked<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    if x.is_autodiff() { x.inner() } else { x }
}

/// `softmax(q kᵀ / √dh, masked) v`, query head `i` using KV head `i / (h / kvh)` (HF `repeat_kv`).
/// Differentiable on every backend (a graph node of its own under autodiff).
///
/// # Shapes
/// - `q`: `[b, t, h, dh]`, `k`, `v`: `[b, tk, kvh, dh]`, `mask`: `[b, 1, t, tk]` → `[b, t, h, dh]`
pub fn gqa_attention(q: Tensor<4>, k: Tensor<4>, v: Tensor<4>, mask: Option<&AttentionMask>) -> Tensor<4> {
    let [b, t, h, dh] = q.dims();
    let [bk, tk, kvh, dhk] = k.dims();
    assert!(
        bk == b && dhk == dh && h % kvh == 0 && v.dims() == k.dims(),
        "gqa_attention: q {:?}, k {:?}, v {:?} (heads must be a multiple of kv heads)",
        q.dims(),
        k.dims(),
        v.dims()
    );
    if let Some(m) = mask {
        assert_eq!(m.dims(), [b, 1, t, tk], "gqa_attention: mask shape");
    }
    if !(q.is_autodiff() || k.is_autodiff() || v.is_autodiff()) {
        return forward(&Saved::inputs(q, k, v, mask)).0;
    }
    let args = (q, k, v, mask.cloned());
    if let Some(out) = on_autodiff_backends!(|B, C| tracked::<B, C>(&args)) {
        return out;
    }
    // Any other autodiff backend: burn's own (decomposed) attention on repeated K/V.
    let (q, k, v, mask) = args;
    let rep = h / kvh;
    let repeat = |x: Tensor<4>| {
        let x = x.swap_dims(1, 2); // [b, kvh, tk, dh]
        x.unsqueeze_dim::<5>(2).repeat_dim(2, rep).reshape([b, h, tk, dh])
    };
    burn::tensor::module::attention(
        q.swap_dims(1, 2), // [b, h, t, dh]
        repeat(k),
        repeat(v),
        mask.map(|m| m.mask.expand([b, h, t, tk])),
        None,
        Default::default(),
    )
    .swap_dims(1, 2) // [b, t, h, dh]
}

/// Whether [`gqa_attention`] on `x`'s backend runs the fused op (always without autodiff;
/// under autodiff on `Flex`, and on `Cube` when built with `cuda` or `wgpu`) rather than
/// burn's decomposed attention.
pub fn fused_attention_available(x: &Tensor<4>) -> bool {
    fn on<B: Backend, C: CheckpointStrategy>(x: &Tensor<4>) -> bool
    where
        DispatchTensor: DispatchKindConversion<Autodiff<B, C>>,
    {
        x.clone().try_into_primitive::<Autodiff<B, C>>().is_ok()
    }
    !x.is_autodiff() || on_autodiff_backends!(|B, C| on::<B, C>(x).then_some(())).is_some()
}

/// Inputs on the inner (non-autodiff) backend, plus the forward's outputs once computed.
#[derive(Debug, Clone)]
struct Saved {
    /// `[b, t, h, dh]`
    q: Tensor<4>,
    /// `[b, tk, kvh, dh]`
    k: Tensor<4>,
    v: Tensor<4>,
    mask: Option<AttentionMask>,
}

impl Saved {
    fn inputs(q: Tensor<4>, k: Tensor<4>, v: Tensor<4>, mask: Option<&AttentionMask>) -> Self {
        Self { q, k, v, mask: mask.cloned() }
    }

    /// The mask's additive bias, `[b, 1, 1, t, tk]`.
    fn bias(&self) -> Option<&Tensor<5>> {
        self.mask.as_ref().map(|m| &m.bias)
    }

    /// The layout of the products on flex.
    fn groups(&self) -> Groups {
        let ([b, t, h, dh], [_, tk, kvh, _]) = (self.q.dims(), self.k.dims());
        let causal = self.mask.as_ref().is_some_and(AttentionMask::skips_future);
        Groups { batch: b, kvh, rep: h / kvh, t, tk, dh, causal }
    }

    /// The query heads of `x` stacked per KV group, for burn's matmul.
    ///
    /// # Shapes
    /// - `x`: `[b, t, h, dh]` → `[b, kvh, rep * t, dh]`
    fn stacked(&self, x: Tensor<4>) -> Tensor<4> {
        let ([b, t, h, dh], kvh) = (x.dims(), self.k.dims()[2]);
        x.swap_dims(1, 2).reshape([b, kvh, h / kvh * t, dh]) // [b, h, t, dh] → [b, kvh, rep*t, dh]
    }

    /// `a bᵀ` per query head (scores `q kᵀ`, `dp = g vᵀ`): on flex the host products, which skip
    /// the blocks a causal mask hides (those entries are `0`), elsewhere burn's matmul.
    ///
    /// # Shapes
    /// - `a`: `[b, t, h, dh]`, `b`: `[b, tk, kvh, dh]` → `[b, kvh, rep * t, tk]`
    fn a_bt(&self, a: Tensor<4>, b: Tensor<4>) -> Tensor<4> {
        let ([nb, t, h, _], [_, tk, kvh, _]) = (a.dims(), b.dims());
        self.on_host(&a, &b, attention_gemm::a_bt, [nb, kvh, h / kvh * t, tk])
            .unwrap_or_else(|| self.stacked(a).matmul(b.swap_dims(1, 2).transpose()))
    }

    /// `p b` per query head (the output `p v`, `dq = ds k`), as [`Saved::a_bt`].
    ///
    /// # Shapes
    /// - `p`: `[b, kvh, rep * t, tk]`, `b`: `[b, tk, kvh, dh]` → `[b, t, h, dh]`
    fn p_b(&self, p: Tensor<4>, b: Tensor<4>) -> Tensor<4> {
        let [nb, t, h, dh] = self.q.dims();
        self.on_host(&p, &b, attention_gemm::p_b, [nb, t, h, dh]).unwrap_or_else(|| {
            let o = p.matmul(b.swap_dims(1, 2)); // [b, kvh, rep*t, dh]
            o.reshape([nb, h, t, dh]).swap_dims(1, 2)
        })
    }

    /// `pᵀ b` per KV head, summed over its query heads (`dv = pᵀ g`, `dk = dsᵀ q`), as
    /// [`Saved::a_bt`].
    ///
    /// # Shapes
    /// - `p`: `[b, kvh, rep * t, tk]`, `b`: `[b, t, h, dh]` → `[b, tk, kvh, dh]`
    fn pt_b(&self, p: Tensor<4>, b: Tensor<4>) -> Tensor<4> {
        let [nb, tk, kvh, dh] = self.k.dims();
        self.on_host(&p, &b, attention_gemm::pt_b, [nb, tk, kvh, dh])
            .unwrap_or_else(|| p.transpose().matmul(self.stacked(b)).swap_dims(1, 2)) // [b, kvh, tk, dh] → [b, tk, kvh, dh]
    }

    /// `product(a, b)` on flex storage as a tensor of `shape`; `None` unless both are `f32` on
    /// `Flex`.
    fn on_host(
        &self,
        a: &Tensor<4>,
        b: &Tensor<4>,
        product: fn(&[f32], &[f32], Groups) -> Vec<f32>,
        shape: [usize; 4],
    ) -> Option<Tensor<4>> {
        let (a, b) = (host::F32s::of(a)?, host::F32s::of(b)?);
        Some(host::tensor(product(a.slice(), b.slice(), self.groups()), shape))
    }

    /// `1 / √dh`.
    fn scale(&self) -> f64 {
        1.0 / (self.q.dims()[3] as f64).sqrt()
    }

    /// `q kᵀ · scale` (without the mask; the flex kernels apply `scale` themselves, so there
    /// it is `1`) with the query heads of a group stacked along rows.
    ///
    /// # Shapes
    /// - → `[b, kvh, rep * t, tk]`
    fn scores(&self, scale: f64) -> Tensor<4> {
        let q = if scale == 1.0 { self.q.clone() } else { self.q.clone().mul_scalar(scale) };
        self.a_bt(q, self.k.clone())
    }

    /// `rowsum(g ∘ o)` per query head and position, in the scores' row order.
    ///
    /// # Shapes
    /// - `g`, `o`: `[b, t, h, dh]` → `[b, kvh, rep * t, 1]`
    fn row_dots(&self, g: &Tensor<4>, o: &Tensor<4>) -> Tensor<4> {
        let ([b, t, h, _], kvh) = (g.dims(), self.k.dims()[2]);
        if host::on_flex_f32(g) && host::on_flex_f32(o) {
            return host::attention::row_dots(g, o, kvh);
        }
        let d = (super::upcast(g.clone()) * super::upcast(o.clone())).sum_dim(3).reshape([b, t, h]); // [b, t, h], f32
        d.swap_dims(1, 2).reshape([b, kvh, h / kvh * t, 1])
    }

    /// `s + bias` (burn's ops).
    ///
    /// # Shapes
    /// - `s`: `[b, kvh, rep * t, tk]` → the same
    fn masked(&self, s: Tensor<4>) -> Tensor<4> {
        let [b, kvh, rows, tk] = s.dims();
        let t = self.q.dims()[1];
        match self.bias() {
            Some(bias) => (s.reshape([b, kvh, rows / t, t, tk]) + bias.clone()).reshape([b, kvh, rows, tk]),
            None => s,
        }
    }

    /// `(P, lse)`: `P = softmax(S + bias)` per row of the scaled scores `S` (the parallel kernel on
    /// flex, burn's ops elsewhere). A fully masked row gives zeros (as burn's NaN-safe fallback
    /// does), not NaN.
    ///
    /// # Shapes
    /// - → `P`: `[b, kvh, rep * t, tk]`, `lse`: `[b, kvh, rep * t, 1]`
    fn softmax(&self) -> (Tensor<4>, Tensor<4>) {
        let t = self.q.dims()[1];
        if host::on_flex_f32(&self.q) {
            return host::attention::softmax(self.scores(1.0), self.bias(), t, self.scale() as f32);
        }
        let s = self.masked(self.scaled_scores());
        let m = s.clone().max_dim(3).clamp_min(f32::MIN); // [b, kvh, rep*t, 1]
        let e = (s - m.clone()).exp();
        let l = e.clone().sum_dim(3).clamp_min(f32::MIN_POSITIVE); // [b, kvh, rep*t, 1]
        (e / l.clone(), m + l.log())
    }

    /// The probabilities `exp(S + bias − lse)` again from the forward's `lse`.
    ///
    /// # Shapes
    /// - `lse`: `[b, kvh, rep * t, 1]` → `[b, kvh, rep * t, tk]`
    fn probs(&self, lse: Tensor<4>) -> Tensor<4> {
        let t = self.q.dims()[1];
        match host::on_flex_f32(&self.q) {
            true => host::attention::probs(self.scores(1.0), self.bias(), &lse, t, self.scale() as f32),
            false => (self.masked(self.scaled_scores()) - lse).exp(),
        }
    }

    /// `S = q kᵀ / √dh` in `f32` (burn's ops): `bf16` queries and keys are multiplied in their
    /// dtype, and the scores upcast before the scale, mask and softmax (as FlashAttention keeps
    /// `S` and `P` in `f32`).
    ///
    /// # Shapes
    /// - → `[b, kvh, rep * t, tk]`
    fn scaled_scores(&self) -> Tensor<4> {
        match super::is_f32(&self.q) {
            true => self.scores(self.scale()),
            false => super::upcast(self.scores(1.0)).mul_scalar(self.scale()),
        }
    }

    /// On flex, `bf16` inputs as `f32` (the CPU has no bf16 arithmetic: flex's bf16 matmul
    /// converts to f32 too), so that the host kernels run; the saved inputs stay `bf16`.
    /// `None` for `f32` inputs or another backend (which multiplies in bf16, see `scaled_scores`).
    fn upcast_on_flex(&self) -> Option<Self> {
        (!super::is_f32(&self.q) && host::on_flex(&self.q)).then(|| Self {
            q: super::upcast(self.q.clone()),
            k: super::upcast(self.k.clone()),
            v: super::upcast(self.v.clone()),
            mask: self.mask.clone(),
        })
    }

    /// `x` in the dtype of the inputs (`bf16` probabilities and score gradients enter the
    /// products in the activations' dtype).
    fn stored<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        x.cast(self.q.dtype())
    }
}

/// The forward on plain tensors: `(o [b, t, h, dh], lse [b, kvh, rep * t, 1])`.
fn forward(saved: &Saved) -> (Tensor<4>, Tensor<4>) {
    if let Some(up) = saved.upcast_on_flex() {
        let (o, lse) = forward(&up);
        return (o.cast(saved.q.dtype()), lse);
    }
    let (p, lse) = saved.softmax(); // [b, kvh, rep*t, tk], [b, kvh, rep*t, 1]
    (saved.p_b(saved.stored(p), saved.v.clone()), lse) // o: [b, t, h, dh]
}

/// `(dq, dk, dv)` from the output gradient `g` (`[b, t, h, dh]`).
fn backward(saved: &Saved, o: Tensor<4>, lse: Tensor<4>, g: Tensor<4>) -> [Tensor<4>; 3] {
    if let Some(up) = saved.upcast_on_flex() {
        let dtype = saved.q.dtype();
        return backward(&up, super::upcast(o), lse, super::upcast(g)).map(|d| d.cast(dtype));
    }
    let p = saved.probs(lse); // [b, kvh, rep*t, tk], recomputed
    let delta = saved.row_dots(&g, &o); // [b, kvh, rep*t, 1]
    let dv = saved.pt_b(saved.stored(p.clone()), g.clone()); // [b, tk, kvh, dh]
    let dp = super::upcast(saved.a_bt(g, saved.v.clone())); // [b, kvh, rep*t, tk], f32
    let scale = saved.scale();
    let ds = match host::on_flex_f32(&dp) {
        true => host::attention::softmax_grad(dp, &p, &delta, scale as f32),
        false => (p.clone() * (dp - delta)).mul_scalar(scale),
    }; // [b, kvh, rep*t, tk]
    let ds = saved.stored(ds);
    let dq = saved.p_b(ds.clone(), saved.k.clone()); // [b, t, h, dh]
    let dk = saved.pt_b(ds, saved.q.clone()); // [b, tk, kvh, dh]
    [dq, dk, dv]
}

#[derive(Debug)]
struct AttentionBackward;

impl<B: Backend> Backward<B, 3> for AttentionBackward
where
    DispatchTensor: DispatchKindConversion<B>,
{
    /// Inputs, output `o` and `lse`.
    type State = (Saved, Tensor<4>, Tensor<4>);

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        let (saved, o, lse) = ops.state;
        let g = Tensor::<4>::from_primitive::<B>(grads.consume::<B>(&ops.node));
        let d = backward(&saved, o, lse, g);
        for (parent, d) in ops.parents.into_iter().zip(d) {
            if let Some(node) = parent {
                grads.register::<B>(node.id, d.try_into_primitive::<B>().expect("inner backend tensor"));
            }
        }
    }
}

type Args = (Tensor<4>, Tensor<4>, Tensor<4>, Option<AttentionMask>);

/// The forward on backend `B` with checkpoint strategy `C`; `None` when the tensors live elsewhere.
fn tracked<B, C>(args: &Args) -> Option<Tensor<4>>
where
    B: Backend,
    C: CheckpointStrategy,
    DispatchTensor: DispatchKindConversion<B> + DispatchKindConversion<Autodiff<B, C>>,
{
    let (q, k, v, mask) = args.clone();
    // Unwrap each input (a constant input is a plain tensor of the same backend).
    let part = |x: Tensor<4>| {
        let (inner, guard) = x.try_into_primitive::<Autodiff<B, C>>().ok()?.into_parts();
        Some((Tensor::<4>::from_primitive::<B>(inner), guard))
    };
    let ((q, gq), (k, gk), (v, gv)) = (part(q)?, part(k)?, part(v)?);
    let saved = Saved::inputs(q, k, v, mask.as_ref());
    let (o, lse) = forward(&saved);
    let out = o.clone().try_into_primitive::<B>().expect("inner backend tensor");
    let out = match AttentionBackward.prepare::<C>([gq, gk, gv]).compute_bound().stateful() {
        OpsKind::Tracked(prep) => prep.finish((saved, o, lse), out),
        OpsKind::UnTracked(prep) => prep.finish(out),
    };
    Some(Tensor::<4>::from_primitive::<Autodiff<B, C>>(out))
}
