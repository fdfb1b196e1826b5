//! Arms and runs of a sweep, with run ids derived from the arm's config delta and the seed.
//!
//! A run id reads `<slug>-<hash>-s<seed>`: the slug names the changed keys (`image_size-336`, `base`
//! for the control), the hash is the first 8 hex digits of SHA-256 over the canonical delta
//! (`key=value` lines sorted by key, values as TOML literals). The id depends on nothing else (not the
//! order of axes or arms, not the machine), so re-planning a sweep finds the same run folders.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use toml::Value;

use super::spec::{LoadedSweep, Mode, SlurmSpec, SweepEval, flatten};

/// One configuration of the sweep (before seeds).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Arm {
    /// Human-readable name of the delta (`base` for the control).
    pub name: String,
    /// Keys set on top of the base config (sorted by key); empty for the control.
    pub delta: Vec<(String, Value)>,
    /// Value of every axis in this arm (axis name → value; a bundled value is shown by its label).
    pub axis_values: BTreeMap<String, Value>,
    /// The axis this arm varies (one-at-a-time mode); `None` for the control and grid arms.
    pub varies: Option<String>,
}

/// One arm at one seed: a trainer invocation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlannedRun {
    pub run_id: String,
    pub arm: usize,
    pub seed: u64,
}

/// The whole plan; written to `SWEEP_DIR/sweep.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    pub name: String,
    pub sweep_file: PathBuf,
    pub base: PathBuf,
    pub overlays: Vec<PathBuf>,
    pub mode: Mode,
    pub seeds: Vec<u64>,
    pub steps: Option<u64>,
    /// `[set]` of the sweep file, applied to every arm before its delta.
    pub common: Vec<(String, Value)>,
    /// Axis name → values as written.
    pub axes: Vec<(String, Vec<Value>)>,
    /// Value of each axis in the base config (`None` when the base leaves it at a default the sweep
    /// cannot see, or when the axis bundles several keys).
    pub base_values: BTreeMap<String, Option<Value>>,
    pub arms: Vec<Arm>,
    pub runs: Vec<PlannedRun>,
    /// Command prefix for the trainer (empty: `mm1-train` next to `mm1-sweep`, else on PATH).
    pub trainer: Vec<String>,
    pub slurm: SlurmSpec,
    /// Few-shot evaluation after training (`None`: none).
    pub eval: Option<SweepEval>,
}

impl Plan {
    pub fn run(&self, run_id: &str) -> Option<&PlannedRun> {
        self.runs.iter().find(|r| r.run_id == run_id)
    }
}

/// Plans a sweep. `base_value` answers the base config's value at a dotted key (after its overlays),
/// so that one-at-a-time arms equal to the control are not run twice; a key the sweep's `[set]`
/// names has that value in the control instead.
pub fn plan_sweep(sweep: &LoadedSweep, base_value: &dyn Fn(&str) -> Option<Value>) -> Plan {
    let control_value = |axis: &str| {
        let mut v =
            sweep.common.iter().find(|(k, _)| k == axis).map(|(_, v)| v.clone()).or_else(|| base_value(axis));
        // A table axis (`model.connector`) also takes the `[set]` keys below it (`model.connector.num_tokens`).
        if let Some(Value::Table(t)) = &mut v {
            let prefix = format!("{axis}.");
            for (k, x) in &sweep.common {
                if let Some(sub) = k.strip_prefix(&prefix).filter(|sub| !sub.contains('.')) {
                    t.insert(sub.to_string(), x.clone());
                }
            }
        }
        v
    };
    let base_values: BTreeMap<String, Option<Value>> = sweep
        .axes
        .iter()
        .map(|(axis, values)| {
            let bundled = values.iter().any(|v| bundle(v).is_some());
            (axis.clone(), if bundled { None } else { control_value(axis) })
        })
        .collect();
    let choices: Vec<Vec<(String, Value)>> = match sweep.file.mode {
        Mode::Grid => grid(&sweep.axes),
        Mode::OneAtATime => {
            let mut out = vec![vec![]];
            for (axis, values) in &sweep.axes {
                for v in values {
                    if base_values[axis].as_ref() != Some(v) {
                        out.push(vec![(axis.clone(), v.clone())]);
                    }
                }
            }
            out
        }
    };
    let arms: Vec<Arm> = choices.iter().map(|c| arm_of(c, &base_values, sweep.file.mode)).collect();
    let mut runs = Vec::new();
    for (i, arm) in arms.iter().enumerate() {
        for &seed in &sweep.file.seeds {
            runs.push(PlannedRun { run_id: run_id(&arm.name, &arm.delta, seed), arm: i, seed });
        }
    }
    Plan {
        name: sweep.name.clone(),
        sweep_file: sweep.path.clone(),
        base: sweep.base.clone(),
        overlays: sweep.overlays.clone(),
        mode: sweep.file.mode,
        seeds: sweep.file.seeds.clone(),
        steps: sweep.file.steps,
        common: sweep.common.clone(),
        axes: sweep.axes.clone(),
        base_values,
        arms,
        runs,
        trainer: sweep.file.trainer.clone(),
        slurm: sweep.file.slurm.clone(),
        eval: sweep.file.eval.clone(),
    }
}

fn grid(axes: &[(String, Vec<Value>)]) -> Vec<Vec<(String, Value)>> {
    let mut out = vec![vec![]];
    for (axis, values) in axes {
        out = out
            .into_iter()
            .flat_map(|prefix: Vec<(String, Value)>| {
                values.iter().map(move |v| {
                    let mut c = prefix.clone();
                    c.push((axis.clone(), v.clone()));
                    c
                })
            })
            .collect();
    }
    out
}

/// Turns (axis, value) choices into the keys they set, a name and the per-axis values.
fn arm_of(choices: &[(String, Value)], base_values: &BTreeMap<String, Option<Value>>, mode: Mode) -> Arm {
    let mut delta = Vec::new();
    let mut axis_values = BTreeMap::new();
    let mut name_parts = Vec::new();
    for (axis, value) in choices {
        match bundle(value) {
            Some((label, keys)) => {
                let mut flat = Vec::new();
                flatten("", &Value::Table(keys.clone()), &mut flat);
                name_parts.push(format!("{}-{label}", last_segment(axis)));
                axis_values.insert(axis.clone(), Value::String(label.to_string()));
                delta.extend(flat);
            }
            None => {
                name_parts.push(format!("{}-{}", last_segment(axis), short(value)));
                axis_values.insert(axis.clone(), value.clone());
                delta.push((axis.clone(), value.clone()));
            }
        }
    }
    // Axes this arm leaves alone sit at the base value (one-at-a-time); shown for tables and plots.
    for (axis, base) in base_values {
        if !axis_values.contains_key(axis)
            && let Some(b) = base
        {
            axis_values.insert(axis.clone(), b.clone());
        }
    }
    delta.sort_by(|a, b| a.0.cmp(&b.0));
    let varies = match (mode, choices) {
        (Mode::OneAtATime, [(axis, _)]) => Some(axis.clone()),
        _ => None,
    };
    let name = if name_parts.is_empty() { "base".to_string() } else { name_parts.join("_") };
    Arm { name, delta, axis_values, varies }
}

/// The deterministic run id of an arm at a seed (see module docs).
pub fn run_id(name: &str, delta: &[(String, Value)], seed: u64) -> String {
    let mut lines: Vec<String> = delta.iter().map(|(k, v)| format!("{k}={}", toml_literal(v))).collect();
    lines.sort();
    let digest = Sha256::digest(lines.join("\n").as_bytes());
    let hash: String = digest[..4].iter().map(|b| format!("{b:02x}")).collect();
    let slug: String = name
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '.' { c } else { '_' })
        .take(48)
        .collect();
    format!("{slug}-{hash}-s{seed}")
}

/// A value as a TOML literal, the form `mm1-train --set key=value` parses (`"x"`, `336`, `[1, 2]`).
pub fn toml_literal(v: &Value) -> String {
    match v {
        Value::Table(t) => {
            let items: Vec<String> = t.iter().map(|(k, v)| format!("{k} = {}", toml_literal(v))).collect();
            format!("{{ {} }}", items.join(", "))
        }
        Value::Array(a) => format!("[{}]", a.iter().map(toml_literal).collect::<Vec<_>>().join(", ")),
        other => other.to_string(),
    }
}

/// A bundle value `{ label = "...", set = { "a.b" = 1, "c.d" = 2 } }`: several keys set together.
pub fn bundle(v: &Value) -> Option<(&str, &toml::Table)> {
    let t = v.as_table()?;
    match (t.len(), t.get("label").and_then(Value::as_str), t.get("set").and_then(Value::as_table)) {
        (2, Some(label), Some(keys)) => Some((label, keys)),
        _ => None,
    }
}

/// A short form for run ids and axis labels: `avg_pool` for `{ kind = "avg_pool" }`, `336x448` for
/// `[336, 448]`, strings without quotes.
pub fn short(v: &Value) -> String {
    match v {
        // A tagged section is named by its kind (`{ kind = "avg_pool", num_tokens = 144 }` → avg_pool).
        Value::Table(t) => match t.get("kind") {
            Some(kind) => short(kind),
            None => t.values().map(short).collect::<Vec<_>>().join("-"),
        },
        Value::Array(a) => a.iter().map(short).collect::<Vec<_>>().join("x"),
        other => plain(other),
    }
}

/// A value for names and tables: strings without quotes.
pub fn plain(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => toml_literal(other),
    }
}

fn last_segment(key: &str) -> &str {
    key.rsplit('.').next().unwrap_or(key)
}
