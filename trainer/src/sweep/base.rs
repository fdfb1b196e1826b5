//! The base config's values at the swept keys, so that a one-at-a-time arm equal to the control is not
//! run twice and plots can place the control on the swept axis.
//!
//! Reads the base file with its `base = "..."` chain (relative to the file) and the overlays, merged
//! key by key as `mm1-train` layers them. Keys the files leave at a serde default are not visible here
//! (they stay `None` and the arm is run).

use std::path::Path;

use toml::{Table, Value};

use super::SweepError;

/// The merged TOML tree of a base config and its overlays.
pub fn layered_tree(base: &Path, overlays: &[impl AsRef<Path>]) -> Result<Table, SweepError> {
    let mut tree = read_chain(base, 0)?;
    for o in overlays {
        merge(&mut tree, read_chain(o.as_ref(), 0)?);
    }
    Ok(tree)
}

fn read_chain(path: &Path, depth: usize) -> Result<Table, SweepError> {
    if depth > 16 {
        return Err(SweepError::spec(path, "`base` chain deeper than 16 (a cycle?)"));
    }
    let text = std::fs::read_to_string(path).map_err(|e| SweepError::io(path, e))?;
    let mut table: Table = text.parse().map_err(|e: toml::de::Error| SweepError::spec(path, e.message()))?;
    table.remove("patch");
    let mut tree = match table.remove("base") {
        Some(Value::String(b)) => read_chain(&path.parent().unwrap_or(Path::new(".")).join(b), depth + 1)?,
        Some(other) => {
            return Err(SweepError::spec(path, format!("`base` must be a path, got a {}", other.type_str())));
        }
        None => Table::new(),
    };
    merge(&mut tree, table);
    Ok(tree)
}

fn merge(into: &mut Table, from: Table) {
    for (k, v) in from {
        match (into.get_mut(&k), v) {
            (Some(Value::Table(a)), Value::Table(b)) => merge(a, b),
            (_, v) => {
                into.insert(k, v);
            }
        }
    }
}

/// The value at a dotted key; numeric segments index arrays (`data.sources.0.weight`).
pub fn lookup(tree: &Table, key: &str) -> Option<Value> {
    let mut cur = Value::Table(tree.clone());
    for seg in key.split('.') {
        cur = match cur {
            Value::Table(mut t) => t.remove(seg)?,
            Value::Array(mut a) => {
                let i: usize = seg.parse().ok()?;
                if i >= a.len() {
                    return None;
                }
                a.swap_remove(i)
            }
            _ => return None,
        };
    }
    Some(cur)
}
