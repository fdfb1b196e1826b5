//! Reading a sweep folder: the plan, then each run's metrics, eval scores and wall time, grouped by arm.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::Value as Json;

use super::stats::{MeanStd, mean_std};
use crate::{Plan, SweepError};

/// What one run left in its folder.
#[derive(Debug, Clone, Default)]
pub struct RunData {
    pub run_id: String,
    pub seed: u64,
    pub finished: bool,
    /// `(step, loss)` of every `metrics.jsonl` line with a loss.
    pub loss_curve: Vec<(f64, f64)>,
    /// Final scalars: `train_loss`, held-out losses (`metrics.jsonl` keys naming eval/heldout/val
    /// losses, last value), eval scores (`eval.json` `scores`), `tokens`, `wall_time_s`.
    pub scalars: BTreeMap<String, f64>,
    /// Each eval task's headline score with its items and baselines (`eval.json` `tasks`).
    pub tasks: Vec<TaskScore>,
}

/// One task's headline 0-shot score in one run: forced-choice accuracy where the task has a closed
/// answer set, else the 0-shot generative primary metric (CIDEr-D, VQA accuracy).
#[derive(Debug, Clone, PartialEq)]
pub struct TaskScore {
    pub task: String,
    /// `resolution`, `tokens`, `none` (a control); `None` for a task built for no gate.
    pub gate: Option<String>,
    pub metric: String,
    pub score: f64,
    pub item_scores: Vec<f64>,
    pub blank_image_score: Option<f64>,
    pub majority_score: Option<f64>,
}

/// The headline scores of an `eval.json` (tasks without a 0-shot result are left out).
pub fn task_scores(eval: &Json) -> Vec<TaskScore> {
    let Some(tasks) = eval.get("tasks").and_then(Json::as_array) else { return vec![] };
    let floats = |v: Option<&Json>| -> Vec<f64> {
        v.and_then(Json::as_array).map(|a| a.iter().filter_map(Json::as_f64).collect()).unwrap_or_default()
    };
    let mut out = vec![];
    for t in tasks {
        let name = t.get("name").and_then(Json::as_str).unwrap_or_default().to_string();
        let gate = t.get("gate").and_then(Json::as_str).map(str::to_string);
        let primary = t.get("primary_metric").and_then(Json::as_str).unwrap_or("score").to_string();
        let majority = |m: &str| t.pointer(&format!("/majority/metrics/{m}")).and_then(Json::as_f64);
        let choice = t.get("choice").filter(|c| !c.is_null());
        let zero = t
            .get("results")
            .and_then(Json::as_array)
            .and_then(|r| r.iter().find(|s| s.get("shots").and_then(Json::as_u64) == Some(0)));
        let score = if let Some(c) = choice {
            c.get("accuracy").and_then(Json::as_f64).map(|s| TaskScore {
                task: name.clone(),
                gate: gate.clone(),
                metric: "choice_accuracy".into(),
                score: s,
                item_scores: floats(c.get("item_scores")),
                blank_image_score: c.get("blank_accuracy").and_then(Json::as_f64),
                majority_score: majority("choice_accuracy"),
            })
        } else {
            zero.and_then(|z| {
                z.pointer(&format!("/metrics/{primary}")).and_then(Json::as_f64).map(|s| TaskScore {
                    task: name.clone(),
                    gate: gate.clone(),
                    metric: primary.clone(),
                    score: s,
                    item_scores: floats(z.get("item_scores")),
                    blank_image_score: z.pointer(&format!("/blank_metrics/{primary}")).and_then(Json::as_f64),
                    majority_score: majority(&primary),
                })
            })
        };
        out.extend(score);
    }
    out
}

/// One arm over its seeds.
#[derive(Debug, Clone)]
pub struct ArmSummary {
    pub index: usize,
    pub runs: Vec<RunData>,
    /// Metric → mean ± std over the runs that have it.
    pub stats: BTreeMap<String, MeanStd>,
    /// Mean training-loss curve over seeds (at the steps every seed logged).
    pub mean_curve: Vec<(f64, f64)>,
}

/// A sweep folder read back.
#[derive(Debug, Clone)]
pub struct SweepData {
    pub dir: PathBuf,
    pub plan: Plan,
    pub arms: Vec<ArmSummary>,
    /// Every metric seen, in display order (eval scores, held-out losses, train loss, tokens, time).
    pub metrics: Vec<String>,
}

/// Reads `SWEEP_DIR/sweep.json` and every planned run folder (missing folders count as not run).
pub fn collect(dir: &Path) -> Result<SweepData, SweepError> {
    let plan_path = dir.join("sweep.json");
    let text = std::fs::read_to_string(&plan_path).map_err(|e| SweepError::io(&plan_path, e))?;
    let plan: Plan = serde_json::from_str(&text)
        .map_err(|e| SweepError::Run(format!("{}: not a sweep plan: {e}", plan_path.display())))?;
    let mut arms: Vec<ArmSummary> = (0..plan.arms.len())
        .map(|index| ArmSummary { index, runs: vec![], stats: BTreeMap::new(), mean_curve: vec![] })
        .collect();
    for r in &plan.runs {
        let data = read_run(&dir.join(&r.run_id), &r.run_id, r.seed)?;
        arms[r.arm].runs.push(data);
    }
    let mut all = BTreeMap::new();
    for arm in &mut arms {
        // Statistics over finished runs only: a run still training (or interrupted) would mix a
        // mid-training loss into the final numbers. Its curve still shows in the loss plot.
        let finished: Vec<&RunData> = arm.runs.iter().filter(|r| r.finished).collect();
        let keys: std::collections::BTreeSet<String> =
            finished.iter().flat_map(|r| r.scalars.keys().cloned()).collect();
        for k in keys {
            let values: Vec<f64> = finished.iter().filter_map(|r| r.scalars.get(&k).copied()).collect();
            if let Some(ms) = mean_std(&values) {
                arm.stats.insert(k.clone(), ms);
                all.insert(k, ());
            }
        }
        arm.mean_curve = mean_curve(&arm.runs);
    }
    let mut metrics: Vec<String> = all.into_keys().collect();
    metrics.sort_by_key(|m| (metric_rank(m), m.clone()));
    Ok(SweepData { dir: dir.to_path_buf(), plan, arms, metrics })
}

/// Display order: eval scores, held-out losses, training loss, tokens, wall time.
pub fn metric_rank(m: &str) -> u8 {
    match m {
        "train_loss" => 2,
        "tokens" => 3,
        "wall_time_s" => 4,
        _ if is_heldout(m) => 1,
        _ => 0,
    }
}

fn is_heldout(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    (k.starts_with("eval") || k.starts_with("heldout") || k.starts_with("held_out") || k.starts_with("val"))
        && k.contains("loss")
}

fn read_jsonl(path: &Path) -> Result<Vec<Json>, SweepError> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(vec![]),
        Err(e) => return Err(SweepError::io(path, e)),
    };
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            serde_json::from_str(l).map_err(|e| SweepError::Run(format!("{}:{}: {e}", path.display(), i + 1)))
        })
        .collect()
}

fn read_json(path: &Path) -> Result<Option<Json>, SweepError> {
    match std::fs::read_to_string(path) {
        Ok(t) => serde_json::from_str(&t)
            .map(Some)
            .map_err(|e| SweepError::Run(format!("{}: {e}", path.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(SweepError::io(path, e)),
    }
}

fn read_run(run_dir: &Path, run_id: &str, seed: u64) -> Result<RunData, SweepError> {
    let mut data = RunData { run_id: run_id.into(), seed, ..RunData::default() };
    for rec in read_jsonl(&run_dir.join("metrics.jsonl"))? {
        let Some(obj) = rec.as_object() else { continue };
        let step = obj.get("step").and_then(Json::as_f64);
        if let (Some(step), Some(loss)) = (step, obj.get("loss").and_then(Json::as_f64)) {
            data.loss_curve.push((step, loss));
        }
        for (k, v) in obj {
            if let Some(x) = v.as_f64()
                && (is_heldout(k) || k == "tokens" || k == "tokens_seen")
            {
                data.scalars.insert(if k == "tokens_seen" { "tokens".into() } else { k.clone() }, x);
            }
        }
    }
    if let Some(&(_, last)) = data.loss_curve.last() {
        data.scalars.insert("train_loss".into(), last);
    }
    if let Some(eval) = read_json(&run_dir.join("eval.json"))? {
        if let Some(scores) = eval.get("scores").and_then(Json::as_object) {
            for (k, v) in scores {
                if let Some(x) = v.as_f64() {
                    data.scalars.insert(k.clone(), x);
                }
            }
        }
        data.tasks = task_scores(&eval);
    }
    if let Some(done) = read_json(&run_dir.join(crate::DONE_FILE))? {
        data.finished = true;
        if let Some(w) = done.get("wall_time_s").and_then(Json::as_f64) {
            data.scalars.insert("wall_time_s".into(), w);
        }
    }
    Ok(data)
}

/// Mean loss at each step logged by every run of the arm.
fn mean_curve(runs: &[RunData]) -> Vec<(f64, f64)> {
    let with_curves: Vec<&RunData> = runs.iter().filter(|r| !r.loss_curve.is_empty()).collect();
    let Some(first) = with_curves.first() else { return vec![] };
    first
        .loss_curve
        .iter()
        .filter_map(|&(step, _)| {
            let losses: Vec<f64> = with_curves
                .iter()
                .filter_map(|r| r.loss_curve.iter().find(|(s, _)| *s == step).map(|(_, l)| *l))
                .collect();
            (losses.len() == with_curves.len())
                .then(|| (step, losses.iter().sum::<f64>() / losses.len() as f64))
        })
        .collect()
}
