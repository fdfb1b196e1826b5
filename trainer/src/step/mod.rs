//! One optimizer step: data `Batch`es (micro-batches) → model tensors → forward →
//! next-token cross-entropy on the loss-masked positions + MoE auxiliary loss → backward →
//! gradients summed over micro-batches → global-norm clip → AdamW.
//!
//! The loss of an accumulated step is the mean over *all* scored tokens of all its
//! micro-batches (each micro-batch's summed loss is divided by that total), so accumulating
//! k micro-batches equals one batch k times larger. With data parallelism ([`StepSync`]) the
//! total is taken over every rank before the forward pass, so the local gradients are already
//! shares of the global-mean loss and the ranks only sum them: 2 ranks with k micro-batches
//! each equal 1 rank accumulating the same 2k. A step whose loss or gradient norm is NaN/Inf
//! is skipped (model and optimizer untouched) and counted.

mod guard;
mod loss;
mod report;
mod sync;
mod tensors;

use burn::optim::GradientsParams;
use burn::tensor::Device;
use mm1_data::Batch;
use mm1_models::{Mm1Model, ModelError};

pub use guard::NonFiniteGuard;
pub(crate) use loss::head_nll;
pub use loss::{BatchLoss, forward_batch, masked_nll};
pub use report::{SourceLoss, StepReport};
use report::{add_moe_stats, add_source_losses, sum_report};
pub use sync::{LocalStep, StepSync};
pub use tensors::{BatchTensors, Scored, batch_to_tensors};

use crate::optim::{Accumulator, GroupedAdamW};
use crate::recompute::Recompute;

/// Errors of a training step; the message names what is wrong.
#[derive(Debug, thiserror::Error)]
pub enum StepError {
    #[error("batch {index}: {msg}")]
    Batch { index: u64, msg: String },
    #[error("model: {0}")]
    Model(#[from] ModelError),
    #[error("no batches given to the step")]
    Empty,
    #[error("collective: {0}")]
    Collective(String),
}

/// Run one optimizer step over `batches` (the micro-batches of this step) with base
/// learning rate `lr`, in one process. See [`train_step_synced`].
pub fn train_step(
    model: Mm1Model,
    optim: &mut GroupedAdamW,
    batches: &[Batch],
    lr: f64,
    device: &Device,
) -> Result<(Mm1Model, StepReport), StepError> {
    train_step_synced(model, optim, batches, lr, device, &LocalStep)
}

/// One optimizer step over this rank's `batches`, gradients and logged numbers summed over the
/// ranks of `sync`. Returns the updated model; on a non-finite loss or gradient (anywhere: the
/// reduced values are the same on every rank) the model comes back unchanged and `applied` is false.
pub fn train_step_synced(
    model: Mm1Model,
    optim: &mut GroupedAdamW,
    batches: &[Batch],
    lr: f64,
    device: &Device,
    sync: &dyn StepSync,
) -> Result<(Mm1Model, StepReport), StepError> {
    train_step_with_recompute(model, optim, batches, lr, device, sync, Recompute::Nothing)
}

/// [`train_step_synced`] with the blocks `recompute` names recomputed in the backward pass
/// instead of kept (`train.activation_checkpointing`, see [`crate::recompute`]).
pub fn train_step_with_recompute(
    model: Mm1Model,
    optim: &mut GroupedAdamW,
    batches: &[Batch],
    lr: f64,
    device: &Device,
    sync: &dyn StepSync,
    recompute: Recompute,
) -> Result<(Mm1Model, StepReport), StepError> {
    if batches.is_empty() {
        return Err(StepError::Empty);
    }
    let local_tokens: usize = batches.iter().map(|b| b.loss_tokens()).sum();
    let loss_tokens = sync.sum(vec![local_tokens as f64])?[0] as usize;
    // A step with nothing to score still runs (aux loss), dividing by 1 instead of 0.
    let denom = loss_tokens.max(1) as f64;
    // The aux loss is a mean over the micro-batches of every router group (rank or EP group).
    let micro = (batches.len() * sync.router_groups()) as f64;
    // ZeRO-2 under activation checkpointing: each unit's gradients reach their owner during the
    // backward pass, and the micro-batches' reduced sums are added on the owner
    let per_group = recompute != Recompute::Nothing && sync.reduces_per_group();
    let reduce = per_group.then_some(sync);
    let mut accum = Accumulator::<Mm1Model>::default();
    let (mut ce_total, mut aux_total) = (0.0f64, 0.0f64);
    let mut report = StepReport {
        loss: 0.0,
        source_loss: Vec::new(),
        aux_loss: 0.0,
        grad_norm: 0.0,
        clipped: false,
        applied: false,
        loss_tokens,
        tokens: batches.iter().map(|b| b.real_tokens()).sum(),
        images: batches.iter().map(|b| b.n_images).sum(),
        expert_load: Vec::new(),
        moe_dropped: 0,
    };
    for batch in batches {
        let tensors = batch_to_tensors(batch, device)?;
        // 1. gradients of this micro-batch's share of the step's mean loss
        let (out, grads) = batch_grads(&model, optim, tensors, recompute, (denom, micro), reduce)?;
        accum.add(&model, grads);
        let ce_sum = out.ce_sum();
        // 2. numbers for the log (after backward: no extra graph work)
        ce_total += ce_sum.into_scalar::<f32>() as f64;
        aux_total += out.aux.into_scalar::<f32>() as f64;
        let nll = out.nll.into_data().try_to_vec::<f32>().map_err(|e| StepError::Batch {
            index: batch.index,
            msg: format!("reading the per-token loss: {e:?}"),
        })?;
        add_source_losses(&mut report.source_loss, batch, &nll);
        add_moe_stats(&mut report, &out.moe);
    }
    let grads = if per_group { accum.take() } else { sync.reduce_grads(&model, accum.take())? };
    sum_report(&mut report, ce_total, aux_total, sync)?;
    report.loss /= denom;
    report.aux_loss /= micro;
    let norm = sync.grad_norm(&model, &grads)?;
    report.grad_norm = norm;
    if !report.loss.is_finite() || !report.aux_loss.is_finite() || !norm.is_finite() {
        return Ok((model, report));
    }
    let (model, stats) = optim.step_with_norm(lr, model, grads, norm);
    let model = sync.share_update(model)?;
    report.clipped = stats.clipped;
    report.applied = true;
    Ok((model, report))
}

/// Forward and backward of one micro-batch: the gradients of `ce_sum / denom + aux / micro`,
/// reduced unit by unit over `reduce` when given (the segmented backward pass only).
fn batch_grads(
    model: &Mm1Model,
    optim: &GroupedAdamW,
    tensors: BatchTensors,
    recompute: Recompute,
    (denom, micro): (f64, f64),
    reduce: Option<&dyn StepSync>,
) -> Result<(BatchLoss, GradientsParams), StepError> {
    if recompute != Recompute::Nothing {
        return crate::recompute::batch_grads(model, optim, tensors, recompute, (denom, micro), reduce);
    }
    let out = forward_batch(model, tensors)?;
    let objective = out.ce_sum().div_scalar(denom) + out.aux.clone().div_scalar(micro);
    let grads = optim.grads(objective.backward(), model);
    Ok((out, grads))
}
