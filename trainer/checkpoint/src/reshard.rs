//! Elastic resume across a change of `parallel.ep`: the optimizer state of a checkpoint written
//! by `N` EP ranks, re-cut for rank `r` of `M`.
//!
//! Under expert parallelism EP rank `q` of `N` owns experts `[q·E/N, (q+1)·E/N)` of every MoE
//! layer (`parallel/expert_shard.rs`) and its optimizer file (`optim.bpk` for `q = 0`,
//! `optim-ep<q>.bpk` otherwise) holds the AdamW state of the dense parameters and of its own
//! experts only (the other experts are placeholders that never get a gradient). The dense
//! parameters' state is the same on every EP rank (their gradients are reduced over all ranks),
//! so it is taken from `optim.bpk`.
//!
//! burn's optimizer record (burn-optim `OptimizerRecord`) is a burnpack keyed by parameter id:
//! tensors `<id>.<field>` that carry the id (AdamW's two moments), scalars `<id>.<field>` (the
//! tensor rank `__rank`, AdamW's step count) and metadata `<id>` → parameter path. The weights
//! are saved whole with their ids and every rank loads the same file, so an id names the same
//! parameter before and after the change: taking each parameter's entries from the file that held
//! them gives exactly the state the new owner would have had.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use burn::module::ParamId;
use burn::store::burn_pack::{Reader, Scalar, Tensor, Writer};
use burn::tensor::Bytes;

/// A change of `parallel.ep` for one rank.
#[derive(Debug, Clone, Copy)]
pub struct EpChange {
    /// EP ranks that wrote the checkpoint (its optimizer files).
    pub saved: usize,
    /// EP ranks of this run, and this rank's place among them.
    pub ep: usize,
    pub rank: usize,
    /// Experts per MoE layer.
    pub num_experts: usize,
}

impl EpChange {
    /// Experts per rank, before and after; an error names the numbers that do not split.
    fn per_rank(&self) -> Result<(usize, usize), String> {
        let e = self.num_experts;
        for (what, n) in [
            ("the checkpoint was written with parallel.ep", self.saved),
            ("this run has parallel.ep", self.ep),
        ] {
            if e == 0 || !e.is_multiple_of(n) {
                return Err(format!(
                    "{what} = {n}, which does not divide model.llm.moe.num_experts = {e}: the \
                     experts' optimizer state cannot be re-cut (written with parallel.ep = {}, this \
                     run has parallel.ep = {}; both must divide the number of experts)",
                    self.saved, self.ep
                ));
            }
        }
        Ok((e / self.saved, e / self.ep))
    }
}

/// Rank `change.rank`'s optimizer state as burnpack bytes (what `GroupedAdamW::load_bytes`
/// reads), from the checkpoint's files; `file(q)` is EP rank `q`'s and `experts` gives each
/// expert parameter's expert ([`mm1_parallel::expert_index`]). Only the files that hold
/// something of this rank's are read.
pub fn reshard(
    file: &dyn Fn(usize) -> PathBuf,
    experts: &HashMap<ParamId, usize>,
    change: EpChange,
) -> Result<Bytes, String> {
    let (old, new) = change.per_rank()?;
    // The old file each parameter's state is taken from (`None`: not this rank's).
    let source = |id: u64| match experts.get(&ParamId::from(id)) {
        None => Some(0),
        Some(e) if e / new == change.rank => Some(e / old),
        Some(_) => None,
    };
    let mine = change.rank * new..(change.rank + 1) * new;
    let files: BTreeSet<usize> = std::iter::once(0).chain(mine.map(|e| e / old)).collect();
    let mut out = Record::default();
    for q in files {
        out.take_from(&file(q), q, &source)?;
    }
    out.into_bytes()
}

/// One record of the entries of the parameters `source` assigns to one of `files` (file number,
/// path): each parameter's state from the file that holds it (ZeRO slices re-cut by id).
pub(super) fn gather(
    files: &[(usize, PathBuf)],
    source: &dyn Fn(u64) -> Option<usize>,
) -> Result<Bytes, String> {
    let mut out = Record::default();
    for (q, path) in files {
        out.take_from(path, *q, source)?;
    }
    out.into_bytes()
}

/// Parameter id at the start of a record key (`<id>` or `<id>.<field>`).
fn id_of(key: &str) -> Option<u64> {
    key.split('.').next()?.parse().ok()
}

/// The entries of an optimizer record, gathered from several files.
#[derive(Default)]
struct Record {
    tensors: Vec<Tensor>,
    scalars: BTreeMap<String, Scalar>,
    metadata: BTreeMap<String, String>,
}

impl Record {
    /// Add what file `q` (at `path`) holds for this rank: the entries of the parameters whose
    /// `source` is `q`, and (from file 0) entries that name no parameter.
    fn take_from(
        &mut self,
        path: &Path,
        q: usize,
        source: &dyn Fn(u64) -> Option<usize>,
    ) -> Result<(), String> {
        let wanted = |id: Option<u64>| match id {
            Some(id) => source(id) == Some(q),
            None => q == 0,
        };
        let reader = Reader::from_file(path).map_err(|e| format!("{}: {e}", path.display()))?;
        self.scalars
            .extend(reader.scalars().iter().filter(|(k, _)| wanted(id_of(k))).map(|(k, v)| (k.clone(), *v)));
        self.metadata.extend(
            reader.metadata().iter().filter(|(k, _)| wanted(id_of(k))).map(|(k, v)| (k.clone(), v.clone())),
        );
        let tensors = reader.into_tensors().map_err(|e| format!("{}: {e}", path.display()))?;
        self.tensors.extend(tensors.into_iter().filter(|t| wanted(t.param_id.or_else(|| id_of(&t.name)))));
        Ok(())
    }

    fn into_bytes(self) -> Result<Bytes, String> {
        let mut w = Writer::new(self.tensors);
        for (k, v) in &self.scalars {
            w = w.with_scalar(k, *v);
        }
        for (k, v) in &self.metadata {
            w = w.with_metadata(k, v);
        }
        w.into_bytes().map_err(|e| format!("writing the re-cut optimizer state: {e}"))
    }
}
