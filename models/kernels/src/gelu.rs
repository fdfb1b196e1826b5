//! Exact GELU `x Φ(x)` (Hendrycks & Gimpel 2016; HF `GELUActivation`, the ViT's MLP) with its
//! own backward pass.
//!
//! Why: burn 0.22.1's `gelu` on flex runs libm's scalar `erf` on one thread, forward and
//! again in the backward, while the other threads wait (its measured share of the step:
//! docs/performance.md, "Parallel kernels on flex storage"). The fused node keeps `x` and
//! computes `dx = g (Φ(x) + x φ(x))` in one parallel pass.

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::{Autodiff, Backend, DispatchKindConversion, DispatchTensor};
use burn::prelude::*;

use super::host;

/// `x Φ(x)`, equal to burn's `activation::gelu`.
///
/// # Shapes
/// - `x`: any → the same
pub fn gelu<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    if !x.is_autodiff() {
        return forward(x);
    }
    let args = x;
    on_autodiff_backends!(|B, C| tracked::<D, B, C>(&args))
        .unwrap_or_else(|| burn::tensor::activation::gelu(args))
}

/// `x Φ(x)` (the parallel kernel on flex, burn's op elsewhere).
/// A `bf16` `x` is computed in `f32` and the output returned in its dtype.
fn forward<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    if !super::is_f32(&x) {
        let dtype = x.dtype();
        return forward(super::upcast(x)).cast(dtype);
    }
    match host::on_flex_f32(&x) {
        true => host::gelu::forward(&x),
        false => burn::tensor::activation::gelu(x),
    }
}

/// `g (Φ(x) + x φ(x))` from burn's ops (other backends).
fn backward<const D: usize>(x: Tensor<D>, g: Tensor<D>) -> Tensor<D> {
    let cdf = (x.clone() * std::f64::consts::FRAC_1_SQRT_2).erf().add_scalar(1.0) * 0.5;
    let pdf = (x.clone().powi_scalar(2) * -0.5).exp()
        * (0.5 * std::f64::consts::FRAC_2_SQRT_PI * std::f64::consts::FRAC_1_SQRT_2);
    g * (cdf + x * pdf)
}

/// `dx` (the flex kernel on `f32`, burn's ops elsewhere); a `bf16` `x` is computed in `f32`
/// and `dx` returned in its dtype.
fn gradient<const D: usize>(x: Tensor<D>, g: Tensor<D>) -> Tensor<D> {
    if !super::is_f32(&x) {
        let dtype = x.dtype();
        return gradient(super::upcast(x), super::upcast(g)).cast(dtype);
    }
    match host::on_flex_f32(&x) {
        true => host::gelu::backward(&x, g),
        false => backward(x, g),
    }
}

#[derive(Debug)]
struct GeluBackward<const D: usize>;

impl<B: Backend, const D: usize> Backward<B, 1> for GeluBackward<D>
where
    DispatchTensor: DispatchKindConversion<B>,
{
    /// The input `x`.
    type State = Tensor<D>;

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let x = ops.state;
        let g = Tensor::<D>::from_primitive::<B>(grads.consume::<B>(&ops.node));
        let [parent] = ops.parents;
        if let Some(node) = parent {
            let dx = gradient(x, g);
            grads.register::<B>(node.id, dx.try_into_primitive::<B>().expect("inner backend tensor"));
        }
    }
}

/// The forward on backend `B` with checkpoint strategy `C`; `None` when the tensor lives elsewhere.
fn tracked<const D: usize, B, C>(x: &Tensor<D>) -> Option<Tensor<D>>
where
    B: Backend,
    C: CheckpointStrategy,
    DispatchTensor: DispatchKindConversion<B> + DispatchKindConversion<Autodiff<B, C>>,
{
    let (x, gx) = x.clone().try_into_primitive::<Autodiff<B, C>>().ok()?.into_parts();
    let x = Tensor::<D>::from_primitive::<B>(x);
    let out = forward(x.clone()).try_into_primitive::<B>().expect("inner backend tensor");
    let out = match GeluBackward::<D>.prepare::<C>([gx]).compute_bound().stateful() {
        OpsKind::Tracked(prep) => prep.finish(x, out),
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
        let xs: Vec<f32> = (0..2000).map(|i| (i as f32 - 1000.0) * 0.011).collect();
        let gs: Vec<f32> = (0..2000).map(|i| ((i * 37) % 101) as f32 / 50.0 - 1.0).collect();
        let x = Tensor::<1>::from_data(TensorData::new(xs, [2000]), &device);
        let g = Tensor::<1>::from_data(TensorData::new(gs, [2000]), &device);
        let worst = crate::max_abs_diff(host::gelu::backward(&x, g.clone()), backward(x, g));
        assert!(worst < 1e-5, "max |diff| {worst}");
    }
}
