//! Looking up dotted keys in a resolved config tree (the base config as `mm1-train` resolves it, see
//! `cli::resolved_base`), so that a one-at-a-time arm equal to the control is not run twice, plots can
//! place the control on the swept axis and reports can show `base → arm` deltas.

use toml::{Table, Value};

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
