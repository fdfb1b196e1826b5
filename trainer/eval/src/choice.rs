//! Scores that see small effects, and the floors they are read against.
//!
//! Forced choice (the multiple-choice protocol of lm-evaluation-harness, used for VQA by e.g.
//! Idefics/LLaVA "option" evaluations): the 0-shot prompt followed by each answer of the task's
//! closed set in the template's answer format (`" {answer}."` + `<end_of_chunk>`); the answer with
//! the highest summed log-likelihood is the pick (ties: the first in the set). It needs no learnt
//! answer format, so a model that ranks the right answer first scores before it generates it.
//!
//! The majority baseline answers every query with the task's most frequent answer (first answer of
//! each query; ties: the first seen): what a model that ignores the image can reach at best by a
//! constant. The blank-image baseline (the same model with a blank query image) is in the harness.

use std::collections::BTreeMap;

use serde::Serialize;

use super::EvalError;
use super::harness::{EvalOptions, LogLikelihood, Metric, score, shared, vqa_metrics};
use super::prompt::{Prompt, build_prompt, fill};
use super::split::WorkSplit;
use super::tasks::{EvalItem, EvalTask, TaskKind};

/// 0-shot forced choice over a task's closed answer set.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ChoiceResult {
    pub choices: Vec<String>,
    /// Mean of `item_scores`.
    pub accuracy: f64,
    /// The task's primary metric of each query's pick (VQA accuracy of the picked answer).
    pub item_scores: Vec<f64>,
    /// Each query's pick.
    pub picks: Vec<String>,
    /// The same with a blank query image (`None` when `blank_baseline` is off).
    pub blank_accuracy: Option<f64>,
    pub blank_item_scores: Vec<f64>,
}

/// The majority-answer baseline of a task.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Majority {
    pub answer: String,
    /// The generative metrics of answering `answer` to every query, plus `choice_accuracy` for
    /// closed-set tasks (the same per-item metric as forced choice).
    pub metrics: BTreeMap<String, f64>,
}

/// The most frequent first answer/reference of the queries and its scores.
pub fn majority(task: &EvalTask, queries: &[EvalItem]) -> Result<Majority, EvalError> {
    let mut counts: Vec<(String, usize)> = Vec::new();
    for q in queries {
        let Some(a) = q.truth.first() else { continue };
        match counts.iter_mut().find(|(x, _)| x == a) {
            Some((_, c)) => *c += 1,
            None => counts.push((a.clone(), 1)),
        }
    }
    // max_by_key keeps the last maximum; reversed, the first seen wins ties.
    let answer = counts.iter().rev().max_by_key(|(_, c)| *c).map(|(a, _)| a.clone()).unwrap_or_default();
    let outputs = vec![answer.clone(); queries.len()];
    let mut metrics = score(task.kind, queries, &outputs)?;
    if let TaskKind::Vqa { scheme } = task.kind
        && !task.choices.is_empty()
    {
        let acc: Metric = vqa_metrics(scheme).0;
        let n = queries.len().max(1) as f64;
        metrics.insert(
            "choice_accuracy".into(),
            queries.iter().map(|q| acc(&answer, &q.truth)).sum::<f64>() / n,
        );
    }
    Ok(Majority { answer, metrics })
}

/// Index of the largest value (the first of equal ones).
pub fn argmax(values: &[f64]) -> usize {
    let mut best = 0;
    for (i, v) in values.iter().enumerate() {
        if *v > values[best] {
            best = i;
        }
    }
    best
}

/// Forced choice on the 0-shot prompts of `queries` (and, with `blank_baseline`, on the same prompts
/// with a blank query image). `loglik(prompt, continuations)` scores each continuation text.
pub fn forced_choice(
    task: &EvalTask,
    queries: &[EvalItem],
    opts: &EvalOptions,
    loglik: &mut LogLikelihood,
    split: &WorkSplit,
) -> Result<ChoiceResult, EvalError> {
    let TaskKind::Vqa { scheme } = task.kind else {
        return Err(EvalError::Invalid(format!(
            "task {}: forced choice needs a closed-set VQA task",
            task.name
        )));
    };
    let acc: Metric = vqa_metrics(scheme).0;
    let continuations: Vec<String> =
        task.choices.iter().map(|c| fill(&opts.template.vqa_answer, "", c)).collect();
    let prompts: Vec<Prompt> = queries
        .iter()
        .enumerate()
        .map(|(i, q)| {
            build_prompt(task.kind, q, i, &task.support, 0, opts.zero_shot, &opts.template, opts.seed)
        })
        .collect();
    let mut run = |prompts: &[Prompt]| -> Result<(Vec<String>, Vec<f64>), EvalError> {
        let lls = shared(prompts.len(), &mut |i| loglik(&prompts[i], &continuations), split)?;
        let mut picks = Vec::with_capacity(lls.len());
        for l in &lls {
            if l.len() != task.choices.len() {
                return Err(EvalError::Invalid(format!(
                    "task {}: {} log-likelihoods for {} choices",
                    task.name,
                    l.len(),
                    task.choices.len()
                )));
            }
            picks.push(task.choices[argmax(l)].clone());
        }
        let scores = picks.iter().zip(queries).map(|(p, q)| acc(p, &q.truth)).collect();
        Ok((picks, scores))
    };
    let (picks, item_scores) = run(&prompts)?;
    let (blank_accuracy, blank_item_scores) = if opts.blank_baseline {
        let blank: Vec<Prompt> = prompts.iter().cloned().map(|p| Prompt { blank_query: true, ..p }).collect();
        let (_, s) = run(&blank)?;
        (Some(mean(&s)), s)
    } else {
        (None, vec![])
    };
    Ok(ChoiceResult {
        choices: task.choices.clone(),
        accuracy: mean(&item_scores),
        item_scores,
        picks,
        blank_accuracy,
        blank_item_scores,
    })
}

fn mean(v: &[f64]) -> f64 {
    if v.is_empty() { 0.0 } else { v.iter().sum::<f64>() / v.len() as f64 }
}
