//! RMSNorm (Zhang & Sennrich 2019; HF `LlamaRMSNorm`) with its own backward pass.
//!
//! Why: burn's `RmsNorm::forward` records square, mean, add, sqrt, div and mul under
//! autodiff (six graph nodes, five saved `[.., d]` tensors). The fused op saves `x` and one
//! reciprocal RMS per row and computes both gradients in one pass:
//! `x̂ = x·r`, `dγ = Σ_rows g ∘ x̂`, `dx = r · (g∘γ − x̂ · mean(g∘γ∘x̂))`.

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::{Autodiff, Backend, DispatchKindConversion, DispatchTensor};
use burn::nn::RmsNorm;
use burn::prelude::*;

use super::host;

/// `x / sqrt(mean(x², last dim) + eps) * γ`, exactly burn's `RmsNorm::forward` (same weights).
///
/// # Shapes
/// - `x`: `[..., d]` → `[..., d]`
pub fn rms_norm<const D: usize>(norm: &RmsNorm, x: Tensor<D>) -> Tensor<D> {
    let gamma = norm.gamma.val();
    let dims = x.dims();
    let d = dims[D - 1];
    let n = dims[..D - 1].iter().product::<usize>();
    assert_eq!(gamma.dims(), [d], "rms_norm: weight of width {} for input {dims:?}", gamma.dims()[0]);
    if !(x.is_autodiff() || gamma.is_autodiff()) {
        return forward(x.reshape([n, d]), gamma, norm.epsilon).0.reshape(dims);
    }
    let args = (x.reshape([n, d]), gamma, norm.epsilon);
    match on_autodiff_backends!(|B, C| tracked::<B, C>(&args)) {
        Some(y) => y.reshape(dims),
        None => norm.forward(args.0.reshape(dims)), // another autodiff backend: burn's own
    }
}

/// `(y [n, d], r [n, 1])` with `r = 1 / rms` (the parallel kernel on flex, burn's ops elsewhere).
/// A `bf16` `x` is normalised in `f32` (the statistics and the product) and `y` returned in
/// `x`'s dtype.
fn forward(x: Tensor<2>, gamma: Tensor<1>, eps: f64) -> (Tensor<2>, Tensor<2>) {
    if !super::is_f32(&x) {
        let dtype = x.dtype();
        let (y, r) = forward(super::upcast(x), gamma, eps);
        return (y.cast(dtype), r);
    }
    match host::on_flex_f32(&x) {
        true => host::rms_norm::forward(&x, &gamma, eps),
        false => forward_burn(x, gamma, eps),
    }
}

/// [`forward`] from burn's ops.
fn forward_burn(x: Tensor<2>, gamma: Tensor<1>, eps: f64) -> (Tensor<2>, Tensor<2>) {
    let [_, d] = x.dims();
    let rms = (x.clone().square().mean_dim(1) + eps).sqrt(); // [n, 1]
    let y = (x / rms.clone()) * gamma.reshape([1, d]);
    (y, rms.recip())
}

/// `(dx [n, d], dγ [d])` from the output gradient `g` (`[n, d]`) (the parallel kernel on flex,
/// burn's ops elsewhere).
/// A `bf16` `x` (kept as the forward's input) is upcast with `g`; `dx` returns in `x`'s dtype,
/// `dγ` in `γ`'s (`f32`).
fn backward(x: Tensor<2>, r: Tensor<2>, gamma: Tensor<1>, g: Tensor<2>) -> (Tensor<2>, Tensor<1>) {
    if !super::is_f32(&x) {
        let dtype = x.dtype();
        let (dx, dgamma) = backward(super::upcast(x), r, gamma, super::upcast(g));
        return (dx.cast(dtype), dgamma);
    }
    match host::on_flex_f32(&x) {
        true => host::rms_norm::backward(&x, &r, &gamma, g),
        false => backward_burn(x, r, gamma, g),
    }
}

/// [`backward`] from burn's ops.
fn backward_burn(x: Tensor<2>, r: Tensor<2>, gamma: Tensor<1>, g: Tensor<2>) -> (Tensor<2>, Tensor<1>) {
    let [_, d] = x.dims();
    let xhat = x * r.clone(); // [n, d]
    let dgamma = (g.clone() * xhat.clone()).sum_dim(0).reshape([d]);
    let gg = g * gamma.reshape([1, d]); // [n, d]
    let proj = (gg.clone() * xhat.clone()).mean_dim(1); // [n, 1]
    ((gg - xhat * proj) * r, dgamma)
}

#[derive(Debug)]
struct RmsNormBackward;

impl<B: Backend> Backward<B, 2> for RmsNormBackward
where
    DispatchTensor: DispatchKindConversion<B>,
{
    /// `x [n, d]`, `r [n, 1]`, `γ [d]`.
    type State = (Tensor<2>, Tensor<2>, Tensor<1>);

    fn backward(self, ops: Ops<Self::State, 2>, grads: &mut Gradients, _: &mut Checkpointer) {
        let (x, r, gamma) = ops.state;
        let g = Tensor::<2>::from_primitive::<B>(grads.consume::<B>(&ops.node));
        let (dx, dgamma) = backward(x, r, gamma, g);
        let [px, pg] = ops.parents;
        if let Some(node) = px {
            grads.register::<B>(node.id, dx.try_into_primitive::<B>().expect("inner backend tensor"));
        }
        if let Some(node) = pg {
            grads.register::<B>(node.id, dgamma.try_into_primitive::<B>().expect("inner backend tensor"));
        }
    }
}

/// The forward on backend `B` with checkpoint strategy `C`; `None` when the tensors live elsewhere.
fn tracked<B, C>((x, gamma, eps): &(Tensor<2>, Tensor<1>, f64)) -> Option<Tensor<2>>
where
    B: Backend,
    C: CheckpointStrategy,
    DispatchTensor: DispatchKindConversion<B> + DispatchKindConversion<Autodiff<B, C>>,
{
    let (x, gx) = x.clone().try_into_primitive::<Autodiff<B, C>>().ok()?.into_parts();
    let (gamma, gg) = gamma.clone().try_into_primitive::<Autodiff<B, C>>().ok()?.into_parts();
    let (x, gamma) = (Tensor::<2>::from_primitive::<B>(x), Tensor::<1>::from_primitive::<B>(gamma));
    let (y, r) = forward(x.clone(), gamma.clone(), *eps);
    let out = y.try_into_primitive::<B>().expect("inner backend tensor");
    let out = match RmsNormBackward.prepare::<C>([gx, gg]).compute_bound().stateful() {
        OpsKind::Tracked(prep) => prep.finish((x, r, gamma), out),
        OpsKind::UnTracked(prep) => prep.finish(out),
    };
    Some(Tensor::<2>::from_primitive::<Autodiff<B, C>>(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The burn-ops forward and backward (what GPU backends run) against the flex kernels.
    #[test]
    fn burn_ops_match_the_flex_kernels() {
        let device = Device::flex();
        let (n, d) = (70, 300);
        let values = |k: usize, len: usize| -> Vec<f32> {
            (0..len).map(|i| ((i * k) % 211) as f32 / 40.0 - 2.5).collect()
        };
        let x = Tensor::<2>::from_data(TensorData::new(values(31, n * d), [n, d]), &device);
        let g = Tensor::<2>::from_data(TensorData::new(values(17, n * d), [n, d]), &device);
        let gamma = Tensor::<1>::from_data(TensorData::new(values(7, d), [d]), &device);
        let (y, r) = host::rms_norm::forward(&x, &gamma, 1e-5);
        let (y_ops, r_ops) = forward_burn(x.clone(), gamma.clone(), 1e-5);
        let (dx, dgamma) = host::rms_norm::backward(&x, &r, &gamma, g.clone());
        let (dx_ops, dgamma_ops) = backward_burn(x, r_ops.clone(), gamma, g);
        let diff = crate::max_abs_diff;
        for (name, worst, tol) in [
            ("y", diff(y, y_ops), 1e-5),
            ("r", diff(r, r_ops), 1e-6),
            ("dx", diff(dx, dx_ops), 1e-4),
            ("dgamma", diff(dgamma.unsqueeze::<2>(), dgamma_ops.unsqueeze()), 1e-3),
        ] {
            assert!(worst < tol, "{name}: max |diff| {worst}");
        }
    }
}
