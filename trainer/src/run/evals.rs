//! Evaluation inside the loop: held-out loss per source every `eval.every` steps and the few-shot
//! benchmark every `eval.fewshot.every` steps (both also at the last step). Data-parallel ranks
//! share the work (each scores every `world`-th held-out batch and generates for every
//! `world`-th query, then they exchange results, so every rank ends with the same scores as one
//! process); with expert parallelism every rank runs the whole evaluation in lockstep, since each
//! forward pass needs the whole EP group. Only the main rank writes `eval.json` and logs.

use std::path::Path;

use burn::module::Module;
use burn::tensor::Device;

use super::RunError;
use super::metrics::LogSink;
use crate::config::RunConfig;
use crate::eval::WorkSplit;
use crate::eval::heldout::{evaluate_split, mean_loss};
use mm1_models::Mm1Model;

/// What an evaluation step produced: scalars to log, and the held-out losses per source.
#[derive(Debug, Default)]
pub struct EvalOutcome {
    pub values: Vec<(String, f64)>,
    pub heldout: Vec<(String, f64)>,
    pub fewshot: Vec<(String, f64)>,
}

/// Before step 0: the few-shot tasks load and their longest prompts fit the model's context.
pub fn check_fewshot(cfg: &RunConfig) -> Result<(), RunError> {
    let f = &cfg.eval.fewshot;
    if f.every == 0 {
        return Ok(());
    }
    let opts = f.options().map_err(|e| RunError::Stop(format!("eval.fewshot.zero_shot: {e}")))?;
    let tasks = crate::eval::synth_tasks(cfg, f.support_size)?;
    crate::eval::check_prompt_lengths(cfg, &tasks, &opts)?;
    Ok(())
}

/// Run the evaluations due after `step` of `total`, this rank's share of them as `split` says
/// (every rank returns the whole result).
pub fn evaluate_due(
    model: &Mm1Model,
    cfg: &RunConfig,
    (step, total): (u64, u64),
    (run_dir, split): (Option<&Path>, &WorkSplit),
    device: &Device,
    log: &LogSink,
) -> Result<EvalOutcome, RunError> {
    let mut out = EvalOutcome::default();
    let heldout_due = cfg.eval.every > 0 && (step.is_multiple_of(cfg.eval.every) || step == total);
    if heldout_due && !cfg.data.eval.sources.is_empty() {
        let res = evaluate_split(model, &cfg.data, cfg.pipeline_shape(), cfg.eval.batches, device, split)?;
        out.values = res.iter().map(|r| (format!("eval/loss/{}", r.name), r.loss)).collect();
        if let Some(m) = mean_loss(&res) {
            out.values.push(("eval/loss".into(), m));
        }
        log.message(&format!("eval at step {step}: {}", summary(&out.values)));
        out.heldout = res.into_iter().map(|r| (r.name, r.loss)).collect();
    }
    let fewshot = &cfg.eval.fewshot;
    if fewshot.due(step, total) {
        let opts = fewshot.options().map_err(|e| RunError::Stop(format!("eval.fewshot.zero_shot: {e}")))?;
        let inference = model.valid();
        let scores = crate::eval::eval_during_training(
            &inference,
            cfg,
            step,
            run_dir,
            &opts,
            fewshot.support_size,
            &device.clone().inner(),
            split,
        )?;
        // 0-shot forced choice and generative scores (few-shot ones are in the logs, not averaged in).
        let zero_shot: Vec<(String, f64)> = scores
            .iter()
            .filter(|(k, _)| k.contains("/0shot/") && !k.ends_with("_blank") && !k.ends_with("exact_match"))
            .cloned()
            .collect();
        log.message(&format!("few-shot at step {step}: {}", summary(&zero_shot)));
        out.values.extend(scores.iter().cloned());
        out.fewshot = scores;
    }
    Ok(out)
}

fn summary(values: &[(String, f64)]) -> String {
    let text: Vec<String> = values.iter().map(|(k, v)| format!("{k} {v:.4}")).collect();
    text.join(", ")
}
