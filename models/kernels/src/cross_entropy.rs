//! Masked next-token cross-entropy with its own backward pass.
//!
//! Why: burn 0.22.1 records `log_softmax` under autodiff as max, sub, exp, sum, log, sub
//! and then gather, neg, mul, sum, each over (most of) the `[b, t, vocab]` logits and each
//! keeping its input for the backward pass. The fused op keeps only the logits plus one
//! log-sum-exp per row, and its backward is the textbook `(softmax(x) − onehot(y)) · mask · g`
//! in one pass (on flex written over the logits, which nothing else needs by then: the LM
//! head's backward keeps its input, not its output).

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::{Autodiff, Backend, DispatchKindConversion, DispatchTensor};
use burn::prelude::*;
use burn::tensor::IndexingUpdateOp;
use burn::tensor::activation::{log_softmax, softmax};

use super::host;

/// Masked next-token negative log-likelihood per position:
/// `mask · (−log softmax(logits)[target])`. Gradients flow to `logits` only.
///
/// # Shapes
/// - `logits`: `[b, t, v]`, `targets`: `[b, t]`, `loss_mask`: `[b, t]` (1.0 = scored) → `[b, t]`
pub fn masked_nll(logits: Tensor<3>, targets: Tensor<2, Int>, loss_mask: Tensor<2>) -> Tensor<2> {
    let [b, t, _] = logits.dims();
    assert_eq!(targets.dims(), [b, t], "masked_nll: targets shape vs logits {:?}", logits.dims());
    assert_eq!(loss_mask.dims(), [b, t], "masked_nll: loss_mask shape vs logits {:?}", logits.dims());
    if !logits.is_autodiff() {
        return forward(&Saved::new(logits, targets, loss_mask)).0.reshape([b, t]);
    }
    let args = (logits, targets, loss_mask);
    match on_autodiff_backends!(|B, C| tracked::<B, C>(&args)) {
        Some(nll) => nll.reshape([b, t]),
        None => decomposed(args.0, args.1, args.2), // another autodiff backend: burn's ops
    }
}

/// The same loss from burn's ops (the reference the fused op is tested against).
///
/// # Shapes
/// - `logits`: `[b, t, v]`, `targets`: `[b, t]`, `loss_mask`: `[b, t]` → `[b, t]`
pub fn decomposed(logits: Tensor<3>, targets: Tensor<2, Int>, loss_mask: Tensor<2>) -> Tensor<2> {
    let [b, t, _] = logits.dims();
    let logp = log_softmax(super::upcast(logits), 2); // [b, t, v], f32 also for bf16 logits
    let picked = logp.gather(2, targets.reshape([b, t, 1])); // [b, t, 1]
    picked.reshape([b, t]).neg() * loss_mask
}

/// Inputs on the inner (non-autodiff) backend, rows flattened.
#[derive(Debug, Clone)]
struct Saved {
    /// `[n, v]`, `n = b * t`
    logits: Tensor<2>,
    /// `[n, 1]`
    targets: Tensor<2, Int>,
    /// `[n, 1]`
    mask: Tensor<2>,
}

impl Saved {
    fn new(logits: Tensor<3>, targets: Tensor<2, Int>, mask: Tensor<2>) -> Self {
        let [b, t, v] = logits.dims();
        let n = b * t;
        Self { logits: logits.reshape([n, v]), targets: targets.reshape([n, 1]), mask: mask.reshape([n, 1]) }
    }

    /// The same rows with `f32` logits (mixed precision keeps them in `bf16` between the passes);
    /// taking `self` lets the backward pass drop the `bf16` logits once the copy exists.
    fn upcast(self) -> Self {
        Self { logits: super::upcast(self.logits), ..self }
    }
}

/// `(nll [n, 1], lse [n, 1])` (the parallel kernel on flex, burn's ops elsewhere).
fn forward(s: &Saved) -> (Tensor<2>, Tensor<2>) {
    if !super::is_f32(&s.logits) {
        return forward(&s.clone().upcast()); // bf16 logits: the loss is computed in f32
    }
    match host::on_flex_f32(&s.logits) {
        true => host::cross_entropy::forward(&s.logits, &s.targets, &s.mask),
        false => forward_burn(s),
    }
}

/// [`forward`] from burn's ops.
fn forward_burn(s: &Saved) -> (Tensor<2>, Tensor<2>) {
    // log Σ e^x = max(x) − log(max softmax(x)): the largest probability is ≥ 1/v, so its log
    // is as exact as f32 allows, and burn's softmax op is one parallel SIMD pass on flex
    // (max, sub, exp, sum are four single-threaded passes).
    let m = s.logits.clone().max_dim(1); // [n, 1]
    let lse = m - softmax(s.logits.clone(), 1).max_dim(1).log(); // [n, 1]
    let picked = s.logits.clone().gather(1, s.targets.clone()); // [n, 1]
    ((lse.clone() - picked) * s.mask.clone(), lse)
}

/// `d loss / d logits` (`[n, v]`) for the upstream gradient `g` (`[n, 1]`) (the parallel
/// kernel on flex, burn's ops elsewhere).
fn backward(s: Saved, lse: Tensor<2>, g: Tensor<2>) -> Tensor<2> {
    if !super::is_f32(&s.logits) {
        let dtype = s.logits.dtype();
        return backward(s.upcast(), lse, super::upcast(g)).cast(dtype); // d logits in their dtype
    }
    match host::on_flex_f32(&s.logits) {
        true => host::cross_entropy::backward(s.logits, &s.targets, &s.mask, &lse, &g),
        false => backward_burn(&s, lse, g),
    }
}

/// [`backward`] from burn's ops.
fn backward_burn(s: &Saved, lse: Tensor<2>, g: Tensor<2>) -> Tensor<2> {
    let w = s.mask.clone() * g; // [n, 1] weight of each row
    // softmax(x) = exp(x − lse), recomputed by burn's softmax op (one parallel SIMD pass on flex).
    let _ = lse;
    let p = softmax(s.logits.clone(), 1) * w.clone(); // [n, v] softmax · w
    p.scatter(1, s.targets.clone(), w.neg(), IndexingUpdateOp::Add) // − w at the target
}

#[derive(Debug)]
struct CrossEntropyBackward;

impl<B: Backend> Backward<B, 1> for CrossEntropyBackward
where
    DispatchTensor: DispatchKindConversion<B>,
{
    /// Inputs and the per-row log-sum-exp; the logits' original `[b, t, v]`.
    type State = (Saved, Tensor<2>, [usize; 3]);

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let (saved, lse, dims) = ops.state;
        let g = Tensor::<2>::from_primitive::<B>(grads.consume::<B>(&ops.node));
        let [parent] = ops.parents;
        if let Some(node) = parent {
            let d = backward(saved, lse, g).reshape(dims);
            grads.register::<B>(node.id, d.try_into_primitive::<B>().expect("inner backend tensor"));
        }
    }
}

type Args = (Tensor<3>, Tensor<2, Int>, Tensor<2>);

/// The forward on backend `B` with checkpoint strategy `C`; `None` when the tensors live elsewhere.
fn tracked<B, C>(args: &Args) -> Option<Tensor<2>>
where
    B: Backend,
    C: CheckpointStrategy,
    DispatchTensor: DispatchKindConversion<B> + DispatchKindConversion<Autodiff<B, C>>,
{
    let (logits, targets, mask) = args.clone();
    let dims = logits.dims();
    let (logits, guard) = logits.try_into_primitive::<Autodiff<B, C>>().ok()?.into_parts();
    let targets = targets.try_into_primitive::<Autodiff<B, C>>().ok()?;
    // The mask is a constant: its node (if any) is not a parent.
    let (mask, _) = mask.try_into_primitive::<Autodiff<B, C>>().ok()?.into_parts();
    let saved = Saved::new(
        Tensor::<3>::from_primitive::<B>(logits),
        Tensor::<2, Int>::from_primitive::<B>(targets),
        Tensor::<2>::from_primitive::<B>(mask),
    );
    let (nll, lse) = forward(&saved);
    let out = nll.try_into_primitive::<B>().expect("inner backend tensor");
    let out = match CrossEntropyBackward.prepare::<C>([guard]).compute_bound().stateful() {
        OpsKind::Tracked(prep) => prep.finish((saved, lse, dims), out),
        OpsKind::UnTracked(prep) => prep.finish(out),
    };
    Some(Tensor::<2>::from_primitive::<Autodiff<B, C>>(out))
}
