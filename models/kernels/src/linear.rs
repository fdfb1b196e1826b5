//! `Linear::forward` with the leading dimensions folded into the rows, and on `Flex` its own
//! GEMMs and backward pass.
//!
//! Why: for a `[b, t, d_in]` input with `t` a multiple of its row tile, burn 0.22.1's `linear`
//! keeps the batched form (`MatmulTransformPolicy::BetterTiling`, a GPU heuristic), and on flex
//! that runs `b` separate single-threaded GEMMs that each pack the same weight; folded, it is
//! one `[b·t, d_in] @ [d_in, d_out]` GEMM. On `Flex` with `f32` the op also runs its three
//! GEMMs (`y = x W + b`, `dx = g Wᵀ`, `dW = xᵀ g`) through [`host::gemm`], which writes into
//! one fresh buffer, instead of flex's matmul, whose output allocation zero-fills and then
//! copies every result once more; the bias is the output's initial value, and `db` is
//! `1ᵀ g`, a GEMM too. Elsewhere burn's `Linear::forward` runs (same values).

use burn::backend::Flex;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::{
    BalancedCheckpointing, CheckpointStrategy, NoCheckpointing,
};
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, NodeGuard, Ops, OpsKind};
use burn::backend::{Autodiff, DispatchKindConversion, DispatchTensor};
use burn::nn::Linear;
use burn::prelude::*;
use burn::tensor::DType;

use super::host;
use super::host::F32s;
use super::host::gemm::{MatRef, Product, gemm_many};

/// `layer.forward(x)` as one 2-D product over all rows (same values).
///
/// # Shapes
/// - `x`: `[..., d_in]` → `[..., d_out]`
pub fn linear<const D: usize>(layer: &Linear, x: Tensor<D>) -> Tensor<D> {
    let [y] = linears([layer], x);
    y
}

/// `layers[i].forward(x)` for layers that read the same input (query/key/value, gate/up),
/// with their products run at once on `Flex` (see [`host::gemm::gemm_many`]).
///
/// # Shapes
/// - `x`: `[..., d_in]` → each `[..., d_out_i]`
pub fn linears<const D: usize, const N: usize>(layers: [&Linear; N], x: Tensor<D>) -> [Tensor<D>; N] {
    let dims = x.dims();
    if D < 2 {
        return layers.map(|layer| linear_at_input_dtype(layer, x.clone()));
    }
    let d_in = dims[D - 1];
    for layer in layers {
        let [w_in, d_out] = layer.weight.dims();
        assert_eq!(w_in, d_in, "linear: input {dims:?} for a {w_in} → {d_out} layer");
    }
    let rows = dims[..D - 1].iter().product::<usize>();
    let x = x.reshape([rows, d_in]);
    let ys = fused(layers, x.clone())
        .unwrap_or_else(|| layers.map(|layer| linear_at_input_dtype(layer, x.clone())));
    ys.map(|y| {
        let mut dims = dims;
        dims[D - 1] = y.dims()[1];
        y.reshape(dims) // [..., d_out]
    })
}

/// `layer.forward(x)` (burn's `linear`) with the `f32` weight and bias cast to `x`'s dtype at
/// use: `bf16` activations multiply a `bf16` copy of the weight, and the cast's backward
/// returns the weight's gradient in `f32` (mixed precision keeps `f32` parameters).
///
/// # Shapes
/// - `x`: `[..., d_in]` → `[..., d_out]`
pub fn linear_at_input_dtype<const D: usize>(layer: &Linear, x: Tensor<D>) -> Tensor<D> {
    let dtype = x.dtype();
    let bias = layer.bias.as_ref().map(|b| b.val().cast(dtype));
    burn::tensor::module::linear(x, layer.weight.val().cast(dtype), bias)
}

/// A layer's weight `[d_in, d_out]` and bias `[d_out]`.
type Params<T, U> = (T, Option<U>);

/// The op on `f32` `Flex` tensors, with or without autodiff; `None` anywhere else.
///
/// # Shapes
/// - `x`: `[rows, d_in]` → each `[rows, d_out_i]`
fn fused<const N: usize>(layers: [&Linear; N], x: Tensor<2>) -> Option<[Tensor<2>; N]> {
    let params = layers.map(|layer| (layer.weight.val(), layer.bias.as_ref().map(|b| b.val())));
    if !(x.is_autodiff() || params.iter().any(|(w, _)| w.is_autodiff())) {
        let x = F32s::take(x)?;
        let params = all(params.map(|(w, b)| match b {
            Some(b) => Some((F32s::take(w)?, Some(F32s::take(b)?))),
            None => Some((F32s::take(w)?, None)),
        }))?;
        return Some(forward(&x, &params));
    }
    tracked::<NoCheckpointing, N>(&x, &params).or_else(|| tracked::<BalancedCheckpointing, N>(&x, &params))
}

/// `Some` of every value when none is `None`.
fn all<T, const N: usize>(values: [Option<T>; N]) -> Option<[T; N]> {
    values.iter().all(Option::is_some).then(|| values.map(|v| v.expect("checked just above")))
}

/// `x W_i + b_i` for each layer, on host storage.
///
/// # Shapes
/// - `x`: `[rows, d_in]`, `W_i`: `[d_in, d_out_i]`, `b_i`: `[d_out_i]` → each `[rows, d_out_i]`
fn forward<const N: usize>(x: &F32s, params: &[Params<F32s, F32s>; N]) -> [Tensor<2>; N] {
    let [rows, d_in] = x.dims();
    let x = MatRef::row_major(x.slice(), rows, d_in);
    let products: Vec<Product> = params
        .iter()
        .map(|(w, b)| (x, MatRef::row_major(w.slice(), d_in, w.dims::<2>()[1]), b.as_ref().map(F32s::slice)))
        .collect();
    let mut ys = gemm_many(&products).into_iter();
    params.each_ref().map(|(w, _)| host::tensor(ys.next().expect("one per layer"), [rows, w.dims::<2>()[1]]))
}

/// `(dx, dW, db)` from the output gradient `g`, each only when `need`ed, computed at once.
///
/// # Shapes
/// - `x`: `[rows, d_in]`, `w`: `[d_in, d_out]`, `g`: `[rows, d_out]` → `[rows, d_in]`,
///   `[d_in, d_out]`, `[d_out]`
fn backward(x: &F32s, w: &F32s, g: &F32s, need: [bool; 3]) -> [Option<Vec<f32>>; 3] {
    let ([rows, d_in], [_, d_out]) = (x.dims(), w.dims());
    let x = MatRef::row_major(x.slice(), rows, d_in);
    let w = MatRef::row_major(w.slice(), d_in, d_out);
    let g = MatRef::row_major(g.slice(), rows, d_out);
    let ones = vec![1.0; rows];
    let all: [Product; 3] = [
        (g, w.t(), None),                             // [rows, d_in]
        (x.t(), g, None),                             // [d_in, d_out]
        (MatRef::row_major(&ones, 1, rows), g, None), // [1, d_out]
    ];
    let wanted: Vec<Product> = all.iter().zip(need).filter(|(_, n)| *n).map(|(p, _)| *p).collect();
    let mut done = gemm_many(&wanted).into_iter();
    need.map(|n| n.then(|| done.next().expect("one product per need")))
}

/// The node of one linear layer; `N` = 3 with a bias, 2 without.
#[derive(Debug)]
struct LinearBackward<const N: usize>;

impl<const N: usize> Backward<Flex, N> for LinearBackward<N> {
    /// `x [rows, d_in]`, `W [d_in, d_out]`.
    type State = (Tensor<2>, Tensor<2>);

    fn backward(self, ops: Ops<Self::State, N>, grads: &mut Gradients, _: &mut Checkpointer) {
        let (x, w) = ops.state;
        let g = Tensor::<2>::from_primitive::<Flex>(grads.consume::<Flex>(&ops.node));
        let x_dtype = x.dtype(); // bf16 under mixed precision: upcast here, dx returned in bf16
        let g = F32s::expect_take(super::upcast(g));
        let (x, w) = (F32s::expect_take(super::upcast(x)), F32s::expect_take(w));
        let ([rows, d_in], [_, d_out]) = (x.dims(), w.dims());
        let need = [0, 1, 2].map(|i| ops.parents.get(i).is_some_and(Option::is_some));
        let [dx, dw, db] = backward(&x, &w, &g, need);
        let d = [
            dx.map(|d| host::tensor(d, [rows, d_in]).cast(x_dtype).try_into_primitive::<Flex>()),
            dw.map(|d| host::tensor(d, [d_in, d_out]).try_into_primitive::<Flex>()),
            db.map(|d| host::tensor(d, [d_out]).try_into_primitive::<Flex>()),
        ];
        for (parent, d) in ops.parents.into_iter().zip(d) {
            if let Some(node) = parent {
                let d = d.expect("computed for every tracked parent").expect("flex tensor");
                grads.register::<Flex>(node.id, d);
            }
        }
    }
}

/// The forward under autodiff on `Flex` with checkpoint strategy `C`; `None` when the tensors
/// live elsewhere or are not `f32` (`x` may be `bf16`: computed in `f32`, `y` and `dx` returned
/// in `bf16`, and `W` kept as the `f32` parameter itself, no `bf16` copy).
fn tracked<C: CheckpointStrategy, const N: usize>(
    x: &Tensor<2>,
    params: &[Params<Tensor<2>, Tensor<1>>; N],
) -> Option<[Tensor<2>; N]>
where
    DispatchTensor: DispatchKindConversion<Autodiff<Flex, C>>,
{
    fn part<const D: usize, C: CheckpointStrategy>(t: &Tensor<D>) -> Option<(Tensor<D>, NodeGuard)>
    where
        DispatchTensor: DispatchKindConversion<Autodiff<Flex, C>>,
    {
        let (inner, guard) = t.clone().try_into_primitive::<Autodiff<Flex, C>>().ok()?.into_parts();
        let inner = Tensor::<D>::from_primitive::<Flex>(inner);
        host::on_flex_f32(&inner).then_some((inner, guard))
    }
    /// `x` may also be `bf16` (mixed precision): the CPU has no bf16 arithmetic (flex's own
    /// bf16 matmul converts to f32 too), so it is upcast for the GEMMs and kept in bf16.
    fn input<C: CheckpointStrategy>(t: &Tensor<2>) -> Option<(Tensor<2>, NodeGuard)>
    where
        DispatchTensor: DispatchKindConversion<Autodiff<Flex, C>>,
    {
        let (inner, guard) = t.clone().try_into_primitive::<Autodiff<Flex, C>>().ok()?.into_parts();
        let inner = Tensor::<2>::from_primitive::<Flex>(inner);
        matches!(inner.dtype(), DType::F32 | DType::BF16).then_some((inner, guard))
    }
    // Per layer: (x, its node), (W, its node), maybe (b, its node).
    let parts = all(params.each_ref().map(|(w, b)| {
        let b = match b {
            Some(b) => Some(part::<1, C>(b)?),
            None => None,
        };
        Some((input::<C>(x)?, part::<2, C>(w)?, b))
    }))?;
    let x_host = F32s::expect(&super::upcast(parts[0].0.0.clone()));
    let host_params =
        parts.each_ref().map(|(_, (w, _), b)| (F32s::expect(w), b.as_ref().map(|(b, _)| F32s::expect(b))));
    let ys = forward(&x_host, &host_params);
    drop((x_host, host_params));
    let mut ys = ys.into_iter();
    Some(parts.map(|((x, gx), (w, gw), b)| {
        let y = ys.next().expect("one per layer").cast(x.dtype()); // [rows, d_out], x's dtype
        match b {
            None => record::<2, C>([gx, gw], (x, w), y),
            Some((_, gb)) => record::<3, C>([gx, gw, gb], (x, w), y),
        }
    }))
}

/// `y` as the output of a [`LinearBackward`] node over `nodes` (`x`, `W` and maybe `b`),
/// keeping `x` and `W` when a gradient is needed.
fn record<const N: usize, C: CheckpointStrategy>(
    nodes: [NodeGuard; N],
    state: (Tensor<2>, Tensor<2>),
    y: Tensor<2>,
) -> Tensor<2>
where
    DispatchTensor: DispatchKindConversion<Autodiff<Flex, C>>,
{
    let y = y.try_into_primitive::<Flex>().expect("flex tensor");
    let out = match LinearBackward::<N>.prepare::<C>(nodes).compute_bound().stateful() {
        OpsKind::Tracked(prep) => prep.finish(state, y),
        OpsKind::UnTracked(prep) => prep.finish(y),
    };
    Tensor::<2>::from_primitive::<Autodiff<Flex, C>>(out)
}
