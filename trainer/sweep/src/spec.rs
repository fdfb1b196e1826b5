//! The sweep file (`ablations/sweeps/*.toml`), mirrored 1:1 by [`SweepFile`].
//!
//! ```toml
//! name = "resolution"                      # default: the file stem
//! base = "configs/ablation-base.toml"      # the control run's config
//! overlay = "configs/scale/cpu-tiny.toml"  # optional, one path or a list (`mm1-train --with`)
//! mode = "one_at_a_time"                   # or "grid"
//! seeds = [0, 1, 2]                        # each arm runs once per seed (`train.seed`)
//! steps = 200                              # optional `train.steps` for every arm
//! out_dir = "runs/sweeps/resolution"       # optional; default runs/sweeps/<name>
//! trainer = ["mm1-train"]                  # optional command prefix (default: mm1-train)
//!
//! [set]                                    # optional overrides shared by every arm
//! "eval.every" = 50
//!
//! [axes]                                   # dotted key → values (quoted or nested keys)
//! "model.vision.image_size" = [224, 336, 448]
//! # a table value replaces the whole section (`--set model.connector={ kind = "attn_pool" }`);
//! # deltas are applied in key order, so a parent table is set before a child key of another axis
//! "model.connector" = [{ kind = "avg_pool" }, { kind = "attn_pool" }, { kind = "c_abstractor" }]
//! # a bundle `{ label, set }` sets several keys together; `label` names it in ids, tables and plots
//! mixture = [{ label = "caption-heavy", set = { "data.sources.0.weight" = 0.9, "data.sources.1.weight" = 0.1 } }]
//! ```
//!
//! Paths are relative to the working directory, or else to the nearest ancestor folder of the sweep
//! file that contains them (so `configs/x.toml` works from the repository root or from anywhere).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use toml::{Table, Value};

use super::SweepError;

/// How axes combine into arms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// The base (control) plus one arm per axis value, other axes at the base (MM1's ablations).
    #[default]
    OneAtATime,
    /// Every combination of axis values.
    Grid,
}

/// One path or a list of paths.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum OneOrMany {
    One(PathBuf),
    Many(Vec<PathBuf>),
}

/// `[slurm]`: how the array job is submitted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SlurmSpec {
    /// `#SBATCH --KEY=VALUE` lines (e.g. `partition = "gpu"`, `time = "24:00:00"`, `gres = "gpu:8"`).
    pub sbatch: Table,
    /// At most this many array tasks at once (`--array=0-N%max_parallel`); 0 = no limit.
    pub max_parallel: usize,
    /// Shell lines run before the trainer (module loads, environment activation).
    pub setup: Vec<String>,
}

impl Default for SlurmSpec {
    fn default() -> Self {
        Self { sbatch: Table::new(), max_parallel: 0, setup: Vec::new() }
    }
}

/// `[eval]`: few-shot evaluation of every finished run (`mm1-eval --checkpoint RUN_DIR ...`), written
/// to the run's `eval.json` before the run counts as done.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SweepEval {
    /// Demonstration counts.
    pub shots: Vec<usize>,
    /// `plain` or `text-demos:N` (see `mm1-eval --zero-shot`).
    pub zero_shot: String,
    /// Items of each eval set kept aside as the demonstration pool.
    pub support_size: usize,
    pub max_new_tokens: usize,
    /// Queries per task (0: all).
    pub limit: usize,
    /// Tasks also scored at the shot counts above 0 (empty: every task); the others get their
    /// 0-shot scores only (`mm1-eval --fewshot-tasks`).
    pub fewshot_tasks: Vec<String>,
    pub seed: u64,
    /// Evaluator command prefix (empty: `mm1-eval` next to `mm1-sweep`, else on PATH).
    pub command: Vec<String>,
}

impl Default for SweepEval {
    fn default() -> Self {
        Self {
            shots: vec![0, 4, 8],
            zero_shot: "plain".into(),
            support_size: 8,
            max_new_tokens: 24,
            limit: 0,
            fewshot_tasks: vec![],
            seed: 0,
            command: vec![],
        }
    }
}

impl SweepEval {
    /// `mm1-eval` arguments for a run folder.
    pub fn args(&self, run_dir: &Path) -> Vec<String> {
        let mut a = vec![
            "--checkpoint".to_string(),
            run_dir.display().to_string(),
            "--out".into(),
            run_dir.join("eval.json").display().to_string(),
            "--shots".into(),
            self.shots.iter().map(|s| s.to_string()).collect::<Vec<_>>().join(","),
            "--zero-shot".into(),
            self.zero_shot.clone(),
            "--support-size".into(),
            self.support_size.to_string(),
            "--max-new-tokens".into(),
            self.max_new_tokens.to_string(),
            "--seed".into(),
            self.seed.to_string(),
        ];
        if self.limit > 0 {
            a.extend(["--limit".into(), self.limit.to_string()]);
        }
        if !self.fewshot_tasks.is_empty() {
            a.extend(["--fewshot-tasks".into(), self.fewshot_tasks.join(",")]);
        }
        a
    }
}

/// A sweep file as written.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SweepFile {
    pub name: Option<String>,
    pub base: PathBuf,
    pub overlay: Option<OneOrMany>,
    #[serde(default)]
    pub mode: Mode,
    #[serde(default = "default_seeds")]
    pub seeds: Vec<u64>,
    pub steps: Option<u64>,
    pub out_dir: Option<PathBuf>,
    #[serde(default)]
    pub trainer: Vec<String>,
    #[serde(default)]
    pub set: Table,
    pub axes: Table,
    #[serde(default)]
    pub slurm: SlurmSpec,
    pub eval: Option<SweepEval>,
}

fn default_seeds() -> Vec<u64> {
    vec![0]
}

/// A sweep file read from disk, with its paths resolved.
#[derive(Debug, Clone)]
pub struct LoadedSweep {
    pub path: PathBuf,
    pub name: String,
    pub file: SweepFile,
    pub base: PathBuf,
    pub overlays: Vec<PathBuf>,
    /// `[set]` flattened to dotted keys.
    pub common: Vec<(String, Value)>,
    /// `[axes]`: axis name → values, in key order.
    pub axes: Vec<(String, Vec<Value>)>,
}

impl SweepFile {
    pub fn load(path: &Path) -> Result<LoadedSweep, SweepError> {
        let text = std::fs::read_to_string(path).map_err(|e| SweepError::io(path, e))?;
        let file: SweepFile = toml::from_str(&text).map_err(|e| SweepError::spec(path, e))?;
        let name = match &file.name {
            Some(n) => n.clone(),
            None => path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default(),
        };
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)) {
            return Err(SweepError::spec(path, format!("name `{name}` must be [A-Za-z0-9._-]+")));
        }
        if file.seeds.is_empty() {
            return Err(SweepError::spec(path, "`seeds` is empty"));
        }
        if file.steps == Some(0) {
            return Err(SweepError::spec(path, "`steps` must be at least 1"));
        }
        let base = resolve(path, &file.base)?;
        let overlays = match &file.overlay {
            None => vec![],
            Some(OneOrMany::One(p)) => vec![resolve(path, p)?],
            Some(OneOrMany::Many(ps)) => ps.iter().map(|p| resolve(path, p)).collect::<Result<_, _>>()?,
        };
        let mut common = Vec::new();
        flatten("", &Value::Table(file.set.clone()), &mut common);
        let axes = axes_of(path, &file.axes)?;
        Ok(LoadedSweep { path: path.to_path_buf(), name, file, base, overlays, common, axes })
    }
}

/// `[axes]` entries; nested (unquoted dotted) keys are joined back into dotted names.
fn axes_of(path: &Path, table: &Table) -> Result<Vec<(String, Vec<Value>)>, SweepError> {
    let mut out = Vec::new();
    collect_axes(path, "", table, &mut out)?;
    if out.is_empty() {
        return Err(SweepError::spec(path, "`[axes]` names no axis"));
    }
    Ok(out)
}

fn collect_axes(
    path: &Path,
    prefix: &str,
    table: &Table,
    out: &mut Vec<(String, Vec<Value>)>,
) -> Result<(), SweepError> {
    for (k, v) in table {
        let key = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
        match v {
            Value::Table(t) => collect_axes(path, &key, t, out)?,
            Value::Array(values) if !values.is_empty() => {
                let mut seen = Vec::new();
                for v in values {
                    if seen.contains(&v) {
                        return Err(SweepError::spec(path, format!("axes.{key}: value {v} is listed twice")));
                    }
                    seen.push(v);
                }
                out.push((key, values.clone()));
            }
            Value::Array(_) => {
                return Err(SweepError::spec(path, format!("axes.{key}: empty list of values")));
            }
            other => {
                return Err(SweepError::spec(
                    path,
                    format!("axes.{key}: expected a list of values, found {}", other.type_str()),
                ));
            }
        }
    }
    Ok(())
}

/// Flattens a TOML value into `dotted.key = scalar-or-array` pairs.
pub fn flatten(prefix: &str, value: &Value, out: &mut Vec<(String, Value)>) {
    match value {
        Value::Table(t) => {
            for (k, v) in t {
                let key = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
                flatten(&key, v, out);
            }
        }
        other => out.push((prefix.to_string(), other.clone())),
    }
}

/// A path as given if it exists from the working directory, else under the nearest ancestor of the
/// sweep file that holds it; returned absolute so that commands work from any directory.
fn resolve(sweep: &Path, p: &Path) -> Result<PathBuf, SweepError> {
    let absolute = |q: &Path| std::path::absolute(q).map_err(|e| SweepError::io(q, e));
    if p.is_absolute() || p.exists() {
        return if p.exists() {
            absolute(p)
        } else {
            Err(SweepError::spec(sweep, format!("{} does not exist", p.display())))
        };
    }
    let start = absolute(sweep)?;
    for dir in start.ancestors().skip(1) {
        let candidate = dir.join(p);
        if candidate.exists() {
            return Ok(candidate);
        }
    }
    Err(SweepError::spec(
        sweep,
        format!("{} not found from the working directory or any folder above the sweep file", p.display()),
    ))
}
