//! What a step logs ([`StepReport`]): the loss overall and per data source, the aux loss, the
//! gradient norm, token/image counts and MoE expert loads, summed over the ranks in one exchange.

use mm1_data::Batch;
use mm1_models::MoeStats;

use super::{StepError, StepSync};

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
pub(super) fn add_source_losses(acc: &mut Vec<SourceLoss>, batch: &Batch, nll: &[f32]) {
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

/// Sum the logged numbers over the ranks in one exchange: loss and aux sums, tokens, images,
/// per-source sums, expert loads and drops. `loss`/`aux_loss` are left as sums.
pub(super) fn sum_report(
    r: &mut StepReport,
    ce: f64,
    aux: f64,
    sync: &dyn StepSync,
) -> Result<(), StepError> {
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

pub(super) fn add_moe_stats(report: &mut StepReport, moe: &[MoeStats]) {
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
