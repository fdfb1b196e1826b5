//! The evaluation loop, independent of the model: for every task, every shot count and every query,
//! build the prompt, ask `generate` for a continuation, cut out the answer, score the set (CIDEr-D
//! for captions, VQA accuracy and exact match for VQA) and collect `eval.json`. Beside every
//! generative score: the same model on a blank query image and the majority answer. Closed-set
//! tasks also get a 0-shot forced-choice score ([`super::choice`]): the answer of the task's closed
//! set with the highest log-likelihood, which sees differences long before the model has learnt
//! to generate the answer format. Few-shot and 0-shot scores stay separate keys and are never
//! averaged into one number (a 4-shot score that fails on format would hide a 0-shot effect).

use std::collections::BTreeMap;
use std::path::Path;

use serde::Serialize;

use super::EvalError;
use super::choice::{ChoiceResult, Majority, forced_choice, majority};
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
    /// Score every shot count (and forced choice) again with a blank query image.
    pub blank_baseline: bool,
    /// Forced choice runs on tasks whose closed answer set has at most this many answers (one
    /// forward row per answer and query); `0` turns it off.
    pub max_choices: usize,
    /// Tasks scored at the shot counts above 0 (empty: every task). Few-shot prompts are the
    /// longest to generate from, and a study that needs few-shot scores on a few tasks should not
    /// pay for them on every one; every task keeps its 0-shot scores.
    pub fewshot_tasks: Vec<String>,
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
            blank_baseline: true,
            max_choices: 32,
            fewshot_tasks: vec![],
        }
    }
}

impl EvalOptions {
    /// The shot counts `task` is scored at: every one of `shots` when `fewshot_tasks` is empty or
    /// names the task, else 0 only.
    pub fn shots_for(&self, task: &str) -> Vec<usize> {
        let few = self.fewshot_tasks.is_empty() || self.fewshot_tasks.iter().any(|t| t == task);
        self.shots.iter().copied().filter(|&k| k == 0 || few).collect()
    }

    /// `Err` names each of `fewshot_tasks` that is not one of `tasks`, and the tasks there are.
    pub fn check_fewshot_tasks(&self, tasks: &[EvalTask]) -> Result<(), EvalError> {
        let unknown: Vec<&str> = self
            .fewshot_tasks
            .iter()
            .filter(|n| !tasks.iter().any(|t| &t.name == *n))
            .map(String::as_str)
            .collect();
        if unknown.is_empty() {
            return Ok(());
        }
        let names: Vec<&str> = tasks.iter().map(|t| t.name.as_str()).collect();
        Err(EvalError::Invalid(format!(
            "fewshot_tasks names {} that the evaluation does not have (its tasks: {})",
            unknown.join(", "),
            names.join(", ")
        )))
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
    /// The task's primary metric ([`primary_metric`]) per query, in query order: its mean is
    /// `metrics[primary]`, and the report bootstraps over it.
    pub item_scores: Vec<f64>,
    /// The same prompts with a blank query image (empty when `blank_baseline` is off).
    pub blank_metrics: BTreeMap<String, f64>,
    pub blank_item_scores: Vec<f64>,
    pub predictions: Vec<Prediction>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TaskResult {
    pub name: String,
    #[serde(flatten)]
    pub kind: TaskKind,
    /// What the task needs (`resolution`, `tokens`, `none`); null for a task not built for a gate.
    pub gate: Option<String>,
    /// The metric `item_scores` hold.
    pub primary_metric: String,
    pub queries: usize,
    pub support: usize,
    pub results: Vec<ShotResult>,
    /// 0-shot forced choice over the closed answer set (closed-set tasks only).
    pub choice: Option<ChoiceResult>,
    /// One constant answer for every query: the most frequent one.
    pub majority: Majority,
}

/// Contents of `eval.json`. `scores` is flat for reports and logs: `task/Nshot/metric`,
/// `task/Nshot/metric_blank` (blank query image), `task/0shot/choice_accuracy[_blank]` and
/// `task/majority/metric`. There is no average over shot counts.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EvalReport {
    pub step: Option<u64>,
    /// Number of ranks that shared the generation (1: one process did it all).
    pub ranks: usize,
    pub protocol: EvalOptions,
    pub scores: BTreeMap<String, f64>,
    pub tasks: Vec<TaskResult>,
}

/// The metric a task's item scores, forced choice and reports use: CIDEr-D for captions, VQA
/// accuracy for VQA.
pub fn primary_metric(kind: TaskKind) -> &'static str {
    match kind {
        TaskKind::Caption => "cider",
        TaskKind::Vqa { .. } => "vqa_accuracy",
    }
}

/// A model's raw continuation of a prompt.
pub type Generate<'a> = dyn FnMut(TaskKind, &Prompt) -> Result<String, EvalError> + 'a;
/// The log-likelihood of each continuation text (followed by `<end_of_chunk>`) after a prompt.
pub type LogLikelihood<'a> = dyn FnMut(&Prompt, &[String]) -> Result<Vec<f64>, EvalError> + 'a;

/// A per-item VQA metric: prediction, ground-truth answers → score.
pub(super) type Metric = fn(&str, &[String]) -> f64;

/// The per-item accuracy and exact-match functions of a VQA answer scheme.
pub(super) fn vqa_metrics(scheme: AnswerScheme) -> (Metric, Metric) {
    match scheme {
        AnswerScheme::Annotators => (vqa_accuracy, exact_match),
        AnswerScheme::Alternatives => (alternatives_accuracy, alternatives_exact_match),
    }
}

/// Scores of one set of outputs.
pub fn score(
    kind: TaskKind,
    items: &[EvalItem],
    outputs: &[String],
) -> Result<BTreeMap<String, f64>, EvalError> {
    Ok(score_items(kind, items, outputs)?.0)
}

/// Scores of one set of outputs, and the primary metric per item.
fn score_items(
    kind: TaskKind,
    items: &[EvalItem],
    outputs: &[String],
) -> Result<(BTreeMap<String, f64>, Vec<f64>), EvalError> {
    let mut m = BTreeMap::new();
    let n = items.len().max(1) as f64;
    let per_item = match kind {
        TaskKind::Caption => {
            let cands: Vec<String> = outputs.iter().map(|o| ptb_tokenize(o)).collect();
            let refs: Vec<Vec<String>> =
                items.iter().map(|it| it.truth.iter().map(|r| ptb_tokenize(r)).collect()).collect();
            let c = cider_d(&cands, &refs)?;
            m.insert("cider".into(), c.corpus);
            c.per_item
        }
        TaskKind::Vqa { scheme } => {
            let (acc, em) = vqa_metrics(scheme);
            let each =
                |f: Metric| items.iter().zip(outputs).map(|(it, o)| f(o, &it.truth)).collect::<Vec<_>>();
            let accs = each(acc);
            m.insert("vqa_accuracy".into(), accs.iter().sum::<f64>() / n);
            m.insert("exact_match".into(), each(em).iter().sum::<f64>() / n);
            accs
        }
    };
    Ok((m, per_item))
}

/// Runs every task at every shot count. `generate(kind, prompt)` returns the model's raw
/// continuation of the prompt.
pub fn evaluate_tasks(
    tasks: &[EvalTask],
    opts: &EvalOptions,
    step: Option<u64>,
    generate: &mut Generate,
) -> Result<EvalReport, EvalError> {
    evaluate_tasks_split(tasks, opts, step, generate, None, &WorkSplit::single())
}

/// [`evaluate_tasks`] shared among ranks: this rank generates the continuations of its queries
/// only (`split`), and every rank returns the whole report. With `loglik`, closed-set tasks also
/// get the 0-shot forced-choice score.
pub fn evaluate_tasks_split(
    tasks: &[EvalTask],
    opts: &EvalOptions,
    step: Option<u64>,
    generate: &mut Generate,
    mut loglik: Option<&mut LogLikelihood>,
    split: &WorkSplit,
) -> Result<EvalReport, EvalError> {
    let mut report = EvalReport {
        step,
        ranks: split.world,
        protocol: opts.clone(),
        scores: BTreeMap::new(),
        tasks: vec![],
    };
    opts.check_fewshot_tasks(tasks)?;
    for task in tasks {
        let queries = &task.queries[..opts.limit.unwrap_or(usize::MAX).min(task.queries.len())];
        let majority = majority(task, queries)?;
        for (m, v) in &majority.metrics {
            report.scores.insert(format!("{}/majority/{m}", task.name), *v);
        }
        let mut result = TaskResult {
            name: task.name.clone(),
            kind: task.kind,
            gate: task.gate.clone(),
            primary_metric: primary_metric(task.kind).into(),
            queries: queries.len(),
            support: task.support.len(),
            results: vec![],
            choice: None,
            majority,
        };
        for k in opts.shots_for(&task.name) {
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
            let outputs = answers(task.kind, &prompts, generate, split)?;
            let (metrics, item_scores) = score_items(task.kind, queries, &outputs)?;
            let (blank_metrics, blank_item_scores) = if opts.blank_baseline {
                let blank: Vec<Prompt> =
                    prompts.iter().cloned().map(|p| Prompt { blank_query: true, ..p }).collect();
                score_items(task.kind, queries, &answers(task.kind, &blank, generate, split)?)?
            } else {
                (BTreeMap::new(), vec![])
            };
            for (m, v) in &metrics {
                report.scores.insert(format!("{}/{k}shot/{m}", task.name), *v);
            }
            for (m, v) in &blank_metrics {
                report.scores.insert(format!("{}/{k}shot/{m}_blank", task.name), *v);
            }
            let predictions: Vec<Prediction> = queries
                .iter()
                .zip(prompts)
                .zip(outputs)
                .map(|((q, p), output)| Prediction { id: q.id.clone(), demos: p.demos, output })
                .collect();
            result.results.push(ShotResult {
                shots: k,
                metrics,
                item_scores,
                blank_metrics,
                blank_item_scores,
                predictions,
            });
        }
        let closed = !task.choices.is_empty() && task.choices.len() <= opts.max_choices;
        if let (Some(ll), true) = (loglik.as_deref_mut(), closed) {
            let choice = forced_choice(task, queries, opts, ll, split)?;
            report.scores.insert(format!("{}/0shot/choice_accuracy", task.name), choice.accuracy);
            if let Some(b) = choice.blank_accuracy {
                report.scores.insert(format!("{}/0shot/choice_accuracy_blank", task.name), b);
            }
            result.choice = Some(choice);
        }
        report.tasks.push(result);
    }
    Ok(report)
}

/// Every prompt's answer (the postprocessed continuation).
fn answers(
    kind: TaskKind,
    prompts: &[Prompt],
    generate: &mut Generate,
    split: &WorkSplit,
) -> Result<Vec<String>, EvalError> {
    let raw = shared(prompts.len(), &mut |i| generate(kind, &prompts[i]), split)?;
    Ok(raw.iter().map(|r| postprocess(kind, r)).collect())
}

/// `compute(i)` for every item `i < n`, shared among ranks: a rank's failure is handed to all of
/// them with the results (so that none waits for the exchange) and reported on every rank.
pub(super) fn shared<T>(
    n: usize,
    compute: &mut dyn FnMut(usize) -> Result<T, EvalError>,
    split: &WorkSplit,
) -> Result<Vec<T>, EvalError>
where
    T: serde::Serialize + serde::de::DeserializeOwned,
{
    if split.world == 1 {
        return (0..n).map(compute).collect();
    }
    let mut mine = OwnedResults::default();
    for i in (0..n).filter(|i| split.owns(*i)) {
        mine.push_with(split, || compute(i));
    }
    split.merge_results(n, mine).map_err(EvalError::Invalid)
}

/// Writes `eval.json` (pretty JSON).
pub fn write_eval_json(report: &EvalReport, path: &Path) -> Result<(), EvalError> {
    let text =
        serde_json::to_string_pretty(report).map_err(|e| EvalError::Invalid(format!("eval.json: {e}")))?;
    std::fs::write(path, text).map_err(|e| EvalError::io(path, e))
}
