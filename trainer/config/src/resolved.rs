//! The fully resolved config written into the run folder before step 0, and its hash
//! (prismatic-vlms keeps the same per run: the run is reproducible from its folder alone).

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::{ConfigError, LoadedConfig, RunConfig};

/// File names inside the run folder.
pub const RESOLVED_TOML: &str = "config.toml";
pub const RESOLVED_SHA256: &str = "config.sha256";
pub const RESOLVED_SOURCES: &str = "config.sources.txt";

/// What `LoadedConfig::write_resolved` wrote.
#[derive(Debug, Clone, PartialEq)]
pub struct ResolvedFiles {
    pub toml: PathBuf,
    /// Lower-case hex sha256 of the resolved TOML text.
    pub hash: String,
}

/// Lower-case hex sha256 of `text`.
pub fn config_hash(text: &str) -> String {
    Sha256::digest(text.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

impl RunConfig {
    /// Every key with its value (defaults included) as TOML; loading it back gives `self`.
    pub fn to_resolved_toml(&self) -> Result<String, ConfigError> {
        toml::to_string(self).map_err(|e| ConfigError::Serialize(e.to_string()))
    }

    /// sha256 of `to_resolved_toml()`: two runs with equal hashes have equal configs.
    pub fn hash(&self) -> Result<String, ConfigError> {
        Ok(config_hash(&self.to_resolved_toml()?))
    }
}

fn write_atomic(path: &Path, text: &str) -> Result<(), ConfigError> {
    let tmp = path.with_extension("tmp");
    let err = |source| ConfigError::Write { path: path.to_path_buf(), source };
    std::fs::write(&tmp, text).map_err(err)?;
    std::fs::rename(&tmp, path).map_err(err)
}

impl LoadedConfig {
    /// Writes `config.toml` (the resolved config), `config.sha256` (`sha256sum -c` format)
    /// and `config.sources.txt` (the files and flags it came from) into `run_dir`.
    pub fn write_resolved(&self, run_dir: &Path) -> Result<ResolvedFiles, ConfigError> {
        std::fs::create_dir_all(run_dir)
            .map_err(|source| ConfigError::Write { path: run_dir.to_path_buf(), source })?;
        let text = self.config.to_resolved_toml()?;
        let hash = config_hash(&text);
        let toml = run_dir.join(RESOLVED_TOML);
        write_atomic(&toml, &text)?;
        write_atomic(&run_dir.join(RESOLVED_SHA256), &format!("{hash}  {RESOLVED_TOML}\n"))?;
        write_atomic(&run_dir.join(RESOLVED_SOURCES), &self.describe_sources())?;
        Ok(ResolvedFiles { toml, hash })
    }

    /// The command-line equivalent of how this config was assembled, one item per line.
    pub fn describe_sources(&self) -> String {
        let mut out = format!("--config {}\n", self.sources.file.display());
        for f in self.files() {
            out.push_str(&format!("# contributes: {}\n", f.display()));
        }
        for o in &self.sources.overlays {
            out.push_str(&format!("--with {}\n", o.display()));
        }
        for s in &self.sources.sets {
            out.push_str(&format!("--set {s}\n"));
        }
        out
    }

    /// A run name derived from the config: `<file stem>-<first 8 hex of the hash>`, so two
    /// arms of a sweep never share a folder and the same config always maps to the same one.
    pub fn run_name(&self) -> Result<String, ConfigError> {
        let stem = self
            .sources
            .file
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "run".into());
        Ok(format!("{stem}-{}", &self.config.hash()?[..8]))
    }
}
