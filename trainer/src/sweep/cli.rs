//! What the `mm1-sweep` commands share: plan a file, find its folder and the trainer, print a plan.

use std::path::{Path, PathBuf};

use super::SweepError;
use super::base::{layered_tree, lookup};
use super::plan::{Plan, plain, plan_sweep};
use super::spec::SweepFile;

/// Reads and plans a sweep file (base values from the layered base config).
pub fn plan_file(path: &Path) -> Result<Plan, SweepError> {
    let sweep = SweepFile::load(path)?;
    let tree = layered_tree(&sweep.base, &sweep.overlays)?;
    Ok(plan_sweep(&sweep, &|key| lookup(&tree, key)))
}

/// The sweep folder: `--out`, else the file's `out_dir`, else `runs/sweeps/<name>`.
pub fn sweep_dir(plan: &Plan, out: Option<&Path>) -> Result<PathBuf, SweepError> {
    let dir = match out {
        Some(d) => d.to_path_buf(),
        None => {
            let text =
                std::fs::read_to_string(&plan.sweep_file).map_err(|e| SweepError::io(&plan.sweep_file, e))?;
            let file: SweepFile = toml::from_str(&text).map_err(|e| SweepError::spec(&plan.sweep_file, e))?;
            file.out_dir.unwrap_or_else(|| PathBuf::from("runs/sweeps").join(&plan.name))
        }
    };
    std::path::absolute(&dir).map_err(|e| SweepError::io(&dir, e))
}

/// The trainer command: the sweep file's `trainer`, else `mm1-train` next to the running binary,
/// else `mm1-train` on PATH.
pub fn trainer_command(plan: &Plan) -> Vec<String> {
    if !plan.trainer.is_empty() {
        return plan.trainer.clone();
    }
    let sibling = std::env::current_exe().ok().and_then(|exe| exe.parent().map(|d| d.join("mm1-train")));
    match sibling {
        Some(p) if p.is_file() => vec![p.display().to_string()],
        _ => vec!["mm1-train".into()],
    }
}

/// A human-readable plan: one line per run.
pub fn format_plan(plan: &Plan) -> String {
    let mut s = format!(
        "sweep `{}` ({:?}): {} arms x {} seeds = {} runs\nbase: {}\n",
        plan.name,
        plan.mode,
        plan.arms.len(),
        plan.seeds.len(),
        plan.runs.len(),
        plan.base.display()
    );
    for o in &plan.overlays {
        s += &format!("overlay: {}\n", o.display());
    }
    for (k, v) in &plan.common {
        s += &format!("every arm: {k} = {}\n", plain(v));
    }
    if let Some(steps) = plan.steps {
        s += &format!("every arm: train.steps = {steps}\n");
    }
    let width = plan.runs.iter().map(|r| r.run_id.len()).max().unwrap_or(6);
    for (i, r) in plan.runs.iter().enumerate() {
        let arm = &plan.arms[r.arm];
        let delta = if arm.delta.is_empty() {
            "(control: the base config)".to_string()
        } else {
            arm.delta.iter().map(|(k, v)| format!("{k}={}", plain(v))).collect::<Vec<_>>().join(" ")
        };
        s += &format!("{i:>3}  {:<width$}  seed {}  {delta}\n", r.run_id, r.seed);
    }
    s
}
