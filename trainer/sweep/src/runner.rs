//! Runs the arms of a plan locally, `parallel` at a time, by invoking the trainer:
//! `mm1-train --config BASE [--with OVERLAY].. --set k=v.. --run-dir SWEEP_DIR/RUN_ID [--resume]`.
//!
//! A run is finished when its folder holds `done.json` (written here after the trainer exits with 0);
//! finished runs are skipped. A run folder holding a complete checkpoint (`checkpoints/step-N/`) but no
//! `done.json` was interrupted and is resumed with `--resume`. Every attempt appends to
//! `logs/RUN_ID.log` (output) and `logs/RUN_ID.attempts.jsonl` (start, end, wall time, exit code).

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use serde_json::json;

use super::SweepError;
use super::plan::{Plan, PlannedRun, toml_literal};

/// Marker of a finished run inside its run folder.
pub const DONE_FILE: &str = "done.json";

/// How the runner starts trainers.
#[derive(Debug, Clone)]
pub struct RunnerOptions {
    /// Runs at the same time.
    pub parallel: usize,
    /// Trainer command prefix (program and fixed arguments).
    pub trainer: Vec<String>,
    /// Evaluator command prefix, used when the plan has `[eval]`.
    pub evaluator: Vec<String>,
}

/// What happened to one run.
#[derive(Debug, Clone, PartialEq)]
pub enum RunOutcome {
    AlreadyDone,
    Completed { wall_s: f64, resumed: bool },
    Failed { exit_code: Option<i32>, log: PathBuf },
}

/// The trainer arguments of one run (after the command prefix).
pub fn trainer_args(plan: &Plan, run: &PlannedRun, sweep_dir: &Path, resume: bool) -> Vec<String> {
    let mut args = vec!["--config".to_string(), plan.base.display().to_string()];
    for o in &plan.overlays {
        args.extend(["--with".to_string(), o.display().to_string()]);
    }
    for (k, v) in set_pairs(plan, run) {
        args.extend(["--set".to_string(), format!("{k}={v}")]);
    }
    args.extend(["--run-dir".to_string(), sweep_dir.join(&run.run_id).display().to_string()]);
    if resume {
        args.push("--resume".into());
    }
    args
}

/// `--set` pairs of a run: the sweep's `[set]`, `train.steps`, the arm's delta, then the run's
/// seed as `train.seed` (initialisation) and `data.seed` (shard order, shuffling, mixture draws),
/// so that seeds resample both sources of run-to-run variance. A sweep that sets `data.seed`
/// itself (in `[set]` or an axis) keeps its value: the data order is then held fixed on purpose.
pub fn set_pairs(plan: &Plan, run: &PlannedRun) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> =
        plan.common.iter().map(|(k, v)| (k.clone(), toml_literal(v))).collect();
    if let Some(steps) = plan.steps {
        out.push(("train.steps".into(), steps.to_string()));
    }
    out.extend(plan.arms[run.arm].delta.iter().map(|(k, v)| (k.clone(), toml_literal(v))));
    out.push(("train.seed".into(), run.seed.to_string()));
    if !out.iter().any(|(k, _)| k == "data.seed") {
        out.push(("data.seed".into(), run.seed.to_string()));
    }
    out
}

/// Whether a run folder holds a complete checkpoint to resume from.
pub fn has_checkpoint(run_dir: &Path) -> bool {
    let Ok(entries) = fs::read_dir(run_dir.join("checkpoints")) else {
        return false;
    };
    entries.flatten().any(|e| {
        e.file_name().to_string_lossy().starts_with("step-") && e.path().join("state.json").is_file()
    })
}

/// Writes `sweep.json` and runs every unfinished run; returns each run's outcome in plan order.
pub fn run_sweep(
    plan: &Plan,
    sweep_dir: &Path,
    opts: &RunnerOptions,
) -> Result<Vec<(String, RunOutcome)>, SweepError> {
    if opts.trainer.is_empty() {
        return Err(SweepError::Run("no trainer command".into()));
    }
    let logs = sweep_dir.join("logs");
    fs::create_dir_all(&logs).map_err(|e| SweepError::io(&logs, e))?;
    write_plan(plan, sweep_dir)?;
    let next = AtomicUsize::new(0);
    let outcomes: Mutex<Vec<Option<RunOutcome>>> = Mutex::new(vec![None; plan.runs.len()]);
    let first_error: Mutex<Option<SweepError>> = Mutex::new(None);
    let total = plan.runs.len();
    std::thread::scope(|s| {
        for _ in 0..opts.parallel.max(1).min(total.max(1)) {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    if i >= total || first_error.lock().expect("lock").is_some() {
                        break;
                    }
                    match run_one(plan, &plan.runs[i], sweep_dir, opts) {
                        Ok(outcome) => {
                            report(i, total, &plan.runs[i].run_id, &outcome);
                            outcomes.lock().expect("lock")[i] = Some(outcome);
                        }
                        Err(e) => *first_error.lock().expect("lock") = Some(e),
                    }
                }
            });
        }
    });
    if let Some(e) = first_error.into_inner().expect("lock") {
        return Err(e);
    }
    let outcomes = outcomes.into_inner().expect("lock");
    Ok(plan
        .runs
        .iter()
        .zip(outcomes)
        .map(|(r, o)| (r.run_id.clone(), o.expect("every run visited")))
        .collect())
}

fn report(i: usize, total: usize, run_id: &str, outcome: &RunOutcome) {
    let what = match outcome {
        RunOutcome::AlreadyDone => "already finished, skipped".to_string(),
        RunOutcome::Completed { wall_s, resumed } => {
            format!("finished in {wall_s:.1}s{}", if *resumed { " (resumed)" } else { "" })
        }
        RunOutcome::Failed { exit_code, log } => {
            format!("FAILED (exit {exit_code:?}), see {}", log.display())
        }
    };
    eprintln!("[{}/{total}] {run_id}: {what}", i + 1);
}

/// Writes `SWEEP_DIR/sweep.json` (the plan the report reads).
pub fn write_plan(plan: &Plan, sweep_dir: &Path) -> Result<(), SweepError> {
    let path = sweep_dir.join("sweep.json");
    let text = serde_json::to_string_pretty(plan).map_err(|e| SweepError::Run(format!("sweep.json: {e}")))?;
    fs::create_dir_all(sweep_dir).map_err(|e| SweepError::io(sweep_dir, e))?;
    fs::write(&path, text).map_err(|e| SweepError::io(&path, e))
}

fn unix_now() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0)
}

fn run_one(
    plan: &Plan,
    run: &PlannedRun,
    sweep_dir: &Path,
    opts: &RunnerOptions,
) -> Result<RunOutcome, SweepError> {
    let run_dir = sweep_dir.join(&run.run_id);
    if run_dir.join(DONE_FILE).is_file() {
        check_same_args(plan, run, sweep_dir)?;
        return Ok(RunOutcome::AlreadyDone);
    }
    let resume = has_checkpoint(&run_dir);
    let args = trainer_args(plan, run, sweep_dir, resume);
    let log_path = sweep_dir.join("logs").join(format!("{}.log", run.run_id));
    let mut log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .map_err(|e| SweepError::io(&log_path, e))?;
    let command_line = opts.trainer.iter().chain(&args).cloned().collect::<Vec<_>>().join(" ");
    writeln!(log, "=== attempt at unix {:.0}: {command_line}", unix_now())
        .map_err(|e| SweepError::io(&log_path, e))?;
    let err_log = log.try_clone().map_err(|e| SweepError::io(&log_path, e))?;

    let start = unix_now();
    let clock = Instant::now();
    let status = Command::new(&opts.trainer[0])
        .args(&opts.trainer[1..])
        .args(&args)
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(err_log)
        .status()
        .map_err(|e| {
            SweepError::Run(format!("{}: cannot start trainer `{}`: {e}", run.run_id, opts.trainer[0]))
        })?;
    let wall_s = clock.elapsed().as_secs_f64();

    let attempts_path = sweep_dir.join("logs").join(format!("{}.attempts.jsonl", run.run_id));
    let attempt = json!({ "start": start, "end": unix_now(), "wall_s": wall_s, "exit_code": status.code(), "resumed": resume });
    let mut attempts = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&attempts_path)
        .map_err(|e| SweepError::io(&attempts_path, e))?;
    writeln!(attempts, "{attempt}").map_err(|e| SweepError::io(&attempts_path, e))?;
    if !status.success() {
        return Ok(RunOutcome::Failed { exit_code: status.code(), log: log_path });
    }
    if let Some(eval) = &plan.eval {
        let code = evaluate(&opts.evaluator, &eval.args(&run_dir), &log_path)?;
        if code != Some(0) {
            return Ok(RunOutcome::Failed { exit_code: code, log: log_path });
        }
    }
    let (total_wall, n_attempts) = attempts_wall(&attempts_path);
    let done = json!({
        "run_id": run.run_id,
        "arm": plan.arms[run.arm].name,
        "seed": run.seed,
        "wall_time_s": total_wall,
        "attempts": n_attempts,
        "finished_at": unix_now(),
        "command": command_line,
        "args": trainer_args(plan, run, sweep_dir, false),
    });
    fs::create_dir_all(&run_dir).map_err(|e| SweepError::io(&run_dir, e))?;
    let done_path = run_dir.join(DONE_FILE);
    fs::write(&done_path, serde_json::to_string_pretty(&done).expect("json"))
        .map_err(|e| SweepError::io(&done_path, e))?;
    Ok(RunOutcome::Completed { wall_s, resumed: resume })
}

/// Runs the evaluator on a finished run, output appended to the run's log; returns its exit code.
fn evaluate(command: &[String], args: &[String], log_path: &Path) -> Result<Option<i32>, SweepError> {
    let (program, fixed) =
        command.split_first().ok_or_else(|| SweepError::Run("no evaluator command".into()))?;
    let mut log = OpenOptions::new().append(true).open(log_path).map_err(|e| SweepError::io(log_path, e))?;
    let line = command.iter().chain(args).cloned().collect::<Vec<_>>().join(" ");
    writeln!(log, "=== evaluation: {line}").map_err(|e| SweepError::io(log_path, e))?;
    let err_log = log.try_clone().map_err(|e| SweepError::io(log_path, e))?;
    let status = Command::new(program)
        .args(fixed)
        .args(args)
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(err_log)
        .status()
        .map_err(|e| SweepError::Run(format!("cannot start evaluator `{program}`: {e}")))?;
    Ok(status.code())
}

/// A finished run must have been trained with the arguments the plan gives it now: a changed `steps`,
/// `[set]` or base would otherwise be reported under the old results.
fn check_same_args(plan: &Plan, run: &PlannedRun, sweep_dir: &Path) -> Result<(), SweepError> {
    let path = sweep_dir.join(&run.run_id).join(DONE_FILE);
    let text = fs::read_to_string(&path).map_err(|e| SweepError::io(&path, e))?;
    let done: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| SweepError::Run(format!("{}: {e}", path.display())))?;
    let Some(was) = done["args"].as_array() else { return Ok(()) }; // written by the Slurm script
    let now = trainer_args(plan, run, sweep_dir, false);
    let was: Vec<&str> = was.iter().filter_map(|a| a.as_str()).collect();
    if was != now {
        return Err(SweepError::Run(format!(
            "{} finished with other arguments than the sweep now gives it:\n  was: {}\n  now: {}\n\
             (steps, [set] or the base changed?) use another --out folder or remove the run folder",
            path.display(),
            was.join(" "),
            now.join(" ")
        )));
    }
    Ok(())
}

/// Sum of wall times and count of the attempts recorded for a run.
fn attempts_wall(path: &Path) -> (f64, usize) {
    let text = fs::read_to_string(path).unwrap_or_default();
    let walls: Vec<f64> = text
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|v| v["wall_s"].as_f64())
        .collect();
    (walls.iter().sum(), walls.len())
}
