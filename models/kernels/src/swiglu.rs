//! The SwiGLU gate `silu(a) ∘ b` (Shazeer 2020) with its own backward pass.
//!
//! Why: `silu(a) * b` is three graph nodes under autodiff (sigmoid, mul, mul) that keep
//! `a`, `σ(a)`, `silu(a)` and `b`, all `[n, ffn]`. The fused node keeps `a` and `b` and
//! recomputes `σ(a)` in the backward: `da = g ∘ b ∘ σ(a) ∘ (1 + a (1 − σ(a)))`, `db = g ∘ silu(a)`.

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::{Autodiff, Backend, DispatchKindConversion, DispatchTensor};
use burn::prelude::*;
use burn::tensor::activation::{sigmoid, silu};

use super::host;

/// `silu(a) ∘ b`.
///
/// # Shapes
/// - `a`, `b`: `[..., f]` (equal) → `[..., f]`
pub fn swiglu<const D: usize>(a: Tensor<D>, b: Tensor<D>) -> Tensor<D> {
    assert_eq!(a.dims(), b.dims(), "swiglu: gate and up shapes differ");
    if !(a.is_autodiff() || b.is_autodiff()) {
        return forward(a, b);
    }
    let args = (a, b);
    on_autodiff_backends!(|B, C| tracked::<D, B, C>(&args)).unwrap_or_else(|| silu(args.0) * args.1) // another autodiff backend: burn's ops
}

#[derive(Debug)]
struct SwigluBackward<const D: usize>;

impl<B: Backend, const D: usize> Backward<B, 2> for SwigluBackward<D>
where
    DispatchTensor: DispatchKindConversion<B>,
{
    /// The inputs `a`, `b`.
    type State = (Tensor<D>, Tensor<D>);

    fn backward(self, ops: Ops<Self::State, 2>, grads: &mut Gradients, _: &mut Checkpointer) {
        let (a, b) = ops.state;
        let g = Tensor::<D>::from_primitive::<B>(grads.consume::<B>(&ops.node));
        let (da, db) = gradients(a, b, g);
        for (parent, d) in ops.parents.into_iter().zip([da, db]) {
            if let Some(node) = parent {
                grads.register::<B>(node.id, d.try_into_primitive::<B>().expect("inner backend tensor"));
            }
        }
    }
}

/// `silu(a) ∘ b` (the parallel kernel on flex, burn's ops elsewhere).
/// `bf16` inputs are computed in `f32` and the output returned in their dtype.
fn forward<const D: usize>(a: Tensor<D>, b: Tensor<D>) -> Tensor<D> {
    if !super::is_f32(&a) {
        let dtype = a.dtype();
        return forward(super::upcast(a), super::upcast(b)).cast(dtype);
    }
    match host::on_flex_f32(&a) {
        true => host::swiglu::forward(&a, &b),
        false => silu(a) * b,
    }
}

/// `(da, db)` from burn's ops (the reference the kernel is tested against).
fn backward<const D: usize>(a: Tensor<D>, b: Tensor<D>, g: Tensor<D>) -> (Tensor<D>, Tensor<D>) {
    let s = sigmoid(a.clone());
    let db = g.clone() * a.clone() * s.clone(); // g ∘ silu(a)
    let one_minus_s = s.clone().neg().add_scalar(1.0);
    let da = g * b * s * (a * one_minus_s).add_scalar(1.0); // g ∘ b ∘ σ (1 + a (1 − σ))
    (da, db)
}

/// `(da, db)` (the flex kernel on `f32`, burn's ops elsewhere); `bf16` inputs are computed in
/// `f32` and the gradients returned in their dtype.
fn gradients<const D: usize>(a: Tensor<D>, b: Tensor<D>, g: Tensor<D>) -> (Tensor<D>, Tensor<D>) {
    if !super::is_f32(&a) {
        let dtype = a.dtype();
        let (da, db) = gradients(super::upcast(a), super::upcast(b), super::upcast(g));
        return (da.cast(dtype), db.cast(dtype));
    }
    match host::on_flex_f32(&a) {
        true => host::swiglu::backward(&a, b, g),
        false => backward(a, b, g),
    }
}

type Args<const D: usize> = (Tensor<D>, Tensor<D>);

/// The forward on backend `B` with checkpoint strategy `C`; `None` when the tensors live elsewhere.
fn tracked<const D: usize, B, C>(args: &Args<D>) -> Option<Tensor<D>>
where
    B: Backend,
    C: CheckpointStrategy,
    DispatchTensor: DispatchKindConversion<B> + DispatchKindConversion<Autodiff<B, C>>,
{
    let (a, ga) = args.0.clone().try_into_primitive::<Autodiff<B, C>>().ok()?.into_parts();
    let (b, gb) = args.1.clone().try_into_primitive::<Autodiff<B, C>>().ok()?.into_parts();
    let (a, b) = (Tensor::<D>::from_primitive::<B>(a), Tensor::<D>::from_primitive::<B>(b));
    let out = forward(a.clone(), b.clone()).try_into_primitive::<B>().expect("inner backend tensor");
    let out = match SwigluBackward::<D>.prepare::<C>([ga, gb]).compute_bound().stateful() {
        OpsKind::Tracked(prep) => prep.finish((a, b), out),
        OpsKind::UnTracked(prep) => prep.finish(out),
    };
    Some(Tensor::<D>::from_primitive::<Autodiff<B, C>>(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The burn-ops backward (what GPU backends run) against the flex kernel.
    #[test]
    fn burn_ops_backward_matches_the_flex_kernel() {
        let device = Device::flex();
        let values =
            |k: usize| -> Vec<f32> { (0..3000).map(|i| ((i * k) % 197) as f32 / 20.0 - 5.0).collect() };
        let t = |k| Tensor::<1>::from_data(TensorData::new(values(k), [3000]), &device);
        let (a, b, g) = (t(31), t(57), t(11));
        let (da, db) = host::swiglu::backward(&a, b.clone(), g.clone());
        let (ea, eb) = backward(a, b, g);
        for (name, x, y) in [("da", da, ea), ("db", db, eb)] {
            let worst = crate::max_abs_diff(x, y);
            assert!(worst < 1e-4, "{name}: max |diff| {worst}");
        }
    }
}
