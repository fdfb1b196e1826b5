//! Held-out loss per source kind (`[[data.eval.sources]]`): each held-out source is read by
//! its own loader from the start, so every evaluation scores the same batches.

use burn::module::Module;
use burn::tensor::Device;
use mm1_data::{DataConfig, Loader, PipelineShape, SourceConfig};
use mm1_models::Mm1Model;

use crate::eval::{OwnedResults, WorkSplit};
use crate::step::{StepError, batch_to_tensors, forward_batch};

/// Loss of one held-out source.
#[derive(Debug, Clone, PartialEq)]
pub struct HeldOutLoss {
    /// The `[[data.eval.sources]]` name.
    pub name: String,
    /// `caption`, `interleaved` or `text`.
    pub kind: String,
    /// Mean cross-entropy per scored token.
    pub loss: f64,
    pub tokens: usize,
}

/// Errors of a held-out loss pass.
#[derive(Debug, thiserror::Error)]
pub enum HeldOutError {
    #[error("eval source `{name}`: {source}")]
    Data { name: String, source: mm1_data::DataError },
    #[error(transparent)]
    Step(#[from] StepError),
    #[error("eval source `{name}`: {message}")]
    Shared { name: String, message: String },
}

/// Score `batches` batches of every held-out source with the model in inference mode.
pub fn evaluate(
    model: &Mm1Model,
    data: &DataConfig,
    shape: PipelineShape,
    batches: usize,
    device: &Device,
) -> Result<Vec<HeldOutLoss>, HeldOutError> {
    evaluate_split(model, data, shape, batches, device, &WorkSplit::single())
}

/// [`evaluate`] shared among ranks: every rank reads every batch, scores its own (`split`), and
/// the per-batch sums are added in batch order on every rank, so the result equals one process's.
pub fn evaluate_split(
    model: &Mm1Model,
    data: &DataConfig,
    shape: PipelineShape,
    batches: usize,
    device: &Device,
    split: &WorkSplit,
) -> Result<Vec<HeldOutLoss>, HeldOutError> {
    let model = model.valid(); // no autodiff graph
    let device = device.clone().inner();
    let mut out = Vec::new();
    for src in &data.eval.sources {
        let cfg = DataConfig { sources: vec![SourceConfig { weight: 1.0, ..src.clone() }], ..data.clone() };
        let err = |source| HeldOutError::Data { name: src.name.clone(), source };
        let mut loader = Loader::new(&cfg, shape, 0, 1).map_err(err)?;
        let mut tokens = 0usize;
        let mut mine = OwnedResults::default(); // this rank's batches' cross-entropy sums
        for i in 0..batches {
            let batch = loader.next_batch().map_err(err)?;
            tokens += batch.loss_tokens();
            if split.owns(i) {
                mine.push_with(split, || batch_ce_sum(&model, &batch, &device));
            }
        }
        let sums = split.merge_results(batches, mine);
        let sum: f64 =
            sums.map_err(|message| HeldOutError::Shared { name: src.name.clone(), message })?.iter().sum();
        out.push(HeldOutLoss {
            name: src.name.clone(),
            kind: src.kind.name().to_string(),
            loss: sum / tokens.max(1) as f64,
            tokens,
        });
    }
    Ok(out)
}

/// Sum of the cross-entropy over the scored tokens of `batch`.
fn batch_ce_sum(model: &Mm1Model, batch: &mm1_data::Batch, device: &Device) -> Result<f64, StepError> {
    let ce = forward_batch(model, batch_to_tensors(batch, device)?)?.ce_sum();
    Ok(ce.into_scalar::<f32>() as f64)
}

/// Token-weighted mean over sources.
pub fn mean_loss(losses: &[HeldOutLoss]) -> Option<f64> {
    let tokens: usize = losses.iter().map(|l| l.tokens).sum();
    (tokens > 0).then(|| losses.iter().map(|l| l.loss * l.tokens as f64).sum::<f64>() / tokens as f64)
}
