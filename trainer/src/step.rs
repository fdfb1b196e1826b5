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

use burn::optim::GradientsParams;
use burn::tensor::{Bool, Device, IndexingUpdateOp, Int, Tensor, TensorData};
use mm1_data::Batch;
use mm1_models::{Mm1Input, Mm1Model, ModelError, MoeStats};

use crate::optim::{Accumulator, GroupedAdamW, global_grad_norm};
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

/// One batch as tensors on a device.
///
/// # Shapes
/// - `input`: see [`Mm1Input`] (`[b, t]` ids/masks, `[n, 3, h, w]` images)
/// - `targets`: `[b, t]` next-token ids
/// - `loss_mask`: `[b, t]` 1.0 where the target is scored, else 0.0
#[derive(Debug, Clone)]
pub struct BatchTensors {
    pub input: Mm1Input,
    pub targets: Tensor<2, Int>,
    pub loss_mask: Tensor<2>,
    /// The scored positions (`None` when the batch scores none).
    pub scored: Option<Scored>,
}

/// The positions whose next token is scored, and those targets.
///
/// # Shapes
/// - `rows`: `[n]` flat indices into `b·t`; `targets`: `[1, n]`
#[derive(Debug, Clone)]
pub struct Scored {
    pub rows: Tensor<1, Int>,
    pub targets: Tensor<2, Int>,
}

impl Scored {
    /// The scored positions of `batch` (`None` when there are none).
    fn of(batch: &Batch, device: &Device) -> Option<Self> {
        let (rows, targets): (Vec<i64>, Vec<i64>) = (batch.loss_mask.iter().zip(&batch.targets))
            .enumerate()
            .filter(|(_, (scored, _))| **scored)
            .map(|(i, (_, &target))| (i as i64, target as i64))
            .unzip();
        let n = rows.len();
        (n > 0).then(|| Self {
            rows: Tensor::from_data(TensorData::new(rows, [n]), device),
            targets: Tensor::from_data(TensorData::new(targets, [1, n]), device),
        })
    }
}

fn ids(v: &[u32], [b, t]: [usize; 2], device: &Device) -> Tensor<2, Int> {
    let v: Vec<i64> = v.iter().map(|&x| x as i64).collect();
    Tensor::from_data(TensorData::new(v, [b, t]), device)
}

fn flags(v: &[bool], [b, t]: [usize; 2], device: &Device) -> Tensor<2, Bool> {
    Tensor::from_data(TensorData::new(v.to_vec(), [b, t]), device)
}

/// Turn the data crate's flat buffers into tensors, checking every length first.
pub fn batch_to_tensors(batch: &Batch, device: &Device) -> Result<BatchTensors, StepError> {
    let (b, t) = (batch.batch_size, batch.seq_len);
    let bt = b * t;
    let err = |msg: String| StepError::Batch { index: batch.index, msg };
    for (name, len) in [
        ("input_ids", batch.input_ids.len()),
        ("targets", batch.targets.len()),
        ("loss_mask", batch.loss_mask.len()),
        ("image_mask", batch.image_mask.len()),
        ("segment_ids", batch.segment_ids.len()),
        ("position_ids", batch.position_ids.len()),
        ("source_ids", batch.source_ids.len()),
    ] {
        if len != bt {
            return Err(err(format!("{name} has {len} entries, expected b*t = {b}*{t} = {bt}")));
        }
    }
    let s = batch.image_size;
    let want = batch.n_images * 3 * s * s;
    if batch.images.len() != want {
        return Err(err(format!(
            "images has {} floats, expected n*3*h*w = {}*3*{s}*{s} = {want}",
            batch.images.len(),
            batch.n_images
        )));
    }
    let images = (batch.n_images > 0).then(|| {
        Tensor::<4>::from_data(TensorData::new(batch.images.clone(), [batch.n_images, 3, s, s]), device)
    });
    let mask: Vec<f32> = batch.loss_mask.iter().map(|&m| m as u8 as f32).collect();
    Ok(BatchTensors {
        input: Mm1Input {
            tokens: ids(&batch.input_ids, [b, t], device),
            image_mask: flags(&batch.image_mask, [b, t], device),
            segment_ids: ids(&batch.segment_ids, [b, t], device),
            position_ids: ids(&batch.position_ids, [b, t], device),
            images,
        },
        targets: ids(&batch.targets, [b, t], device),
        loss_mask: Tensor::from_data(TensorData::new(mask, [b, t]), device),
        scored: Scored::of(batch, device),
    })
}

/// Next-token negative log-likelihood per position, zero where the target is not scored
/// (the models crate's fused op: one pass over the logits, its own backward).
///
/// # Shapes
/// - `logits`: `[b, t, v]`, `targets`: `[b, t]`, `loss_mask`: `[b, t]` → `[b, t]`
pub fn masked_nll(logits: Tensor<3>, targets: Tensor<2, Int>, loss_mask: Tensor<2>) -> Tensor<2> {
    mm1_models::ops::masked_nll(logits, targets, loss_mask)
}

/// What the forward pass of one batch gives the loss.
#[derive(Debug, Clone)]
pub struct BatchLoss {
    /// `[b, t]` masked next-token NLL (see [`masked_nll`]).
    pub nll: Tensor<2>,
    /// `[1]` MoE auxiliary loss, already weighted by the model (0 for a dense LLM).
    pub aux: Tensor<1>,
    pub moe: Vec<MoeStats>,
}

impl BatchLoss {
    /// `[1]` summed cross-entropy over the scored tokens.
    pub fn ce_sum(&self) -> Tensor<1> {
        self.nll.clone().sum()
    }
}

/// Forward one batch to its per-token loss. The LM head runs on the scored positions only.
pub fn forward_batch(model: &Mm1Model, tensors: BatchTensors) -> Result<BatchLoss, StepError> {
    let out = model.forward_hidden(tensors.input.clone())?; // hidden: [b, t, d]
    let nll = head_nll(model, out.hidden, &tensors);
    Ok(BatchLoss { nll, aux: out.aux_loss, moe: out.moe })
}

/// The LM head and the masked NLL on the decoder's normed hidden states (on the scored rows
/// only when there are any).
///
/// # Shapes
/// - `hidden`: `[b, t, d]` → `[b, t]`
pub(crate) fn head_nll(model: &Mm1Model, hidden: Tensor<3>, tensors: &BatchTensors) -> Tensor<2> {
    match &tensors.scored {
        Some(scored) => scored_nll(model, hidden, scored),
        None => masked_nll(model.logits(hidden), tensors.targets.clone(), tensors.loss_mask.clone()),
    }
}

/// [`masked_nll`] with the LM head and the cross-entropy on the scored rows of `hidden` only,
/// scattered back to `[b, t]` (zero elsewhere): the same values and gradients without the
/// logits of image, prompt and padding positions (MM1 spends 144 image tokens per image).
///
/// # Shapes
/// - `hidden`: `[b, t, d]` → `[b, t]`
fn scored_nll(model: &Mm1Model, hidden: Tensor<3>, scored: &Scored) -> Tensor<2> {
    let ([b, t, d], [n]) = (hidden.dims(), scored.rows.dims());
    let device = hidden.device();
    let rows = hidden.reshape([b * t, d]).select(0, scored.rows.clone()).reshape([1, n, d]); // [1, n, d]
    let all = Tensor::<2>::ones([1, n], &device);
    let nll = masked_nll(model.logits(rows), scored.targets.clone(), all); // [1, n]
    let zeros = Tensor::<1>::zeros([b * t], &device);
    zeros.select_assign(0, scored.rows.clone(), nll.reshape([n]), IndexingUpdateOp::Add).reshape([b, t])
}

/// Training loss of one data source within a step: summed NLL over its scored tokens.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceLoss {
    pub name: String,
    pub nll_sum: f64,
    pub tokens: usize,
}

impl SourceLoss {
    /// Mean NLL per scored token, `None` when the source had no scored token in the step.
    pub fn mean(&self) -> Option<f64> {
        (self.tokens > 0).then(|| self.nll_sum / self.tokens as f64)
    }
}

/// Add a batch's per-token NLL (`[b*t]`, host copy) to the per-source sums.
fn add_source_losses(acc: &mut Vec<SourceLoss>, batch: &Batch, nll: &[f32]) {
    if acc.is_empty() {
        acc.extend(batch.sources.iter().map(|s| SourceLoss {
            name: s.name.clone(),
            nll_sum: 0.0,
            tokens: 0,
        }));
    }
    for ((&scored, &src), &x) in batch.loss_mask.iter().zip(&batch.source_ids).zip(nll) {
        if let Some(s) = acc.get_mut(src as usize).filter(|_| scored) {
            s.nll_sum += x as f64;
            s.tokens += 1;
        }
    }
}

/// What one optimizer step did.
#[derive(Debug, Clone)]
pub struct StepReport {
    /// Mean cross-entropy per scored token over all micro-batches (the logged `loss`).
    pub loss: f64,
    /// The same loss split by the source each scored token came from (`loss/<name>`).
    pub source_loss: Vec<SourceLoss>,
    /// MoE auxiliary loss (mean over micro-batches; 0 for a dense LLM).
    pub aux_loss: f64,
    /// Global gradient norm before clipping (NaN/Inf when the step was skipped for it).
    pub grad_norm: f64,
    pub clipped: bool,
    /// `false` when the loss or a gradient was NaN/Inf and nothing was updated.
    pub applied: bool,
    /// Scored tokens, non-padding tokens and images in the step (over all ranks).
    pub loss_tokens: usize,
    pub tokens: usize,
    pub images: usize,
    /// Per MoE layer: assignments per expert, summed over micro-batches.
    pub expert_load: Vec<Vec<usize>>,
    /// Assignments dropped by the capacity limit, summed over layers and micro-batches.
    pub moe_dropped: usize,
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
        let (out, grads) = batch_grads(&model, optim, tensors, recompute, denom, micro)?;
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
    let grads = sync.reduce_grads(&model, accum.take())?;
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

/// Forward and backward of one micro-batch: the gradients of `ce_sum / denom + aux / micro`.
fn batch_grads(
    model: &Mm1Model,
    optim: &GroupedAdamW,
    tensors: BatchTensors,
    recompute: Recompute,
    denom: f64,
    micro: f64,
) -> Result<(BatchLoss, GradientsParams), StepError> {
    if recompute != Recompute::Nothing {
        return crate::recompute::batch_grads(model, optim, tensors, recompute, denom, micro);
    }
    let out = forward_batch(model, tensors)?;
    let objective = out.ce_sum().div_scalar(denom) + out.aux.clone().div_scalar(micro);
    let grads = optim.grads(objective.backward(), model);
    Ok((out, grads))
}

/// Sum the logged numbers over the ranks in one exchange: loss and aux sums, tokens, images,
/// per-source sums, expert loads and drops. `loss`/`aux_loss` are left as sums.
fn sum_report(r: &mut StepReport, ce: f64, aux: f64, sync: &dyn StepSync) -> Result<(), StepError> {
    let mut v = vec![ce, aux, r.tokens as f64, r.images as f64, r.moe_dropped as f64];
    v.extend(r.source_loss.iter().flat_map(|s| [s.nll_sum, s.tokens as f64]));
    v.extend(r.expert_load.iter().flatten().map(|&n| n as f64));
    let v = sync.sum(v)?;
    (r.loss, r.aux_loss) = (v[0], v[1]);
    (r.tokens, r.images, r.moe_dropped) = (v[2] as usize, v[3] as usize, v[4] as usize);
    let mut rest = v[5..].iter().copied();
    for s in &mut r.source_loss {
        s.nll_sum = rest.next().unwrap_or(0.0);
        s.tokens = rest.next().unwrap_or(0.0) as usize;
    }
    for n in r.expert_load.iter_mut().flatten() {
        *n = rest.next().unwrap_or(0.0) as usize;
    }
    Ok(())
}

fn add_moe_stats(report: &mut StepReport, moe: &[MoeStats]) {
    for (i, s) in moe.iter().enumerate() {
        if report.expert_load.len() <= i {
            report.expert_load.push(vec![0; s.expert_load.len()]);
        }
        for (acc, &n) in report.expert_load[i].iter_mut().zip(&s.expert_load) {
            *acc += n;
        }
        report.moe_dropped += s.dropped;
    }
}

/// Stops the run after too many non-finite steps in a row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NonFiniteGuard {
    pub max_in_a_row: u64,
    pub in_a_row: u64,
    pub total: u64,
}

impl NonFiniteGuard {
    /// Record one step; `Err` with the message to stop on when the limit is reached.
    pub fn record(&mut self, step: u64, report: &StepReport) -> Result<(), String> {
        if report.applied {
            self.in_a_row = 0;
            return Ok(());
        }
        self.in_a_row += 1;
        self.total += 1;
        if self.in_a_row >= self.max_in_a_row {
            return Err(format!(
                "stopping at step {step}: {} steps in a row had a NaN/Inf loss or gradient \
                 (train.max_nonfinite_in_a_row = {}; last loss {}, grad norm {}); \
                 lower optim.lr, check the data, or resume from the last checkpoint",
                self.in_a_row, self.max_in_a_row, report.loss, report.grad_norm
            ));
        }
        Ok(())
    }
}
