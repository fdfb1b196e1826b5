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

use super::host;
use super::host::F32s;
use super::host::gemm::{MatRef, gemm, gemm_into};

/// `layer.forward(x)` as one 2-D product over all rows (same values).
///
/// # Shapes
/// - `x`: `[..., d_in]` → `[..., d_out]`
pub fn linear<const D: usize>(layer: &Linear, x: Tensor<D>) -> Tensor<D> {
    let mut dims = x.dims();
    if D < 2 {
        return layer.forward(x);
    }
    let [d_in, d_out] = layer.weight.dims();
    assert_eq!(dims[D - 1], d_in, "linear: input {dims:?} for a {d_in} → {d_out} layer");
    let rows = dims[..D - 1].iter().product::<usize>();
    let x = x.reshape([rows, d_in]);
    let y = fused(layer, x.clone()).unwrap_or_else(|| layer.forward(x)); // [rows, d_out]
    dims[D - 1] = d_out;
    y.reshape(dims)
}

/// The op on `f32` `Flex` tensors, with or without autodiff; `None` anywhere else.
///
/// # Shapes
/// - `x`: `[rows, d_in]` → `[rows, d_out]`
fn fused(layer: &Linear, x: Tensor<2>) -> Option<Tensor<2>> {
    let w = layer.weight.val(); // [d_in, d_out]
    let b = layer.bias.as_ref().map(|b| b.val()); // [d_out]
    if !(x.is_autodiff() || w.is_autodiff()) {
        let (x, w) = (F32s::take(x)?, F32s::take(w)?);
        let b = match b {
            Some(b) => Some(F32s::take(b)?),
            None => None,
        };
        return Some(forward(&x, &w, b.as_ref()));
    }
    let args = (x, w, b);
    tracked::<NoCheckpointing>(&args).or_else(|| tracked::<BalancedCheckpointing>(&args))
}

/// `x W + b` on host storage.
///
/// # Shapes
/// - `x`: `[rows, d_in]`, `w`: `[d_in, d_out]`, `b`: `[d_out]` → `[rows, d_out]`
fn forward(x: &F32s, w: &F32s, b: Option<&F32s>) -> Tensor<2> {
    let ([rows, d_in], [_, d_out]) = (x.dims(), w.dims());
    let (x, w) = (MatRef::row_major(x.slice(), rows, d_in), MatRef::row_major(w.slice(), d_in, d_out));
    let y = match b {
        Some(b) => {
            let mut y = b.slice().repeat(rows); // the bias as the initial value
            gemm_into(x, w, &mut y, true);
            y
        }
        None => gemm(x, w),
    };
    host::tensor(y, [rows, d_out])
}

/// `(dx, dW, db)` from the output gradient `g`, each only when `need`ed.
///
/// # Shapes
/// - `x`: `[rows, d_in]`, `w`: `[d_in, d_out]`, `g`: `[rows, d_out]` → `[rows, d_in]`,
///   `[d_in, d_out]`, `[d_out]`
fn backward(x: &F32s, w: &F32s, g: &F32s, need: [bool; 3]) -> [Option<Vec<f32>>; 3] {
    let ([rows, d_in], [_, d_out]) = (x.dims(), w.dims());
    let x = MatRef::row_major(x.slice(), rows, d_in);
    let w = MatRef::row_major(w.slice(), d_in, d_out);
    let g = MatRef::row_major(g.slice(), rows, d_out);
    [
        need[0].then(|| gemm(g, w.t())), // [rows, d_in]
        need[1].then(|| gemm(x.t(), g)), // [d_in, d_out]
        need[2].then(|| gemm(MatRef::row_major(&vec![1.0; rows], 1, rows), g)), // [1, d_out]
    ]
}

/// The node of one linear layer; `N` = 3 with a bias, 2 without.
#[derive(Debug)]
struct LinearBackward<const N: usize>;

impl<const N: usize> Backward<Flex, N> for LinearBackward<N> {
    /// `x [rows, d_in]`, `W [d_in, d_out]`.
    type State = (Tensor<2>, Tensor<2>);

    fn backward(self, ops: Ops<Self::State, N>, grads: &mut Gradients, _: &mut Checkpointer) {
        let (x, w) = ops.state;
        let g = F32s::expect_take(Tensor::<2>::from_primitive::<Flex>(grads.consume::<Flex>(&ops.node)));
        let (x, w) = (F32s::expect_take(x), F32s::expect_take(w));
        let ([rows, d_in], [_, d_out]) = (x.dims(), w.dims());
        let need = [0, 1, 2].map(|i| ops.parents.get(i).is_some_and(Option::is_some));
        let [dx, dw, db] = backward(&x, &w, &g, need);
        let d = [
            dx.map(|d| host::tensor(d, [rows, d_in]).try_into_primitive::<Flex>()),
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

type Args = (Tensor<2>, Tensor<2>, Option<Tensor<1>>);

/// The forward under autodiff on `Flex` with checkpoint strategy `C`; `None` when the tensors
/// live elsewhere or are not `f32`.
fn tracked<C: CheckpointStrategy>((x, w, b): &Args) -> Option<Tensor<2>>
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
    let ((x, gx), (w, gw)) = (part::<2, C>(x)?, part::<2, C>(w)?);
    let b = match b {
        Some(b) => Some(part::<1, C>(b)?),
        None => None,
    };
    let bias = b.as_ref().map(|(b, _)| F32s::expect(b));
    let y = forward(&F32s::expect(&x), &F32s::expect(&w), bias.as_ref());
    Some(match b {
        None => record::<2, C>([gx, gw], (x, w), y),
        Some((_, gb)) => record::<3, C>([gx, gw, gb], (x, w), y),
    })
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
