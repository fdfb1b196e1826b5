//! What the `mm1-sweep` commands share: plan a file, find its folder and the trainer, print a plan.

use std::path::{Path, PathBuf};

use super::SweepError;
use super::base::lookup;
use super::plan::{Plan, plain, plan_sweep};
use super::runner::set_pairs;
use super::spec::SweepFile;
use mm1_config::ConfigSources;

fn sources(base: &Path, overlays: &[PathBuf]) -> ConfigSources {
    overlays.iter().fold(ConfigSources::new(base), |s, o| s.overlay(o))
}

/// The base config resolved as `mm1-train` sees it (base chain, overlays, patches, serde defaults).
pub fn resolved_base(base: &Path, overlays: &[PathBuf]) -> Result<toml::Table, SweepError> {
    let loaded = sources(base, overlays)
        .load_unvalidated()
        .map_err(|e| SweepError::spec(base, format!("base config: {e}")))?;
    let mut resolved = toml::Table::try_from(&loaded.config)
        .map_err(|e| SweepError::spec(base, format!("base config does not serialise: {e}")))?;
    // Keys the config keeps but does not serialise stay visible from the merged tree.
    for (k, v) in loaded.merged {
        resolved.entry(k).or_insert(v);
    }
    Ok(resolved)
}

/// Reads and plans a sweep file; base values come from the resolved base config.
pub fn plan_file(path: &Path) -> Result<Plan, SweepError> {
    let sweep = SweepFile::load(path)?;
    let base = resolved_base(&sweep.base, &sweep.overlays)?;
    Ok(plan_sweep(&sweep, &|key| lookup(&base, key)))
}

/// Loads and validates every arm's config (base, overlays, `--set`s) as `mm1-train` will, so a typo
/// in an axis key or an invalid combination fails before anything runs.
pub fn check_arms(plan: &Plan) -> Result<(), SweepError> {
    let mut errors = Vec::new();
    for run in plan.runs.iter().filter(|r| r.seed == plan.seeds[0]) {
        let src = set_pairs(plan, run)
            .into_iter()
            .fold(sources(&plan.base, &plan.overlays), |s, (k, v)| s.set(format!("{k}={v}")));
        if let Err(e) = src.load() {
            errors.push(format!("arm {}: {e}", plan.arms[run.arm].name));
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(SweepError::spec(&plan.sweep_file, format!("invalid arms:\n  {}", errors.join("\n  "))))
    }
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

/// The evaluator command: `[eval] command`, else `mm1-eval` next to the running binary, else on PATH.
pub fn evaluator_command(plan: &Plan) -> Vec<String> {
    if let Some(c) = plan.eval.as_ref().filter(|e| !e.command.is_empty()) {
        return c.command.clone();
    }
    let sibling = std::env::current_exe().ok().and_then(|exe| exe.parent().map(|d| d.join("mm1-eval")));
    match sibling {
        Some(p) if p.is_file() => vec![p.display().to_string()],
        _ => vec!["mm1-eval".into()],
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
