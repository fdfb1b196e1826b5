//! What a step exchanges with the other data-parallel ranks ([`StepSync`]), and the
//! one-process case ([`LocalStep`]).

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
