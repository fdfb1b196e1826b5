//! Rotary position embedding in the rotate-half convention (HF `apply_rotary_pos_emb`) with
//! its own backward pass.
//!
//! Why: written with burn's ops (`llm/rope.rs` before) it is slice, slice, neg, cat, mul, mul,
//! add over q and k: seven graph nodes each way, all serial passes on flex. The fused node keeps
//! nothing but the tables and computes `dx = g ∘ cos + Rᵀ(g ∘ sin)` (`R` = rotate_half,
//! `Rᵀ([u₁, u₂]) = [u₂, −u₁]`) in one pass.

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::{Autodiff, Backend, DispatchKindConversion, DispatchTensor};
use burn::prelude::*;

use super::host;

/// `x ∘ cos + rotate_half(x) ∘ sin`, `rotate_half([x₁, x₂]) = [−x₂, x₁]` over the last dim.
/// Gradients flow to `x` only (the tables are constants).
///
/// # Shapes
/// - `x`: `[b, t, h, dh]`, `cos`, `sin`: `[b, t, 1, dh]` → `[b, t, h, dh]`
pub fn rope(x: Tensor<4>, cos: &Tensor<4>, sin: &Tensor<4>) -> Tensor<4> {
    let [b, t, _, dh] = x.dims();
    assert!(dh % 2 == 0, "rope: head dim {dh} is odd");
    assert_eq!(cos.dims(), [b, t, 1, dh], "rope: cos table vs x {:?}", x.dims());
    assert_eq!(sin.dims(), [b, t, 1, dh], "rope: sin table vs x {:?}", x.dims());
    if !x.is_autodiff() {
        return rotate(x, cos.clone(), sin.clone(), false);
    }
    let args = (x, cos.clone(), sin.clone());
    on_autodiff_backends!(|B, C| tracked::<B, C>(&args))
        .unwrap_or_else(|| rotate(args.0, args.1, args.2, false)) // another autodiff backend: burn's ops
}

/// `R`-rotation of `x` (`transpose = false`: `x∘c + R(x)∘s`; `true`: `x∘c + Rᵀ(x∘s)`), by the
/// parallel kernel on flex and burn's ops elsewhere (and for autodiff tensors of other backends).
fn rotate(x: Tensor<4>, cos: Tensor<4>, sin: Tensor<4>, transpose: bool) -> Tensor<4> {
    if !super::is_f32(&x) {
        // bf16 activations: rotated in f32 against the f32 tables, returned in x's dtype
        let dtype = x.dtype();
        return rotate(super::upcast(x), cos, sin, transpose).cast(dtype);
    }
    if !x.is_autodiff() && host::on_flex_f32(&x) {
        return host::rope::apply(x, &cos, &sin, transpose);
    }
    let [b, t, h, dh] = x.dims();
    let half = |x: Tensor<4>, i: usize| x.slice([0..b, 0..t, 0..h, i * dh / 2..(i + 1) * dh / 2]);
    match transpose {
        false => {
            let rotated = Tensor::cat(vec![half(x.clone(), 1).neg(), half(x.clone(), 0)], 3); // [−x₂, x₁]
            x * cos + rotated * sin
        }
        true => {
            let gs = x.clone() * sin; // [b, t, h, dh]
            let back = Tensor::cat(vec![half(gs.clone(), 1), half(gs, 0).neg()], 3); // [u₂, −u₁]
            x * cos + back
        }
    }
}

#[derive(Debug)]
struct RopeBackward;

impl<B: Backend> Backward<B, 1> for RopeBackward
where
    DispatchTensor: DispatchKindConversion<B>,
{
    /// The `cos` and `sin` tables.
    type State = (Tensor<4>, Tensor<4>);

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let (cos, sin) = ops.state;
        let g = Tensor::<4>::from_primitive::<B>(grads.consume::<B>(&ops.node));
        let [parent] = ops.parents;
        if let Some(node) = parent {
            let dx = rotate(g, cos, sin, true);
            grads.register::<B>(node.id, dx.try_into_primitive::<B>().expect("inner backend tensor"));
        }
    }
}

type Args = (Tensor<4>, Tensor<4>, Tensor<4>);

/// The forward on backend `B` with checkpoint strategy `C`; `None` when the tensors live elsewhere.
fn tracked<B, C>(args: &Args) -> Option<Tensor<4>>
where
    B: Backend,
    C: CheckpointStrategy,
    DispatchTensor: DispatchKindConversion<B> + DispatchKindConversion<Autodiff<B, C>>,
{
    let (x, cos, sin) = args.clone();
    let (x, gx) = x.try_into_primitive::<Autodiff<B, C>>().ok()?.into_parts();
    // The tables are constants: their nodes (if any) are not parents.
    let inner = |t: Tensor<4>| -> Option<Tensor<4>> {
        let (t, _) = t.try_into_primitive::<Autodiff<B, C>>().ok()?.into_parts();
        Some(Tensor::<4>::from_primitive::<B>(t))
    };
    let (x, cos, sin) = (Tensor::<4>::from_primitive::<B>(x), inner(cos)?, inner(sin)?);
    let out =
        rotate(x, cos.clone(), sin.clone(), false).try_into_primitive::<B>().expect("inner backend tensor");
    let out = match RopeBackward.prepare::<C>([gx]).compute_bound().stateful() {
        OpsKind::Tracked(prep) => prep.finish((cos, sin), out),
        OpsKind::UnTracked(prep) => prep.finish(out),
    };
    Some(Tensor::<4>::from_primitive::<Autodiff<B, C>>(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// burn's ops (what GPU backends run) against the flex kernel, both directions.
    #[test]
    fn burn_ops_match_the_flex_kernel() {
        let device = Device::flex();
        let (b, h, t, dh) = (2, 3, 5, 8);
        let values =
            |k: usize, n: usize| -> Vec<f32> { (0..n).map(|i| ((i * k) % 97) as f32 / 20.0 - 2.4).collect() };
        let x = Tensor::<4>::from_data(TensorData::new(values(13, b * t * h * dh), [b, t, h, dh]), &device);
        let table =
            |k| Tensor::<4>::from_data(TensorData::new(values(k, b * t * dh), [b, t, 1, dh]), &device);
        let (cos, sin) = (table(7), table(11));
        for transpose in [false, true] {
            let kernel = host::rope::apply(x.clone(), &cos, &sin, transpose);
            // burn's ops: run `rotate` on an autodiff copy, which never takes the kernel
            let ad = |t: &Tensor<4>| Tensor::<4>::from_data(t.to_data(), &device.clone().autodiff());
            let ops = rotate(ad(&x), ad(&cos), ad(&sin), transpose).inner();
            let worst = crate::max_abs_diff(kernel, ops);
            assert!(worst < 1e-5, "transpose={transpose}: max |diff| {worst}");
        }
    }
}
