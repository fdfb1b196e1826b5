//! ZeRO checkpoints: each data-parallel rank's slice of the optimizer state in its own file
//! (`optim.bpk` for rank 0, `optim-zero<r>.bpk` for rank `r`), and `zero-index.json` naming the
//! parameters (id and path) whose AdamW state each file holds.
//!
//! A resume on any number of ranks, with or without ZeRO, takes each parameter's entries from
//! the file the index names (the weights are saved whole with their ids, so an id names the same
//! parameter before and after): the new owner gets exactly the state the old one had.

use std::collections::HashMap;
use std::fs;
use std::path::Path;

use serde::{Deserialize, Serialize};

/// Written by rank 0 beside the slices.
pub const ZERO_INDEX: &str = "zero-index.json";

/// File of ZeRO rank `r`'s optimizer slice.
pub fn slice_file(rank: usize) -> String {
    if rank == 0 { super::OPTIM.to_string() } else { format!("optim-zero{rank}.bpk") }
}

/// Which slice file holds each parameter's optimizer state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ZeroIndex {
    /// `parallel.zero` of the run that wrote it.
    pub stage: u8,
    /// Data-parallel ranks, i.e. slice files.
    pub ranks: usize,
    /// Every partitioned parameter, in the model's visiting order.
    pub params: Vec<ZeroEntry>,
}

/// One parameter and the rank whose file holds its state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ZeroEntry {
    pub id: u64,
    pub path: String,
    pub rank: usize,
}

impl ZeroIndex {
    /// The slice holding each parameter id.
    pub fn owners(&self) -> HashMap<u64, usize> {
        self.params.iter().map(|p| (p.id, p.rank)).collect()
    }

    pub(super) fn write(&self, dir: &Path) -> std::io::Result<()> {
        let path = dir.join(ZERO_INDEX);
        fs::write(&path, serde_json::to_string_pretty(self).map_err(std::io::Error::other)?)?;
        fs::File::open(&path)?.sync_all()
    }

    /// The index of checkpoint folder `dir`, `None` when it was written without ZeRO.
    pub(super) fn read(dir: &Path) -> Result<Option<Self>, String> {
        let path = dir.join(ZERO_INDEX);
        let text = match fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(format!("{ZERO_INDEX}: {e}")),
        };
        let index: Self = serde_json::from_str(&text).map_err(|e| format!("{ZERO_INDEX}: {e}"))?;
        if let Some(p) = index.params.iter().find(|p| p.rank >= index.ranks) {
            return Err(format!(
                "{ZERO_INDEX}: parameter {} is in slice {} but the index has {} slices",
                p.path, p.rank, index.ranks
            ));
        }
        Ok(Some(index))
    }
}

impl ZeroIndex {
    /// The index of `part` (stage `stage`) with the paths of `model`'s parameters.
    pub fn of<M: burn::module::Module>(
        stage: u8,
        part: &mm1_parallel::zero::ZeroPartition,
        model: &M,
    ) -> Self {
        let paths: HashMap<_, _> =
            mm1_optim::list_params(model).into_iter().map(|p| (p.id, p.path)).collect();
        let params = (part.params().iter())
            .map(|p| ZeroEntry {
                id: p.id.val(),
                path: paths.get(&p.id).cloned().unwrap_or_default(),
                rank: p.owner,
            })
            .collect();
        Self { stage, ranks: part.ranks(), params }
    }
}
