//! What a step exchanges with the other data-parallel ranks ([`StepSync`]), and the
//! one-process case ([`LocalStep`]).

use burn::module::ParamId;
use burn::optim::GradientsParams;
use mm1_models::Mm1Model;

use super::StepError;
use crate::optim::global_grad_norm;

/// What a step needs from the other data-parallel ranks; [`LocalStep`] for one process.
pub trait StepSync {
    /// Number of data-parallel ranks.
    fn world(&self) -> usize;
    /// Element-wise sum of `values` over the ranks (the same bits on every rank).
    fn sum(&self, values: Vec<f64>) -> Result<Vec<f64>, StepError>;
    /// Sum over the ranks of gradients that are already shares of the global-mean loss.
    fn reduce_grads(&self, model: &Mm1Model, grads: GradientsParams) -> Result<GradientsParams, StepError>;
    /// Number of groups whose MoE router losses are separate: each rank's router loss is its
    /// share of its expert-parallel group's, so the shares of all ranks add up to this many
    /// group losses (the world size without expert parallelism).
    fn router_groups(&self) -> usize {
        self.world()
    }
    /// Whether a segmented backward pass (activation checkpointing, `crate::recompute`) hands
    /// each unit's finished gradients to [`reduce_group`](Self::reduce_group) at once (ZeRO-2)
    /// instead of the step summing them locally for [`reduce_grads`](Self::reduce_grads).
    fn reduces_per_group(&self) -> bool {
        false
    }
    /// The sums over the ranks of the gradients of `ids` (complete for this micro-batch), as
    /// [`reduce_grads`](Self::reduce_grads) returns them (ZeRO-2: the owned ones only). Every
    /// rank calls it with the same `ids` in the same order.
    fn reduce_group(
        &self,
        model: &Mm1Model,
        grads: GradientsParams,
        _ids: &[ParamId],
    ) -> Result<GradientsParams, StepError> {
        self.reduce_grads(model, grads)
    }
    /// Global L2 norm of the reduced gradients (what clipping uses).
    fn grad_norm(&self, model: &Mm1Model, grads: &GradientsParams) -> Result<f64, StepError> {
        Ok(global_grad_norm(model, grads))
    }
    /// After the optimizer step: every rank's model brought up to date. With ZeRO each rank
    /// updated only the parameters it owns and shares them here; otherwise nothing to do.
    fn share_update(&self, model: Mm1Model) -> Result<Mm1Model, StepError> {
        Ok(model)
    }
}

/// One process: nothing to exchange.
#[derive(Debug, Clone, Copy, Default)]
pub struct LocalStep;

impl StepSync for LocalStep {
    fn world(&self) -> usize {
        1
    }

    fn sum(&self, values: Vec<f64>) -> Result<Vec<f64>, StepError> {
        Ok(values)
    }

    fn reduce_grads(&self, _: &Mm1Model, grads: GradientsParams) -> Result<GradientsParams, StepError> {
        Ok(grads)
    }
}
