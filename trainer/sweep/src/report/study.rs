//! Statistics of a study: per task and arm, the headline 0-shot score's mean with a 95 % interval
//! over seeds (Student t) and over items (bootstrap); each arm's paired difference against the
//! control arm (the base config, paired by seed); and `runs.jsonl`, one line per (run, task), from
//! which every number of the report can be recomputed.
//!
//! Wording: a difference is an "effect" only when its interval over seeds excludes 0 (seeds vary
//! initialisation and data order, so they are the unit a rerun would resample); otherwise "not
//! separated". The item interval says how much of the spread the finite eval set alone explains.

use serde_json::{Value as Json, json};

use super::collect::{SweepData, TaskScore};
use super::stats::{Interval, bootstrap_interval, t_interval, verdict};

/// Resamples of the item bootstrap.
pub const BOOTSTRAP_REPS: usize = 2000;
/// Seed of the item bootstrap (fixed: the same run folders give the same report).
pub const BOOTSTRAP_SEED: u64 = 0x6d6d_3162_6f6f_7473;

/// One task in one arm over its finished seeds.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskArm {
    pub arm: usize,
    pub task: String,
    pub gate: Option<String>,
    pub metric: String,
    /// `(seed, score)` of every finished run.
    pub scores: Vec<(u64, f64)>,
    pub mean: f64,
    /// Over seeds (t, `None` below 2 seeds).
    pub seeds: Option<Interval>,
    /// Over items: bootstrap of the per-item score averaged over seeds (`None` when the seeds'
    /// item lists differ in length or are missing).
    pub items: Option<Interval>,
    pub blank_image: Option<f64>,
    pub majority: Option<f64>,
    pub n_items: usize,
}

/// An arm's score minus the control's on one task.
#[derive(Debug, Clone, PartialEq)]
pub struct PairedDiff {
    pub arm: usize,
    pub task: String,
    /// Seeds finished in both arms.
    pub seeds_used: Vec<u64>,
    /// Mean and t interval of the per-seed differences.
    pub by_seed: Option<Interval>,
    /// Bootstrap over items of the per-item difference (averaged over the common seeds).
    pub by_item: Option<Interval>,
    /// "effect" or "not separated", from `by_seed`.
    pub verdict: &'static str,
}

/// Every task × arm summary and every paired difference of a sweep.
#[derive(Debug, Clone, PartialEq)]
pub struct Study {
    /// The arm with an empty delta (the base config), if the sweep has one.
    pub control: Option<usize>,
    pub per_arm: Vec<TaskArm>,
    pub diffs: Vec<PairedDiff>,
}

fn mean(v: &[f64]) -> Option<f64> {
    (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
}

/// Item scores averaged over runs (`None` unless every run has the same number of items).
fn item_means(runs: &[&TaskScore]) -> Option<Vec<f64>> {
    let n = runs.first()?.item_scores.len();
    if n == 0 || runs.iter().any(|r| r.item_scores.len() != n) {
        return None;
    }
    Some((0..n).map(|i| runs.iter().map(|r| r.item_scores[i]).sum::<f64>() / runs.len() as f64).collect())
}

/// `(seed, task score)` of the finished runs of an arm.
fn finished_scores<'a>(d: &'a SweepData, arm: usize, task: &str) -> Vec<(u64, &'a TaskScore)> {
    d.arms[arm]
        .runs
        .iter()
        .filter(|r| r.finished)
        .filter_map(|r| r.tasks.iter().find(|t| t.task == task).map(|t| (r.seed, t)))
        .collect()
}

/// The study statistics of a collected sweep.
pub fn study(d: &SweepData) -> Study {
    let control = d.plan.arms.iter().position(|a| a.delta.is_empty());
    let mut tasks: Vec<String> = vec![];
    for r in d.arms.iter().flat_map(|a| &a.runs) {
        for t in &r.tasks {
            if !tasks.contains(&t.task) {
                tasks.push(t.task.clone());
            }
        }
    }
    let mut per_arm = vec![];
    let mut diffs = vec![];
    for task in &tasks {
        for a in &d.arms {
            let runs = finished_scores(d, a.index, task);
            let Some(&(_, first)) = runs.first() else { continue };
            let values: Vec<f64> = runs.iter().map(|(_, t)| t.score).collect();
            let only: Vec<&TaskScore> = runs.iter().map(|(_, t)| *t).collect();
            let opt_mean = |f: fn(&TaskScore) -> Option<f64>| {
                mean(&only.iter().filter_map(|t| f(t)).collect::<Vec<_>>())
            };
            per_arm.push(TaskArm {
                arm: a.index,
                task: task.clone(),
                gate: first.gate.clone(),
                metric: first.metric.clone(),
                scores: runs.iter().map(|(s, t)| (*s, t.score)).collect(),
                mean: mean(&values).unwrap_or(f64::NAN),
                seeds: t_interval(&values),
                items: item_means(&only).and_then(|m| bootstrap_interval(&m, BOOTSTRAP_REPS, BOOTSTRAP_SEED)),
                blank_image: opt_mean(|t| t.blank_image_score),
                majority: opt_mean(|t| t.majority_score),
                n_items: first.item_scores.len(),
            });
            let Some(c) = control.filter(|&c| c != a.index) else { continue };
            let ctrl = finished_scores(d, c, task);
            let pairs: Vec<(u64, &TaskScore, &TaskScore)> = runs
                .iter()
                .filter_map(|(s, t)| ctrl.iter().find(|(cs, _)| cs == s).map(|(_, ct)| (*s, *t, *ct)))
                .collect();
            let by_seed = t_interval(&pairs.iter().map(|(_, t, ct)| t.score - ct.score).collect::<Vec<_>>());
            let item_diff = || -> Option<Vec<f64>> {
                let arm_items = item_means(&pairs.iter().map(|p| p.1).collect::<Vec<_>>())?;
                let ctrl_items = item_means(&pairs.iter().map(|p| p.2).collect::<Vec<_>>())?;
                (arm_items.len() == ctrl_items.len())
                    .then(|| arm_items.iter().zip(&ctrl_items).map(|(x, y)| x - y).collect())
            };
            diffs.push(PairedDiff {
                arm: a.index,
                task: task.clone(),
                seeds_used: pairs.iter().map(|p| p.0).collect(),
                by_item: item_diff().and_then(|v| bootstrap_interval(&v, BOOTSTRAP_REPS, BOOTSTRAP_SEED)),
                verdict: verdict(by_seed.as_ref()),
                by_seed,
            });
        }
    }
    Study { control, per_arm, diffs }
}

/// `runs.jsonl`: one line per (finished run, task) with the fields of issue #15 item 5.
pub fn runs_jsonl(d: &SweepData) -> String {
    let mut s = String::new();
    for a in &d.arms {
        let arm = &d.plan.arms[a.index];
        let axes: serde_json::Map<String, Json> = arm
            .axis_values
            .iter()
            .map(|(k, v)| (k.clone(), serde_json::to_value(v).unwrap_or(Json::Null)))
            .collect();
        for r in a.runs.iter().filter(|r| r.finished) {
            for t in &r.tasks {
                let line = json!({
                    "study": d.plan.name,
                    "arm": axes,
                    "seed": r.seed,
                    "task": t.task,
                    "gate": t.gate,
                    "metric": t.metric,
                    "score": t.score,
                    "n_items": t.item_scores.len(),
                    "blank_image_score": t.blank_image_score,
                    "majority_score": t.majority_score,
                });
                s += &line.to_string();
                s.push('\n');
            }
        }
    }
    s
}
