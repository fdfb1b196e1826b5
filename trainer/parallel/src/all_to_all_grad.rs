//! A differentiable variable-size all-to-all for burn 0.22.1 tensors.
//!
//! Forward: rows `[m, d]` are exchanged with [`Collective::all_to_allv`] (`send_rows[j]` rows to
//! rank `j`, `recv_rows[i]` from rank `i`). Backward: the reverse all-to-all of the output
//! gradient (`recv_rows` back, `send_rows` in) — the transpose of a permutation across ranks.
//!
//! burn has no public "custom function" API on `Tensor`, so the op is registered in burn's
//! autodiff graph directly (`burn::backend::autodiff::ops::Backward`), on the concrete
//! backend under the run-time dispatch: the tensor is unwrapped with
//! `Tensor::try_into_primitive::<Autodiff<B, C>>()`, its autodiff node becomes the parent of a
//! tracked step whose backward runs the reverse exchange. Supported: `Flex` (CPU) and, with
//! feature `cuda` or `wgpu`, `Cube`, each with or without gradient checkpointing. Every rank
//! must run the backward (the reverse exchange is a collective), which holds when every rank
//! builds the same graph, as data-parallel training does.

use std::sync::Arc;

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::{
    BalancedCheckpointing, CheckpointStrategy, NoCheckpointing,
};
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::{Autodiff, Backend, DispatchKindConversion, DispatchTensor};
use burn::tensor::{Tensor, TensorData};

use super::collective::{Collective, CollectiveError};

/// Exchange rows of `x` (`[m, d]`, `m = Σ send_rows`) across ranks; differentiable.
///
/// # Shapes
/// - `x`: `[Σ send_rows, d]` → `[Σ recv_rows, d]`
pub fn all_to_allv_rows(
    coll: &Arc<dyn Collective>,
    x: Tensor<2>,
    send_rows: &[usize],
    recv_rows: &[usize],
) -> Result<Tensor<2>, CollectiveError> {
    let [_, d] = x.dims();
    let plan = Plan { coll: coll.clone(), send_rows: send_rows.to_vec(), recv_rows: recv_rows.to_vec(), d };
    if !x.is_autodiff() {
        let device = x.device();
        return plan.forward(x, &device);
    }
    if let Some(out) = tracked::<burn::backend::Flex, NoCheckpointing>(&x, &plan)
        .or_else(|| tracked::<burn::backend::Flex, BalancedCheckpointing>(&x, &plan))
    {
        return out;
    }
    // CUDA and wgpu are the same CubeCL backend type; the device says which runtime.
    #[cfg(any(feature = "cuda", feature = "wgpu"))]
    if let Some(out) = tracked::<burn::backend::Cube, NoCheckpointing>(&x, &plan)
        .or_else(|| tracked::<burn::backend::Cube, BalancedCheckpointing>(&x, &plan))
    {
        return out;
    }
    Err(CollectiveError::Mpi(format!(
        "differentiable all-to-all: unsupported backend for device {:?}",
        x.device()
    )))
}

/// What the exchange needs in both directions (also the backward state).
#[derive(Debug, Clone)]
struct Plan {
    coll: Arc<dyn Collective>,
    send_rows: Vec<usize>,
    recv_rows: Vec<usize>,
    d: usize,
}

impl Plan {
    /// Host exchange of a non-autodiff tensor, `send_rows` out and `recv_rows` in.
    fn forward(&self, x: Tensor<2>, device: &burn::tensor::Device) -> Result<Tensor<2>, CollectiveError> {
        exchange(&self.coll, x, &self.send_rows, &self.recv_rows, self.d, device)
    }

    /// The transpose: `recv_rows` out, `send_rows` in.
    fn reverse(&self, g: Tensor<2>, device: &burn::tensor::Device) -> Result<Tensor<2>, CollectiveError> {
        exchange(&self.coll, g, &self.recv_rows, &self.send_rows, self.d, device)
    }
}

fn exchange(
    coll: &Arc<dyn Collective>,
    x: Tensor<2>,
    out_rows: &[usize],
    in_rows: &[usize],
    d: usize,
    device: &burn::tensor::Device,
) -> Result<Tensor<2>, CollectiveError> {
    let dtype = x.dtype(); // bf16 activations travel as f32 and come back in their dtype
    let values = x.into_data().convert::<f32>().try_into_vec::<f32>().expect("converted to f32");
    let out_counts: Vec<usize> = out_rows.iter().map(|r| r * d).collect();
    let in_counts: Vec<usize> = in_rows.iter().map(|r| r * d).collect();
    let got = coll.all_to_allv(values, &out_counts, &in_counts)?;
    let m: usize = in_rows.iter().sum();
    Ok(Tensor::<2>::from_data(TensorData::new(got, [m, d]), device).cast(dtype))
}

/// The backward step registered in burn's autodiff graph.
#[derive(Debug)]
struct AllToAllBackward;

impl<B: Backend> Backward<B, 1> for AllToAllBackward
where
    DispatchTensor: DispatchKindConversion<B>,
{
    type State = Plan;

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let plan = ops.state;
        let grad = grads.consume::<B>(&ops.node); // [Σ recv_rows, d]
        let grad = Tensor::<2>::from_primitive::<B>(grad);
        let device = grad.device();
        // Every rank runs this exchange, even one whose input needs no gradient.
        let back = plan
            .reverse(grad, &device)
            .unwrap_or_else(|e| panic!("backward of the expert-parallel all-to-all failed: {e}"));
        let [parent] = ops.parents;
        if let Some(node) = parent {
            let back = back.try_into_primitive::<B>().expect("created on the inner backend");
            grads.register::<B>(node.id, back);
        }
    }
}

/// Forward on backend `B` with checkpoint strategy `C`; `None` when `x` lives elsewhere.
fn tracked<B, C>(x: &Tensor<2>, plan: &Plan) -> Option<Result<Tensor<2>, CollectiveError>>
where
    B: Backend,
    C: CheckpointStrategy,
    DispatchTensor: DispatchKindConversion<B> + DispatchKindConversion<Autodiff<B, C>>,
{
    let prim = x.clone().try_into_primitive::<Autodiff<B, C>>().ok()?;
    let (inner, guard) = prim.into_parts();
    let inner = Tensor::<2>::from_primitive::<B>(inner);
    let device = inner.device();
    let out = match plan.forward(inner, &device) {
        Ok(out) => out,
        Err(e) => return Some(Err(e)),
    };
    let out = out.try_into_primitive::<B>().expect("created on the inner backend");
    let out = match AllToAllBackward.prepare::<C>([guard]).compute_bound().stateful() {
        OpsKind::Tracked(prep) => prep.finish(plan.clone(), out),
        OpsKind::UnTracked(prep) => prep.finish(out),
    };
    Some(Ok(Tensor::<2>::from_primitive::<Autodiff<B, C>>(out)))
}
