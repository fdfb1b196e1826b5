//! Layering of TOML trees: deep merge (child wins key by key, arrays replaced), `[[patch]]`
//! blocks, `--set key=value`, and a record of which file (or flag) set each key so that
//! errors can name it.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

use serde::Deserialize;
use toml::{Table, Value};

/// Where a value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    File(PathBuf),
    Set(String),
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::File(p) => write!(f, "{}", p.display()),
            Origin::Set(arg) => write!(f, "--set {arg}"),
        }
    }
}

/// Dotted key path (`data.sources.0.weight`) → origin of the value there. A lookup walks up
/// to the nearest recorded ancestor, so a table set as a whole answers for its keys.
#[derive(Debug, Clone, Default)]
pub struct Origins(BTreeMap<String, Origin>);

impl Origins {
    /// `path` (and everything below it) now comes from `origin`.
    pub fn record(&mut self, path: &str, origin: &Origin) {
        let below = format!("{path}.");
        self.0.retain(|k, _| !k.starts_with(&below));
        self.0.insert(path.to_string(), origin.clone());
    }

    /// Forgets `path` and everything below it (the value there was replaced).
    pub fn forget(&mut self, path: &str) {
        let below = format!("{path}.");
        self.0.retain(|k, _| k != path && !k.starts_with(&below));
    }

    /// The origin of `path` or of its nearest recorded ancestor.
    /// A table nobody set as a whole (e.g. a misspelt section) answers with the origin of
    /// its first key.
    pub fn find(&self, path: &str) -> Option<&Origin> {
        let mut p = path;
        loop {
            if let Some(o) = self.0.get(p) {
                return Some(o);
            }
            match p.rfind('.') {
                Some(i) => p = &p[..i],
                None => break,
            }
        }
        let below = format!("{path}.");
        self.0.range(below.clone()..).next().filter(|(k, _)| k.starts_with(&below)).map(|(_, o)| o)
    }

    /// Every file that contributed at least one key, in key order (deduplicated).
    pub fn files(&self) -> Vec<PathBuf> {
        let mut out: Vec<PathBuf> = Vec::new();
        for o in self.0.values() {
            if let Origin::File(p) = o
                && !out.contains(p)
            {
                out.push(p.clone());
            }
        }
        out
    }
}

fn join(prefix: &str, key: &str) -> String {
    if prefix.is_empty() { key.to_string() } else { format!("{prefix}.{key}") }
}

/// Tables tagged with different `kind`s are different designs: the child replaces the base
/// table instead of merging into it (so `avg_pool` does not inherit `c_abstractor`'s `depth`).
fn same_kind(a: &Table, b: &Table) -> bool {
    match (a.get("kind"), b.get("kind")) {
        (Some(x), Some(y)) => x == y,
        _ => true,
    }
}

/// Deep-merges `src` into `dst`: tables merge key by key, anything else (arrays included)
/// is replaced. Records `origin` for every key `src` sets.
pub fn merge(dst: &mut Table, src: Table, prefix: &str, origin: &Origin, origins: &mut Origins) {
    for (key, value) in src {
        let path = join(prefix, &key);
        match (dst.get_mut(&key), value) {
            (Some(Value::Table(d)), Value::Table(s)) if same_kind(d, &s) => {
                merge(d, s, &path, origin, origins);
            }
            // A new or replaced table: record its keys one by one, so keys it does not
            // write keep answering "default".
            (_, Value::Table(s)) => {
                origins.forget(&path);
                let mut fresh = Table::new();
                merge(&mut fresh, s, &path, origin, origins);
                dst.insert(key, Value::Table(fresh));
            }
            (_, value) => {
                origins.record(&path, origin);
                dst.insert(key, value);
            }
        }
    }
}

/// One `[[patch]]` entry: merge `set` into the table at `at` (or into every element of the
/// array of tables at `at`) whose keys match `where`. A missing `at` is not an error: the
/// patch simply does not apply (an overlay patching `model.llm.moe` leaves dense models alone).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Patch {
    pub at: String,
    #[serde(default, rename = "where")]
    pub when: Table,
    pub set: Table,
}

fn matches(t: &Table, when: &Table) -> bool {
    when.iter().all(|(k, v)| t.get(k) == Some(v))
}

/// Applies one patch; returns how many tables it changed.
pub fn apply_patch(
    root: &mut Table,
    patch: &Patch,
    origin: &Origin,
    origins: &mut Origins,
) -> Result<usize, String> {
    let segs: Vec<&str> = patch.at.split('.').collect();
    with_tree(root, |tree| {
        let Some(target) = lookup_mut(tree, &segs)? else {
            return Ok(0);
        };
        patch_target(target, patch, origin, origins)
    })
}

fn patch_target(
    target: &mut Value,
    patch: &Patch,
    origin: &Origin,
    origins: &mut Origins,
) -> Result<usize, String> {
    match target {
        Value::Table(t) => {
            if !matches(t, &patch.when) {
                return Ok(0);
            }
            merge(t, patch.set.clone(), &patch.at, origin, origins);
            Ok(1)
        }
        Value::Array(items) => {
            let mut n = 0;
            for (i, item) in items.iter_mut().enumerate() {
                if let Value::Table(t) = item
                    && matches(t, &patch.when)
                {
                    merge(t, patch.set.clone(), &format!("{}.{i}", patch.at), origin, origins);
                    n += 1;
                }
            }
            Ok(n)
        }
        other => Err(format!("patch at `{}` points to a {}, not a table", patch.at, other.type_str())),
    }
}

/// One step down: a key of a table or an index of an array.
fn step<'a>(v: &'a mut Value, seg: &str, create: bool) -> Result<Option<&'a mut Value>, String> {
    match v {
        Value::Table(t) => Ok(if create {
            Some(t.entry(seg).or_insert_with(|| Value::Table(Table::new())))
        } else {
            t.get_mut(seg)
        }),
        Value::Array(a) => {
            let n = a.len();
            let i: usize =
                seg.parse().map_err(|_| format!("`{seg}` indexes an array: use a number (0..{n})"))?;
            a.get_mut(i)
                .map(Some)
                .ok_or_else(|| format!("index {i} is out of range: the array has {n} elements"))
        }
        other => Err(format!("`{seg}` is below a {}, not a table", other.type_str())),
    }
}

/// Runs `f` on the whole tree as one `Value` (so paths can start at the root).
fn with_tree<R>(root: &mut Table, f: impl FnOnce(&mut Value) -> R) -> R {
    let mut tree = Value::Table(std::mem::take(root));
    let out = f(&mut tree);
    if let Value::Table(t) = tree {
        *root = t;
    }
    out
}

/// The value at a dotted path, or `None` if some key on the way is missing.
fn lookup_mut<'a>(tree: &'a mut Value, segs: &[&str]) -> Result<Option<&'a mut Value>, String> {
    let mut cur = tree;
    for seg in segs {
        cur = match step(cur, seg, false)? {
            Some(v) => v,
            None => return Ok(None),
        };
    }
    Ok(Some(cur))
}

/// Parses `--set` values as TOML (`448`, `0.1`, `true`, `[1, 2]`, `"x"`), falling back to a
/// plain string (`cuda`, `data/x.json`).
pub fn parse_set_value(raw: &str) -> Value {
    let raw = raw.trim();
    match format!("v = {raw}").parse::<Table>() {
        Ok(mut t) => t.remove("v").unwrap_or_else(|| Value::String(raw.into())),
        Err(_) => Value::String(raw.to_string()),
    }
}

/// Applies `--set section.key=value` (numeric segments index arrays:
/// `data.sources.0.weight=0.5`); intermediate tables are created as needed.
pub fn apply_set(root: &mut Table, arg: &str, origins: &mut Origins) -> Result<(), String> {
    let (key, raw) = arg.split_once('=').ok_or("expected section.key=value")?;
    let key = key.trim();
    let segs: Vec<&str> = key.split('.').collect();
    if segs.iter().any(|s| s.is_empty()) {
        return Err(format!("`{key}` is not a dotted key path"));
    }
    if segs[0] == "base" || segs[0] == "patch" {
        return Err(format!("`{}` can only be written in a file", segs[0]));
    }
    let (last, parents) = segs.split_last().expect("split yields at least one segment");
    let value = parse_set_value(raw);
    let table_path = key.rsplit_once('.').map_or("", |(parent, _)| parent);
    with_tree(root, |tree| {
        let mut cur = tree;
        for seg in parents {
            cur = step(cur, seg, true)?.expect("step creates missing tables");
        }
        match cur {
            Value::Table(t) => {
                // A new `kind` is a new design: drop the old kind's keys, as `merge` does.
                let replaced = *last == "kind" && t.get("kind").is_some_and(|old| *old != value);
                if replaced {
                    t.clear();
                    origins.forget(table_path);
                }
                t.insert(last.to_string(), value);
                Ok(())
            }
            Value::Array(_) => {
                *step(cur, last, false)?.expect("arrays never yield None") = value;
                Ok(())
            }
            other => Err(format!("`{last}` is below a {}, not a table", other.type_str())),
        }
    })?;
    origins.record(key, &Origin::Set(arg.to_string()));
    Ok(())
}
