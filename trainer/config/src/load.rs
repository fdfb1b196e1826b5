//! Reading a run config: `base = "..."` chains, `--with` overlays, `--set` overrides, then
//! serde with the key path of any failure mapped back to the file (or flag) that set it.

use std::path::{Component, Path, PathBuf};

use toml::{Table, Value};

use super::merge::{Origin, Origins, Patch, apply_patch, apply_set, merge};
use super::{ConfigError, RunConfig};

/// What a run config is made of, in the order it is applied: the file (with its `base`
/// chain), each overlay (`--with`), each `--set section.key=value`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ConfigSources {
    pub file: PathBuf,
    pub overlays: Vec<PathBuf>,
    pub sets: Vec<String>,
}

/// A resolved run config plus the layered tree it came from and the origin of every key.
#[derive(Debug, Clone)]
pub struct LoadedConfig {
    pub config: RunConfig,
    pub sources: ConfigSources,
    /// The merged TOML tree that was deserialised (defaults filled in when patches ran).
    pub merged: Table,
    origins: Origins,
}

impl ConfigSources {
    pub fn new(file: impl Into<PathBuf>) -> Self {
        Self { file: file.into(), ..Self::default() }
    }

    /// Adds a `--with` overlay (applied after the file, in call order).
    pub fn overlay(mut self, path: impl Into<PathBuf>) -> Self {
        self.overlays.push(path.into());
        self
    }

    /// Adds a `--set section.key=value` override (applied last, in call order).
    pub fn set(mut self, arg: impl Into<String>) -> Self {
        self.sets.push(arg.into());
        self
    }

    /// Layers, overrides and deserialises, then runs `RunConfig::validate`.
    pub fn load(&self) -> Result<LoadedConfig, ConfigError> {
        let loaded = self.load_unvalidated()?;
        loaded.config.validate().map_err(|e| loaded.with_origin(e))?;
        Ok(loaded)
    }

    /// Layers, overrides and deserialises without the cross-field checks.
    pub fn load_unvalidated(&self) -> Result<LoadedConfig, ConfigError> {
        let mut origins = Origins::default();
        let (mut tree, mut patches) = read_layered(&self.file, &mut Vec::new(), &mut origins)?;
        for overlay in &self.overlays {
            // Keys of an overlay (and of its own bases) are attributed to the overlay file.
            let (overlay_tree, overlay_patches) =
                read_layered(overlay, &mut Vec::new(), &mut Origins::default())?;
            merge(&mut tree, overlay_tree, "", &Origin::File(clean(overlay)), &mut origins);
            patches.extend(overlay_patches);
        }
        // Patches see the fully merged tree with every default filled in, so an overlay can
        // match on what the file chose even where the file relied on a default.
        if !patches.is_empty() {
            let resolved = deserialize(tree, &origins)?;
            tree = Table::try_from(&resolved).map_err(|e| ConfigError::Serialize(e.to_string()))?;
        }
        for (file, patch) in &patches {
            apply_patch(&mut tree, patch, &Origin::File(file.clone()), &mut origins)
                .map_err(|message| ConfigError::Layering { path: file.clone(), message })?;
        }
        for arg in &self.sets {
            apply_set(&mut tree, arg, &mut origins)
                .map_err(|message| ConfigError::BadSet { arg: arg.clone(), message })?;
        }
        let config = deserialize(tree.clone(), &origins)?;
        Ok(LoadedConfig { config, sources: self.clone(), merged: tree, origins })
    }
}

impl LoadedConfig {
    /// Shorthand for `ConfigSources::new(path).load()`.
    pub fn from_file(path: impl Into<PathBuf>) -> Result<Self, ConfigError> {
        ConfigSources::new(path).load()
    }

    /// Where the value at a dotted key was set (`None`: a default).
    pub fn origin_of(&self, key: &str) -> Option<String> {
        self.origins.find(key).map(|o| o.to_string())
    }

    /// Adds the origin of the key to a validation error.
    fn with_origin(&self, err: ConfigError) -> ConfigError {
        match err {
            ConfigError::Invalid { key, origin: None, message } => {
                ConfigError::Invalid { origin: self.origin_of(&key), key, message }
            }
            other => other,
        }
    }

    /// Every file that contributed a key (the file, its bases, overlays).
    pub fn files(&self) -> Vec<PathBuf> {
        self.origins.files()
    }
}

/// A tree plus the patches of the files it was read from (applied once everything is merged).
type Layered = (Table, Vec<(PathBuf, Patch)>);

/// Reads `path` and, recursively, its `base`; the child wins key by key.
fn read_layered(
    path: &Path,
    chain: &mut Vec<PathBuf>,
    origins: &mut Origins,
) -> Result<Layered, ConfigError> {
    let shown = clean(path);
    let canonical =
        path.canonicalize().map_err(|source| ConfigError::Read { path: shown.clone(), source })?;
    if let Some(i) = chain.iter().position(|p| *p == canonical) {
        let mut names: Vec<String> = chain[i..].iter().map(|p| relative(p)).collect();
        names.push(relative(&canonical));
        return Err(ConfigError::Cycle { chain: names.join(" -> ") });
    }
    let text =
        std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: shown.clone(), source })?;
    let mut table: Table = text
        .parse()
        .map_err(|e: toml::de::Error| ConfigError::Syntax { path: shown.clone(), message: e.to_string() })?;
    let layering = |message: String| ConfigError::Layering { path: shown.clone(), message };
    let patches = match table.remove("patch") {
        None => Vec::new(),
        Some(v) => {
            let list: Vec<Patch> =
                v.try_into().map_err(|e: toml::de::Error| layering(format!("[[patch]]: {}", e.message())))?;
            list.into_iter().map(|p| (shown.clone(), p)).collect()
        }
    };
    chain.push(canonical);
    let (mut tree, mut all_patches) = match table.remove("base") {
        None => (Table::new(), Vec::new()),
        Some(Value::String(base)) => {
            let dir = path.parent().unwrap_or(Path::new("."));
            read_layered(&dir.join(&base), chain, origins).map_err(|e| match e {
                ConfigError::Read { .. } => layering(format!("base = {base:?}: {e}")),
                other => other,
            })?
        }
        Some(other) => {
            return Err(layering(format!(
                "`base` must be a relative path string, got a {}",
                other.type_str()
            )));
        }
    };
    chain.pop();
    merge(&mut tree, table, "", &Origin::File(shown), origins);
    all_patches.extend(patches);
    Ok((tree, all_patches))
}

/// Serde on the merged tree; a failure names the dotted key, its section and its origin.
fn deserialize(tree: Table, origins: &Origins) -> Result<RunConfig, ConfigError> {
    serde_path_to_error::deserialize(Value::Table(tree)).map_err(|e| {
        let path = normalise_path(&e.path().to_string());
        let message = e.inner().message().to_string();
        classify(&path, &message, origins)
    })
}

/// `data.sources[0].weight` → `data.sources.0.weight`; the root (`.`) → empty.
fn normalise_path(p: &str) -> String {
    let p = p.replace('[', ".").replace(']', "");
    p.trim_matches('.').replace("..", ".")
}

fn classify(path: &str, message: &str, origins: &Origins) -> ConfigError {
    let origin_of = |key: &str| origins.find(key).map(|o| o.to_string()).unwrap_or_else(|| "defaults".into());
    if let Some(rest) = message.strip_prefix("unknown field `")
        && let Some((key, tail)) = rest.split_once('`')
    {
        // serde_path_to_error stops at the table that holds the unknown key.
        let section = path
            .strip_suffix(&format!(".{key}"))
            .or_else(|| (path == key).then_some(""))
            .unwrap_or(path)
            .to_string();
        let expected = tail
            .trim_start_matches(", expected one of ")
            .trim_start_matches(", expected ")
            .trim_start_matches(", there are no fields")
            .to_string();
        let full = if section.is_empty() { key.to_string() } else { format!("{section}.{key}") };
        return ConfigError::UnknownKey {
            key: key.to_string(),
            section: if section.is_empty() { "top level".into() } else { section },
            origin: origin_of(&full),
            expected: if expected.is_empty() { "(no keys)".into() } else { expected },
        };
    }
    ConfigError::BadValue {
        key: if path.is_empty() { "(top level)".into() } else { path.to_string() },
        origin: origin_of(path),
        message: message.to_string(),
    }
}

/// Removes `.` and `dir/..` pairs without touching the file system, so messages show
/// `configs/mm1-ablation-base.toml` rather than `ablations/../configs/...`.
pub(crate) fn clean(path: &Path) -> PathBuf {
    let mut out: Vec<Component> = Vec::new();
    for c in path.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir if matches!(out.last(), Some(Component::Normal(_))) => {
                out.pop();
            }
            c => out.push(c),
        }
    }
    out.iter().collect()
}

/// A canonical path shown relative to the working directory when possible.
fn relative(p: &Path) -> String {
    std::env::current_dir()
        .ok()
        .and_then(|cwd| cwd.canonicalize().ok())
        .and_then(|cwd| p.strip_prefix(cwd).ok().map(Path::to_path_buf))
        .unwrap_or_else(|| p.to_path_buf())
        .display()
        .to_string()
}
