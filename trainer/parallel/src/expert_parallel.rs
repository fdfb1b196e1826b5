//! Expert parallelism for the MoE FFN (GShard/DeepSpeed-MoE layout): the `E` experts are
//! split over the `ep` ranks of an expert-parallel group, rank `r` owning experts
//! `[r·E/ep, (r+1)·E/ep)`. The model's routing plan says which token goes where; this
//! dispatcher (the models crate's [`ExpertDispatch`]) moves each routed token to its expert's
//! rank and the expert output back, with two differentiable all-to-alls
//! ([`all_to_allv_rows`]), so that `backward` sends the output gradients back the same way.
//!
//! Router losses (load balance, z-loss) use the routing counts of the whole EP group
//! (`sum_routing_counts`); each rank's loss is its share, and the shares add up to the group's.
//!
//! The module tree is the same everywhere, but a rank's other experts are empty placeholders
//! ([`super::shard_experts`]): it holds, computes and receives gradients for its own only.
//! Gradient reduction with EP ([`MoeGradientReduction`]): dense parameters over all ranks,
//! expert parameters over their replicas (same position in the other EP groups). Because an
//! expert's gradient mixes tokens of several ranks, the loss must be pre-scaled by the
//! rank's token share ([`GradScaling::PreScaled`]).

use std::collections::HashSet;
use std::ops::Range;
use std::sync::Arc;

use burn::module::{Module, ParamId};
use burn::optim::GradientsParams;
use burn::prelude::*;
use burn::tensor::IndexingUpdateOp;
use mm1_models::llm::{Ffn, Mlp};
use mm1_models::{ExpertDispatch, Mm1Model, RoutingPlan};

use super::all_to_all_grad::all_to_allv_rows;
use super::collective::{Collective, CollectiveError, ReduceOp};
use super::data_parallel::{DataParallel, GradScaling};

/// All-to-all token dispatch over an expert-parallel group.
#[derive(Debug, Clone)]
pub struct AllToAllDispatch {
    group: Arc<dyn Collective>,
    num_experts: usize,
}

impl AllToAllDispatch {
    /// `group`: the expert-parallel communicator; its size must divide `num_experts`.
    pub fn new(group: Arc<dyn Collective>, num_experts: usize) -> Result<Self, CollectiveError> {
        let ep = group.world_size();
        if num_experts == 0 || !num_experts.is_multiple_of(ep) {
            return Err(CollectiveError::Launch(format!(
                "expert parallel: {num_experts} experts cannot be split over {ep} ranks"
            )));
        }
        Ok(Self { group, num_experts })
    }

    /// Experts per rank.
    pub fn experts_per_rank(&self) -> usize {
        self.num_experts / self.group.world_size()
    }

    /// Global ids of the experts this rank computes.
    pub fn local_experts(&self) -> Range<usize> {
        let per = self.experts_per_rank();
        let r = self.group.rank();
        r * per..(r + 1) * per
    }
}

impl ExpertDispatch for AllToAllDispatch {
    /// # Shapes
    /// - `x`: `[n, d]`, `gates`: `[n * k]` → `[n, d]`
    fn dispatch(&self, x: Tensor<2>, gates: Tensor<1>, plan: &RoutingPlan, experts: &[Mlp]) -> Tensor<2> {
        self.try_dispatch(x, gates, plan, experts)
            .unwrap_or_else(|e| panic!("expert-parallel dispatch failed: {e}"))
    }

    /// Routing counts summed over the EP group: router losses see every token sent to these experts.
    fn sum_routing_counts(&self, counts: Vec<f32>) -> Vec<f32> {
        self.group
            .all_reduce(counts, ReduceOp::Sum)
            .unwrap_or_else(|e| panic!("expert-parallel routing statistics failed: {e}"))
    }
}

impl AllToAllDispatch {
    fn try_dispatch(
        &self,
        x: Tensor<2>,
        gates: Tensor<1>,
        plan: &RoutingPlan,
        experts: &[Mlp],
    ) -> Result<Tensor<2>, CollectiveError> {
        let [n, d] = x.dims();
        let device = x.device();
        let (e, k, ep, per) =
            (self.num_experts, plan.top_k, self.group.world_size(), self.experts_per_rank());
        if experts.len() != e || plan.assignments.len() != e {
            return Err(CollectiveError::Launch(format!(
                "expert parallel: model has {} experts and the plan {}, dispatcher built for {e}",
                experts.len(),
                plan.assignments.len()
            )));
        }
        // 1. Send order: experts by id, i.e. grouped by owner rank (owner = id / per).
        let mut rows: Vec<i64> = Vec::new(); // token of each sent row
        let mut slots: Vec<i64> = Vec::new(); // its gate index, token * k + slot
        let mut per_expert = vec![0u64; e];
        for (id, routed) in plan.assignments.iter().enumerate() {
            per_expert[id] = routed.len() as u64;
            rows.extend(routed.iter().map(|&(t, _)| t as i64));
            slots.extend(routed.iter().map(|&(t, s)| (t * k + s) as i64));
        }
        let send_rows: Vec<usize> = per_expert.chunks(per).map(|c| c.iter().sum::<u64>() as usize).collect();
        // 2. recv_counts[i * per + j]: rows rank i sends to my local expert j.
        let recv_counts = self.group.all_to_all_u64(per_expert)?;
        let recv_rows: Vec<usize> = recv_counts.chunks(per).map(|c| c.iter().sum::<u64>() as usize).collect();
        // 3. Tokens to their experts' ranks.
        let m = rows.len();
        let rows = Tensor::<1, Int>::from_data(TensorData::new(rows, [m]), &device);
        let xs = x.select(0, rows.clone()); // [m, d]
        let x_recv = all_to_allv_rows(&self.group, xs, &send_rows, &recv_rows)?; // [mr, d]
        // 4. Local experts; the received rows are (source rank, local expert) blocks.
        // `x_recv * 0` (not zeros) keeps the output tracked even when nothing arrives, so that
        // every rank runs the reverse exchange in backward.
        let mut y_recv = x_recv.clone() * 0.0; // [mr, d]
        let first = self.local_experts().start;
        for j in 0..per {
            let mut idx: Vec<i64> = Vec::new();
            let mut offset = 0usize;
            for i in 0..ep {
                for jj in 0..per {
                    let c = recv_counts[i * per + jj] as usize;
                    if jj == j {
                        idx.extend((offset..offset + c).map(|v| v as i64));
                    }
                    offset += c;
                }
            }
            if idx.is_empty() {
                continue;
            }
            let ne = idx.len();
            let idx = Tensor::<1, Int>::from_data(TensorData::new(idx, [ne]), &device);
            let ye = experts[first + j].forward(x_recv.clone().select(0, idx.clone())); // [ne, d]
            y_recv = y_recv.select_assign(0, idx, ye, IndexingUpdateOp::Add);
        }
        // 5. Outputs back to the tokens' ranks, gated and summed per token.
        let y = all_to_allv_rows(&self.group, y_recv, &recv_rows, &send_rows)?; // [m, d]
        let slots = Tensor::<1, Int>::from_data(TensorData::new(slots, [m]), &device);
        let g = gates.select(0, slots).reshape([m, 1]); // [m, 1]
        let out = Tensor::<2>::zeros([n, d], &device);
        Ok(out.select_assign(0, rows, y * g, IndexingUpdateOp::Add))
    }
}

/// Give every MoE layer of `model` the dispatcher `dispatch` (e.g. an [`AllToAllDispatch`]).
pub fn install_dispatch(mut model: Mm1Model, dispatch: Arc<dyn ExpertDispatch>) -> Mm1Model {
    for layer in model.llm.layers.iter_mut() {
        if let Ffn::Moe(moe) = &mut layer.mlp {
            moe.dispatch = dispatch.clone();
        }
    }
    model
}

/// Ids of the MoE experts' parameters ([`ParamKind::Expert`](crate::param_kind::ParamKind::Expert)).
pub fn expert_param_ids<M: Module>(module: &M) -> HashSet<ParamId> {
    crate::params::list_params(module).iter().filter(|p| p.class().expert().is_some()).map(|p| p.id).collect()
}

/// Data + expert parallel gradient reduction: dense parameters over every rank, expert
/// parameters over their replicas only (the ranks at the same position of each EP group).
#[derive(Debug)]
pub struct MoeGradientReduction {
    /// Over all ranks.
    pub dense: DataParallel,
    /// Over the replicas of this rank's experts (world / ep ranks).
    pub experts: DataParallel,
}

impl MoeGradientReduction {
    /// Split `world` into EP groups of `ep` consecutive ranks; returns the reduction and
    /// the EP group (give it to [`AllToAllDispatch::new`]).
    pub fn new(
        world: Arc<dyn Collective>,
        ep: usize,
        bucket_elems: usize,
    ) -> Result<(Self, Arc<dyn Collective>), CollectiveError> {
        let n = world.world_size();
        if ep == 0 || !n.is_multiple_of(ep) {
            return Err(CollectiveError::Launch(format!(
                "parallel.ep = {ep} must divide the number of ranks ({n})"
            )));
        }
        let r = world.rank();
        let ep_group = world.split(r / ep)?; // ranks [g·ep, (g+1)·ep)
        let replicas = world.split(r % ep)?; // same position in every EP group
        Ok((
            Self {
                dense: DataParallel::new(world, bucket_elems),
                experts: DataParallel::new(replicas, bucket_elems),
            },
            ep_group,
        ))
    }

    /// Reduce `grads` (from a loss pre-scaled by the token share).
    pub fn all_reduce<M: Module>(
        &self,
        module: &M,
        grads: GradientsParams,
    ) -> Result<GradientsParams, CollectiveError> {
        let experts = expert_param_ids(module);
        let grads = self
            .dense
            .all_reduce_gradients_where(module, grads, GradScaling::PreScaled, &|id| !experts.contains(id))?;
        self.experts
            .all_reduce_gradients_where(module, grads, GradScaling::PreScaled, &|id| experts.contains(id))
    }
}
