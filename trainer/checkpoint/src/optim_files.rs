//! The optimizer files of a checkpoint: how the AdamW state is split over them when written
//! ([`OptimLayout`]: one file, one per EP rank, or one slice per ZeRO rank with its index) and
//! how a rank reads back its own part of it ([`Checkpoint`]'s `load_optim*`).

use std::collections::HashMap;
use std::fs;
use std::path::PathBuf;

use burn::module::ParamId;

use super::zero_index::{ZeroIndex, slice_file};
use super::{Checkpoint, CheckpointError, EpChange, OPTIM, format_err, io, reshard};
use mm1_optim::GroupedAdamW;

/// File of EP rank `r`'s optimizer state (`optim.bpk` for rank 0).
pub(super) fn optim_file(ep_rank: usize) -> String {
    if ep_rank == 0 { OPTIM.to_string() } else { format!("optim-ep{ep_rank}.bpk") }
}

/// How the optimizer state of a checkpoint is split over files.
#[derive(Debug, Clone, PartialEq)]
pub enum OptimLayout {
    /// `optim.bpk`, plus `optim-ep<r>.bpk` from EP ranks `1..ep` (1: one file).
    Experts(usize),
    /// ZeRO slices `optim.bpk`, `optim-zero<r>.bpk` (ranks `1..index.ranks`) and the index.
    Zero(ZeroIndex),
}

impl OptimLayout {
    /// Files other ranks staged for the checkpoint.
    pub(super) fn staged(&self) -> Vec<String> {
        match self {
            Self::Experts(ep) => (1..*ep).map(optim_file).collect(),
            Self::Zero(index) => (1..index.ranks).map(slice_file).collect(),
        }
    }
}

impl Checkpoint {
    /// Restore the optimizer state into `optim` (built for the loaded model); the whole state,
    /// also from ZeRO slices.
    pub fn load_optim(&self, optim: GroupedAdamW) -> Result<GroupedAdamW, CheckpointError> {
        if self.zero_index()?.is_some() {
            return self.load_optim_where(optim, &|_| true);
        }
        self.load_optim_shard(optim, 0)
    }

    /// The ZeRO index, `None` when the checkpoint was written without ZeRO.
    pub fn zero_index(&self) -> Result<Option<ZeroIndex>, CheckpointError> {
        ZeroIndex::read(&self.path).map_err(|e| format_err(&self.path, e))
    }

    /// The optimizer state of the parameters `keep` accepts, each from the file holding it: a
    /// ZeRO slice (any number of ranks before and after) or the single `optim.bpk`. A checkpoint
    /// with expert-parallel files is re-cut by [`load_optim_resharded`](Self::load_optim_resharded)
    /// instead, and is an error here naming its `parallel.ep`.
    pub fn load_optim_where(
        &self,
        optim: GroupedAdamW,
        keep: &dyn Fn(ParamId) -> bool,
    ) -> Result<GroupedAdamW, CheckpointError> {
        let saved_ep = self.ep_shards();
        if saved_ep > 1 {
            return Err(format_err(
                &self.path,
                format!(
                    "written with parallel.ep = {saved_ep} (its experts' optimizer state is split by expert); \
                     parallel.zero > 0 needs parallel.ep = 1: resume with parallel.ep = {saved_ep} and \
                     parallel.zero = 0 first"
                ),
            ));
        }
        let (owners, ranks) = match self.zero_index()? {
            Some(index) => (Some(index.owners()), index.ranks),
            None => (None, 1),
        };
        let source = |id: u64| {
            let file = owners.as_ref().map_or(Some(0), |o| o.get(&id).copied())?;
            keep(ParamId::from(id)).then_some(file)
        };
        // only the slices holding something this rank keeps are read
        let files: Vec<(usize, PathBuf)> = (0..ranks)
            .filter(|&r| {
                owners.as_ref().is_none_or(|o| o.iter().any(|(&id, &q)| q == r && keep(ParamId::from(id))))
            })
            .map(|r| (r, self.path.join(slice_file(r))))
            .collect();
        let bytes = reshard::gather(&files, &source).map_err(|e| format_err(&self.path, e))?;
        optim.load_bytes(bytes).map_err(|e| format_err(&self.path, e))
    }

    /// The `parallel.ep` this checkpoint was written with: its number of optimizer files.
    pub fn ep_shards(&self) -> usize {
        1 + (1..).take_while(|r| self.path.join(optim_file(*r)).is_file()).count()
    }

    /// Restore EP rank `ep_rank`'s optimizer state (see the module docs).
    pub fn load_optim_shard(
        &self,
        optim: GroupedAdamW,
        ep_rank: usize,
    ) -> Result<GroupedAdamW, CheckpointError> {
        let path = self.path.join(optim_file(ep_rank));
        let bytes = fs::read(&path).map_err(io(&path))?;
        optim.load_bytes(burn::tensor::Bytes::from_bytes_vec(bytes)).map_err(|e| format_err(&path, e))
    }

    /// The optimizer state of rank `change.rank` of `change.ep` EP ranks when this checkpoint was
    /// written by `change.saved` (another `parallel.ep`): the dense parameters' from `optim.bpk`,
    /// each of this rank's experts' from the file of the rank that owned it (see `reshard.rs`).
    /// `experts` gives each expert parameter's expert ([`mm1_parallel::expert_index`]).
    pub fn load_optim_resharded(
        &self,
        optim: GroupedAdamW,
        experts: &HashMap<ParamId, usize>,
        change: EpChange,
    ) -> Result<GroupedAdamW, CheckpointError> {
        let file = |q: usize| self.path.join(optim_file(q));
        let bytes = reshard::reshard(&file, experts, change).map_err(|e| format_err(&self.path, e))?;
        optim.load_bytes(bytes).map_err(|e| format_err(&self.path, e))
    }
}
