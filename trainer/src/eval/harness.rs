//! The few-shot evaluation loop, independent of the model: for every task, every shot count and
//! every query, build the prompt, ask `generate` for a continuation, cut out the answer, score the
//! set (CIDEr-D for captions, VQA accuracy and exact match for VQA) and collect `eval.json`.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Serialize;

use super::EvalError;
use super::cider::cider_d;
use super::prompt::{Prompt, PromptTemplate, ZeroShot, build_prompt, postprocess};
use super::ptb::ptb_tokenize;
use super::split::{OwnedResults, WorkSplit};
use super::tasks::{AnswerScheme, EvalItem, EvalTask, TaskKind};
use super::vqa::{alternatives_accuracy, alternatives_exact_match, exact_match, vqa_accuracy};

/// Evaluation protocol (recorded in `eval.json`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EvalOptions {
    /// Demonstration counts, e.g. `[0, 4, 8]`.
    pub shots: Vec<usize>,
    pub zero_shot: ZeroShot,
    pub template: PromptTemplate,
    /// Seed of the demonstration draws.
    pub seed: u64,
    /// Evaluate only the first `limit` queries of each task.
    pub limit: Option<usize>,
    /// Longest continuation generated (fewer when a long few-shot prompt leaves less room in the
    /// model's context).
    pub max_new_tokens: usize,
}

impl Default for EvalOptions {
    fn default() -> Self {
        Self {
            shots: vec![0, 4, 8],
            zero_shot: ZeroShot::Plain,
            template: PromptTemplate::default(),
            seed: 0,
            limit: None,
            max_new_tokens: 24,
        }
    }
}

/// One query's result.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Prediction {
    pub id: String,
    pub demos: Vec<String>,
    pub output: String,
}

/// A task at one shot count.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ShotResult {
    pub shots: usize,
    pub metrics: BTreeMap<String, f64>,
    pub predictions: Vec<Prediction>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TaskResult {
    pub name: String,
    #[serde(flatten)]
    pub kind: TaskKind,
    pub queries: usize,
    pub support: usize,
    pub results: Vec<ShotResult>,
}

/// Contents of `eval.json`. `scores` is flat for reports and logs: `task/Nshot/metric` and
/// `task/avg/metric` (mean over shot counts).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EvalReport {
    pub step: Option<u64>,
    /// Number of ranks that shared the generation (1: one process did it all).
    pub ranks: usize,
    pub protocol: EvalOptions,
    pub scores: BTreeMap<String, f64>,
    pub tasks: Vec<TaskResult>,
}

/// A per-item VQA metric: prediction, ground-truth answers → score.
type Metric = fn(&str, &[String]) -> f64;

/// Scores of one set of outputs.
pub fn score(
    kind: TaskKind,
    items: &[EvalItem],
    outputs: &[String],
) -> Result<BTreeMap<String, f64>, EvalError> {
    let mut m = BTreeMap::new();
    let n = items.len().max(1) as f64;
    match kind {
        TaskKind::Caption => {
            let cands: Vec<String> = outputs.iter().map(|o| ptb_tokenize(o)).collect();
            let refs: Vec<Vec<String>> =
                items.iter().map(|it| it.truth.iter().map(|r| ptb_tokenize(r)).collect()).collect();
            m.insert("cider".into(), cider_d(&cands, &refs)?.corpus);
        }
        TaskKind::Vqa { scheme } => {
            let (acc, em): (Metric, Metric) = match scheme {
                AnswerScheme::Annotators => (vqa_accuracy, exact_match),
                AnswerScheme::Alternatives => (alternatives_accuracy, alternatives_exact_match),
            };
            let sum = |f: Metric| items.iter().zip(outputs).map(|(it, o)| f(o, &it.truth)).sum::<f64>();
            m.insert("vqa_accuracy".into(), sum(acc) / n);
            m.insert("exact_match".into(), sum(em) / n);
        }
    }
    Ok(m)
}

/// Runs every task at every shot count. `generate(kind, prompt)` returns the model's raw
/// continuation of the prompt.
pub fn evaluate_tasks(
    tasks: &[EvalTask],
    opts: &EvalOptions,
    step: Option<u64>,
    generate: &mut dyn FnMut(TaskKind, &Prompt) -> Result<String, EvalError>,
) -> Result<EvalReport, EvalError> {
    evaluate_tasks_split(tasks, opts, step, generate, &WorkSplit::single())
}

/// [`evaluate_tasks`] shared among ranks: this rank generates the continuations of its queries
/// only (`split`), and every rank returns the whole report.
pub fn evaluate_tasks_split(
    tasks: &[EvalTask],
    opts: &EvalOptions,
    step: Option<u64>,
    generate: &mut dyn FnMut(TaskKind, &Prompt) -> Result<String, EvalError>,
    split: &WorkSplit,
) -> Result<EvalReport, EvalError> {
    let mut report = EvalReport {
        step,
        ranks: split.world,
        protocol: opts.clone(),
        scores: BTreeMap::new(),
        tasks: vec![],
    };
    for task in tasks {
        let queries = &task.queries[..opts.limit.unwrap_or(usize::MAX).min(task.queries.len())];
        let mut result = TaskResult {
            name: task.name.clone(),
            kind: task.kind,
            queries: queries.len(),
            support: task.support.len(),
            results: vec![],
        };
        for &k in &opts.shots {
            if k > task.support.len() {
                return Err(EvalError::Invalid(format!(
                    "task {}: {k} shots need at least {k} support items, the pool has {}",
                    task.name,
                    task.support.len()
                )));
            }
            let prompts: Vec<Prompt> = queries
                .iter()
                .enumerate()
                .map(|(i, q)| {
                    build_prompt(task.kind, q, i, &task.support, k, opts.zero_shot, &opts.template, opts.seed)
                })
                .collect();
            let raw = continuations(task.kind, &prompts, generate, split)?;
            let predictions: Vec<Prediction> = queries
                .iter()
                .zip(prompts)
                .zip(raw)
                .map(|((q, p), raw)| Prediction {
                    id: q.id.clone(),
                    demos: p.demos,
                    output: postprocess(task.kind, &raw),
                })
                .collect();
            let outputs: Vec<String> = predictions.iter().map(|p| p.output.clone()).collect();
            let metrics = score(task.kind, queries, &outputs)?;
            for (m, v) in &metrics {
                report.scores.insert(format!("{}/{k}shot/{m}", task.name), *v);
            }
            result.results.push(ShotResult { shots: k, metrics, predictions });
        }
        let metric_names: Vec<String> =
            result.results.first().map(|r| r.metrics.keys().cloned().collect()).unwrap_or_default();
        for m in metric_names {
            let vals: Vec<f64> = result.results.iter().filter_map(|r| r.metrics.get(&m).copied()).collect();
            report
                .scores
                .insert(format!("{}/avg/{m}", task.name), vals.iter().sum::<f64>() / vals.len() as f64);
        }
        report.tasks.push(result);
    }
    Ok(report)
}

/// Every prompt's raw continuation. Shared among ranks, a rank's failure is handed to all of them
/// with the results (so that none waits for the exchange) and reported on every rank.
fn continuations(
    kind: TaskKind,
    prompts: &[Prompt],
    generate: &mut dyn FnMut(TaskKind, &Prompt) -> Result<String, EvalError>,
    split: &WorkSplit,
) -> Result<Vec<String>, EvalError> {
    if split.world == 1 {
        return prompts.iter().map(|p| generate(kind, p)).collect();
    }
    let mut mine = OwnedResults::default();
    for (_, p) in prompts.iter().enumerate().filter(|(i, _)| split.owns(*i)) {
        mine.push_with(split, || generate(kind, p));
    }
    split.merge_results(prompts.len(), mine).map_err(EvalError::Invalid)
}

/// Writes `eval.json` (pretty JSON).
pub fn write_eval_json(report: &EvalReport, path: &Path) -> Result<(), EvalError> {
    let text =
        serde_json::to_string_pretty(report).map_err(|e| EvalError::Invalid(format!("eval.json: {e}")))?;
    std::fs::write(path, text).map_err(|e| EvalError::io(path, e))
}
