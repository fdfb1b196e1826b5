//! How routed tokens reach their experts. The MoE layer computes *what* goes where
//! (`RoutingPlan`); an `ExpertDispatch` moves the tokens and runs the experts. The local
//! dispatcher runs every expert here; an expert-parallel one (all-to-all across ranks) can
//! be plugged in by the trainer without touching the routing maths.

use super::mlp::Mlp;
use super::routing::RoutingPlan;
use burn::prelude::*;
use burn::tensor::IndexingUpdateOp;

/// Runs experts on routed tokens and combines their gated outputs.
pub trait ExpertDispatch: Send + Sync + std::fmt::Debug {
    /// `Σ_slots gate * expert(x)` per token; dropped assignments contribute nothing.
    ///
    /// # Shapes
    /// - `x`: `[n, d]`, `gates`: `[n * k]` (weight of each token's slot) → `[n, d]`
    fn dispatch(&self, x: Tensor<2>, gates: Tensor<1>, plan: &RoutingPlan, experts: &[Mlp]) -> Tensor<2>;

    /// Element-wise sum of `counts` over every device whose tokens share these experts (the
    /// identity here). The MoE layer sums its routing counts (tokens, first choices per expert)
    /// so that the load-balancing and z losses use the statistics of all those tokens.
    fn sum_routing_counts(&self, counts: Vec<f32>) -> Vec<f32> {
        counts
    }
}

/// Every expert on this device: gather its tokens, run it, scatter-add the gated output.
#[derive(Debug, Clone, Copy, Default)]
pub struct LocalDispatch;

impl ExpertDispatch for LocalDispatch {
    fn dispatch(&self, x: Tensor<2>, gates: Tensor<1>, plan: &RoutingPlan, experts: &[Mlp]) -> Tensor<2> {
        let device = x.device();
        let k = plan.top_k;
        let mut out = x.zeros_like(); // [n, d]
        for (expert, routed) in experts.iter().zip(&plan.assignments) {
            if routed.is_empty() {
                continue;
            }
            let tokens: Vec<i64> = routed.iter().map(|&(t, _)| t as i64).collect();
            let slots: Vec<i64> = routed.iter().map(|&(t, s)| (t * k + s) as i64).collect();
            let ne = tokens.len();
            let tokens = Tensor::<1, Int>::from_data(TensorData::new(tokens, [ne]), &device);
            let slots = Tensor::<1, Int>::from_data(TensorData::new(slots, [ne]), &device);
            let xe = x.clone().select(0, tokens.clone()); // [ne, d]
            let ge = gates.clone().select(0, slots).reshape([ne, 1]); // [ne, 1]
            let ye = expert.forward(xe) * ge; // [ne, d]
            out = out.select_assign(0, tokens, ye, IndexingUpdateOp::Add);
        }
        out
    }
}
