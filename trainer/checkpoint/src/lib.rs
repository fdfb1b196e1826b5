//! Checkpoints: model and optimizer in burnpack (which keeps parameter ids, so AdamW moments
//! find their parameters again), plus `state.json` and the resolved `config.toml`.
//!
//! A checkpoint is written into `checkpoints/.tmp-step-N/` and renamed to
//! `checkpoints/step-N/` only when complete, so a crash (even `kill -9`) never leaves a
//! folder that looks complete. Only `step-N` folders holding a parsable `state.json` count.
//!
//! With expert parallelism the optimizer state differs between the ranks of an EP group (each
//! holds the moments of its own experts): EP rank `r > 0` first writes `optim-ep<r>.bpk` into
//! `checkpoints/.tmp-shards-step-N/`, and rank 0 moves those files into the checkpoint before
//! publishing it ([`CheckpointDir::save_sharded`]). A run under another `parallel.ep` re-cuts
//! those files per parameter id ([`Checkpoint::load_optim_resharded`], `reshard.rs`).
//!
//! With ZeRO (`parallel.zero > 0`) every data-parallel rank holds a slice of the optimizer state:
//! rank `r > 0` stages `optim-zero<r>.bpk` the same way, and rank 0 adds `zero-index.json` naming
//! the parameters of each slice ([`OptimLayout::Zero`], `zero_index.rs`). Loading takes each
//! parameter's state from the slice holding it, on any number of ranks
//! ([`Checkpoint::load_optim_where`]). `optim_files.rs` holds the layouts and these loaders.
//!
//! Every published folder carries `manifest.json` (length and CRC-32C of each file, see
//! `manifest.rs`). [`CheckpointDir::latest`] returns the newest checkpoint whose files match it;
//! a damaged one is reported, naming the file, and the previous one is used instead.

mod manifest;
mod optim_files;
mod reshard;
mod state;
mod writer;
mod zero_index;

use std::fs;
use std::path::{Path, PathBuf};

use burn::module::Module;
use burn::store::{BurnpackStore, ModuleSnapshot};

pub use manifest::{FileSum, MANIFEST, Manifest};
pub use optim_files::OptimLayout;
use optim_files::optim_file;
pub use reshard::EpChange;
pub use state::{Counters, RngState, TrainState};
pub use writer::{BackgroundWriter, Written};
pub use zero_index::{ZERO_INDEX, ZeroEntry, ZeroIndex, slice_file};

use mm1_optim::GroupedAdamW;

const MODEL: &str = "model.bpk";
const OPTIM: &str = "optim.bpk";
const STATE: &str = "state.json";
const CONFIG: &str = "config.toml";
const TMP_PREFIX: &str = ".tmp-";

/// Errors reading or writing checkpoints; each names the file.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error("checkpoint {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("checkpoint {path}: {msg}")]
    Format { path: PathBuf, msg: String },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> CheckpointError + '_ {
    move |source| CheckpointError::Io { path: path.to_path_buf(), source }
}

fn format_err(path: &Path, msg: impl std::fmt::Display) -> CheckpointError {
    CheckpointError::Format { path: path.to_path_buf(), msg: msg.to_string() }
}

/// The `checkpoints/` folder of a run, keeping the last `keep` checkpoints.
#[derive(Debug, Clone)]
pub struct CheckpointDir {
    root: PathBuf,
    keep: usize,
}

/// One complete checkpoint found on disk.
#[derive(Debug, Clone)]
pub struct Checkpoint {
    pub path: PathBuf,
    pub state: TrainState,
}

/// Folder name of the checkpoint after `step` optimizer steps.
pub fn step_dir_name(step: u64) -> String {
    format!("step-{step:08}")
}

impl CheckpointDir {
    /// `keep = 0` keeps every checkpoint.
    pub fn new(root: impl Into<PathBuf>, keep: usize) -> Self {
        Self { root: root.into(), keep }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Write a checkpoint for `state.step` and prune old ones. Returns its folder.
    pub fn save<M: Module>(
        &self,
        model: &M,
        optim: &GroupedAdamW,
        state: &TrainState,
        config_toml: &str,
    ) -> Result<PathBuf, CheckpointError> {
        self.save_sharded(model, optim, state, config_toml, &OptimLayout::Experts(1))
    }

    fn shard_staging(&self, step: u64) -> PathBuf {
        self.root.join(format!("{TMP_PREFIX}shards-{}", step_dir_name(step)))
    }

    /// EP rank `ep_rank` (> 0): stage this rank's optimizer state for the checkpoint of `step`,
    /// before rank 0's [`save_sharded`](Self::save_sharded).
    pub fn save_optim_shard(
        &self,
        step: u64,
        ep_rank: usize,
        optim: &GroupedAdamW,
    ) -> Result<(), CheckpointError> {
        self.stage_optim(step, &optim_file(ep_rank), optim)
    }

    /// ZeRO rank `rank` (> 0): stage this rank's slice of the optimizer state, before rank 0's
    /// [`save_sharded`](Self::save_sharded) with [`OptimLayout::Zero`].
    pub fn save_optim_slice(
        &self,
        step: u64,
        rank: usize,
        optim: &GroupedAdamW,
    ) -> Result<(), CheckpointError> {
        self.stage_optim(step, &slice_file(rank), optim)
    }

    fn stage_optim(&self, step: u64, name: &str, optim: &GroupedAdamW) -> Result<(), CheckpointError> {
        let dir = self.shard_staging(step);
        fs::create_dir_all(&dir).map_err(io(&dir))?;
        let path = dir.join(name);
        let tmp = path.with_extension("partial");
        let bytes = optim.to_bytes().map_err(|e| format_err(&path, e))?;
        fs::write(&tmp, &*bytes).map_err(io(&tmp))?;
        fs::File::open(&tmp).and_then(|f| f.sync_all()).map_err(io(&tmp))?;
        fs::rename(&tmp, &path).map_err(io(&path))
    }

    /// [`save`](Self::save) with the optimizer state split as `layout` says: the files that the
    /// other ranks staged ([`save_optim_shard`](Self::save_optim_shard),
    /// [`save_optim_slice`](Self::save_optim_slice)) join the checkpoint.
    pub fn save_sharded<M: Module>(
        &self,
        model: &M,
        optim: &GroupedAdamW,
        state: &TrainState,
        config_toml: &str,
        layout: &OptimLayout,
    ) -> Result<PathBuf, CheckpointError> {
        let optim_bytes = optim.to_bytes().map_err(|e| format_err(&self.root.join(OPTIM), e))?;
        self.write(model, &optim_bytes, state, config_toml, layout)
    }

    /// [`save_sharded`](Self::save_sharded) with the optimizer state already serialised (what
    /// the background writer holds).
    pub fn write<M: Module>(
        &self,
        model: &M,
        optim_bytes: &[u8],
        state: &TrainState,
        config_toml: &str,
        layout: &OptimLayout,
    ) -> Result<PathBuf, CheckpointError> {
        fs::create_dir_all(&self.root).map_err(io(&self.root))?;
        let name = step_dir_name(state.step);
        let tmp = self.root.join(format!("{TMP_PREFIX}{name}"));
        let dst = self.root.join(&name);
        if tmp.exists() {
            fs::remove_dir_all(&tmp).map_err(io(&tmp))?;
        }
        fs::create_dir_all(&tmp).map_err(io(&tmp))?;

        // 1. tensors
        let model_path = tmp.join(MODEL);
        model
            .save_into(
                &mut BurnpackStore::from_file(&model_path)
                    .auto_extension(false)
                    .overwrite(true)
                    .metadata("step", state.step.to_string()),
            )
            .map_err(|e| format_err(&model_path, e))?;
        let optim_path = tmp.join(OPTIM);
        fs::write(&optim_path, optim_bytes).map_err(io(&optim_path))?;
        let staging = self.shard_staging(state.step);
        for name in layout.staged() {
            let from = staging.join(&name);
            if !from.is_file() {
                return Err(format_err(&from, "the rank of this file did not write its optimizer state"));
            }
            fs::rename(&from, tmp.join(&name)).map_err(io(&from))?;
        }
        if let OptimLayout::Zero(index) = layout {
            index.write(&tmp).map_err(io(&tmp.join(ZERO_INDEX)))?;
        }
        // 2. config, then state.json last: its presence marks the folder complete.
        let config_path = tmp.join(CONFIG);
        fs::write(&config_path, config_toml).map_err(io(&config_path))?;
        let state_path = tmp.join(STATE);
        let json = serde_json::to_string_pretty(state).map_err(|e| format_err(&state_path, e))?;
        fs::write(&state_path, json).map_err(io(&state_path))?;
        for f in [&model_path, &optim_path, &config_path, &state_path] {
            fs::File::open(f).and_then(|f| f.sync_all()).map_err(io(f))?;
        }
        Manifest::write(&tmp).map_err(io(&tmp.join(MANIFEST)))?;
        // 3. publish atomically; a checkpoint of the same step (re-saved after a resume) is replaced.
        if dst.exists() {
            let old = self.root.join(format!("{TMP_PREFIX}old-{name}"));
            fs::rename(&dst, &old).map_err(io(&dst))?;
            fs::rename(&tmp, &dst).map_err(io(&dst))?;
            fs::remove_dir_all(&old).map_err(io(&old))?;
        } else {
            fs::rename(&tmp, &dst).map_err(io(&dst))?;
        }
        if let Ok(d) = fs::File::open(&self.root) {
            let _ = d.sync_all();
        }
        if staging.exists() {
            fs::remove_dir_all(&staging).map_err(io(&staging))?;
        }
        self.prune()?;
        Ok(dst)
    }

    /// Complete checkpoints, oldest first. Incomplete ones (no `state.json`, unreadable
    /// state, missing tensor files) and `.tmp-*` leftovers are not listed.
    pub fn list(&self) -> Result<Vec<Checkpoint>, CheckpointError> {
        let mut out = Vec::new();
        let entries = match fs::read_dir(&self.root) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
            Err(e) => return Err(io(&self.root)(e)),
        };
        for entry in entries {
            let entry = entry.map_err(io(&self.root))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some(step) = name.strip_prefix("step-").and_then(|s| s.parse::<u64>().ok()) else {
                continue;
            };
            let path = entry.path();
            if let Some(state) = read_complete(&path)
                && state.step == step
            {
                out.push(Checkpoint { path, state });
            }
        }
        out.sort_by_key(|c| c.state.step);
        Ok(out)
    }

    /// The newest complete checkpoint whose files match its manifest, if any; what is skipped or
    /// unverifiable is reported on stderr ([`latest_verified`](Self::latest_verified)).
    pub fn latest(&self) -> Result<Option<Checkpoint>, CheckpointError> {
        self.latest_verified(&mut |m| eprintln!("warning: {m}"))
    }

    /// The newest complete checkpoint whose files match its manifest. A damaged one is reported
    /// through `warn` (naming the file) and the previous one tried; when checkpoints exist but
    /// none is intact, the error names what is wrong with each. A folder without a manifest
    /// (written before manifests existed) is used with a warning.
    pub fn latest_verified(
        &self,
        warn: &mut dyn FnMut(String),
    ) -> Result<Option<Checkpoint>, CheckpointError> {
        let all = self.list()?;
        let mut damaged = Vec::new();
        for ckpt in all.into_iter().rev() {
            match Manifest::verify(&ckpt.path) {
                Ok(true) => return Ok(Some(ckpt)),
                Ok(false) => {
                    warn(format!("checkpoint {} has no {MANIFEST}: used unverified", ckpt.path.display()));
                    return Ok(Some(ckpt));
                }
                Err(why) => {
                    warn(format!(
                        "checkpoint {} is damaged ({why}); falling back to the previous checkpoint",
                        ckpt.path.display()
                    ));
                    damaged.push(format!("{}: {why}", ckpt.path.display()));
                }
            }
        }
        if damaged.is_empty() {
            return Ok(None);
        }
        Err(format_err(&self.root, format!("no intact checkpoint to resume from: {}", damaged.join("; "))))
    }

    /// Remove `.tmp-*` leftovers of an interrupted save. Returns what was removed.
    pub fn clean_partial(&self) -> Result<Vec<PathBuf>, CheckpointError> {
        let mut removed = Vec::new();
        let Ok(entries) = fs::read_dir(&self.root) else {
            return Ok(removed);
        };
        for entry in entries.flatten() {
            if entry.file_name().to_string_lossy().starts_with(TMP_PREFIX) {
                let p = entry.path();
                fs::remove_dir_all(&p).map_err(io(&p))?;
                removed.push(p);
            }
        }
        Ok(removed)
    }

    fn prune(&self) -> Result<(), CheckpointError> {
        if self.keep == 0 {
            return Ok(());
        }
        let all = self.list()?;
        let n = all.len().saturating_sub(self.keep);
        for c in &all[..n] {
            fs::remove_dir_all(&c.path).map_err(io(&c.path))?;
        }
        Ok(())
    }
}

fn read_complete(dir: &Path) -> Option<TrainState> {
    if !dir.join(MODEL).is_file() || !dir.join(OPTIM).is_file() || !dir.join(CONFIG).is_file() {
        return None;
    }
    let text = fs::read_to_string(dir.join(STATE)).ok()?;
    serde_json::from_str(&text).ok()
}

impl Checkpoint {
    /// Load the weights (and their parameter ids) into `model`, which must have the same
    /// structure; missing or unexpected tensors are an error.
    pub fn load_model<M: Module>(&self, model: M) -> Result<M, CheckpointError> {
        load_model_file(model, &self.path.join(MODEL))
    }

    /// The resolved config this checkpoint was trained with.
    pub fn config_text(&self) -> Result<String, CheckpointError> {
        let path = self.path.join(CONFIG);
        fs::read_to_string(&path).map_err(io(&path))
    }
}

/// Load a burnpack weights file into `model`, failing on any missing/unused/mismatched tensor.
pub fn load_model_file<M: Module>(mut model: M, path: &Path) -> Result<M, CheckpointError> {
    let result = model
        .load_from(&mut BurnpackStore::from_file(path).auto_extension(false))
        .map_err(|e| format_err(path, e))?;
    if !result.errors.is_empty() || !result.missing.is_empty() || !result.unused.is_empty() {
        return Err(format_err(
            path,
            format!(
                "does not match the model: {} errors {:?}, missing {:?}, unused {:?}",
                result.errors.len(),
                result.errors.iter().take(3).map(|e| e.to_string()).collect::<Vec<_>>(),
                result.missing.iter().take(5).collect::<Vec<_>>(),
                result.unused.iter().take(5).collect::<Vec<_>>()
            ),
        ));
    }
    Ok(model)
}
