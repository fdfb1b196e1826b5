//! The loss of one micro-batch: forward to the decoder's hidden states, then the LM head and
//! the masked next-token NLL on the scored positions only, plus the MoE auxiliary loss.

use burn::tensor::{IndexingUpdateOp, Int, Tensor};
use mm1_models::{Mm1Model, MoeStats};

use super::{BatchTensors, Scored, StepError};

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
