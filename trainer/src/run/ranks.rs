//! This process's place in the run: its rank among the data-parallel ranks the launcher started
//! (`mpirun`, `srun`, torchrun-style variables; one process by default), its expert-parallel
//! group (`parallel.ep` consecutive ranks sharing the MoE experts) and the exchanges the
//! training loop makes with the others.

use std::sync::Arc;

use mm1_models::Mm1Model;

use super::RunError;
use crate::config::RunConfig;
use crate::eval::{GatherJson, WorkSplit};
use crate::parallel::data_parallel::{CommStats, DEFAULT_BUCKET_ELEMS, DataParallel};
use crate::parallel::expert_parallel::{AllToAllDispatch, install_dispatch};
use crate::parallel::zero::ZeroPartition;
use crate::parallel::{
    Collective, CollectiveError, FailureConfig, RankSync, all_gather_bytes, gather_experts, init_collective,
    shard_experts,
};
use crate::step::{LocalStep, StepSync};

/// Rank, world and the step synchronisation of this process.
pub struct Ranks {
    coll: Arc<dyn Collective>,
    /// `None` in a world of one.
    sync: Option<RankSync>,
    /// The EP group and the experts per MoE layer (`None` without expert parallelism).
    experts: Option<(Arc<dyn Collective>, usize)>,
}

fn comm(e: CollectiveError) -> RunError {
    RunError::Stop(format!("distributed: {e}"))
}

impl Ranks {
    /// Join the ranks the launcher started; their number must be `parallel.dp`.
    pub fn init(cfg: &RunConfig) -> Result<Self, RunError> {
        let p = &cfg.parallel;
        let failure = FailureConfig { collective_timeout_s: p.collective_timeout_s as f64 };
        let coll = init_collective(failure).map_err(comm)?;
        let world = coll.world_size();
        if world != p.dp {
            return Err(RunError::Stop(format!(
                "parallel.dp = {} but the launcher started {world} rank(s); launch {} ranks \
                 (scripts/launch-local.sh {} CONFIG) or set --set parallel.dp={world}",
                p.dp, p.dp, p.dp
            )));
        }
        if world == 1 {
            return Ok(Self { coll, sync: None, experts: None });
        }
        if p.ep == 1 {
            let sync = RankSync::data_parallel(coll.clone(), DEFAULT_BUCKET_ELEMS)
                .with_zero(p.zero, DEFAULT_BUCKET_ELEMS)
                .map_err(comm)?;
            return Ok(Self { coll, sync: Some(sync), experts: None });
        }
        let num_experts = cfg.model.llm.moe.as_ref().map_or(0, |m| m.num_experts);
        let (sync, group) =
            RankSync::expert_parallel(coll.clone(), p.ep, DEFAULT_BUCKET_ELEMS).map_err(comm)?;
        Ok(Self { coll, sync: Some(sync), experts: Some((group, num_experts)) })
    }

    pub fn rank(&self) -> usize {
        self.coll.rank()
    }

    pub fn world(&self) -> usize {
        self.coll.world_size()
    }

    /// Rank 0 writes the run folder: logs, checkpoints, evaluation files.
    pub fn is_main(&self) -> bool {
        self.rank() == 0
    }

    /// What the training step exchanges with the other ranks.
    pub fn step_sync(&self) -> &dyn StepSync {
        match &self.sync {
            Some(s) => s,
            None => &LocalStep,
        }
    }

    /// Name the step for the failure detector's messages.
    pub fn set_step(&self, step: u64) {
        self.coll.set_step(step);
    }

    /// Wait for every rank (e.g. until rank 0 has written the synthetic shards).
    pub fn barrier(&self) -> Result<(), RunError> {
        self.coll.barrier().map_err(comm)
    }

    /// Rank 0's parameters on every rank (lazy parameters initialised first), verified by
    /// checksum; with expert parallelism, only this rank's experts kept and MoE tokens
    /// dispatched to their expert's rank.
    pub fn replicate(&self, model: Mm1Model) -> Result<Mm1Model, RunError> {
        if self.world() == 1 {
            return Ok(model);
        }
        let (model, _) = self.data_parallel().sync_module(model).map_err(comm)?;
        self.with_dispatch(self.shard_experts(model)?)
    }

    /// A model every rank loaded from the same checkpoint: checked to be identical everywhere
    /// (checksum), and with expert parallelism sharded and given its dispatcher. Nothing is
    /// broadcast.
    pub fn adopt(&self, model: Mm1Model) -> Result<Mm1Model, RunError> {
        if self.world() == 1 {
            return Ok(model);
        }
        self.data_parallel().verify_replicated(&model).map_err(comm)?;
        self.with_dispatch(self.shard_experts(model)?)
    }

    /// Only the experts this rank owns (the others become empty placeholders); a no-op
    /// without expert parallelism. Called again after each checkpoint, for the EP group's rank 0
    /// which gathered every expert to write it (a no-op elsewhere).
    pub fn shard_experts(&self, model: Mm1Model) -> Result<Mm1Model, RunError> {
        match &self.experts {
            Some((group, n)) => shard_experts(model, group.rank(), group.world_size(), *n).map_err(comm),
            None => Ok(model),
        }
    }

    fn data_parallel(&self) -> DataParallel {
        DataParallel::new(self.coll.clone(), DEFAULT_BUCKET_ELEMS)
    }

    fn with_dispatch(&self, model: Mm1Model) -> Result<Mm1Model, RunError> {
        let Some((group, num_experts)) = &self.experts else { return Ok(model) };
        let dispatch = AllToAllDispatch::new(group.clone(), *num_experts).map_err(comm)?;
        Ok(install_dispatch(model, Arc::new(dispatch)))
    }

    /// This rank's index in its EP group (0 without expert parallelism).
    pub fn ep_rank(&self) -> usize {
        self.experts.as_ref().map_or(0, |(g, _)| g.rank())
    }

    /// Who owns which parameter's optimizer state under ZeRO (`None` without ZeRO, or on one rank).
    pub fn zero_partition(&self, model: &Mm1Model) -> Option<Arc<ZeroPartition>> {
        let zero = self.sync.as_ref()?.zero()?;
        Some(zero.partition(model))
    }

    /// `parallel.zero` in effect (0 on one rank: nothing to shard).
    pub fn zero_stage(&self) -> u8 {
        self.sync.as_ref().and_then(RankSync::zero).map_or(0, |z| z.stage())
    }

    /// Ranks per EP group (1 without expert parallelism).
    pub fn ep_size(&self) -> usize {
        self.experts.as_ref().map_or(1, |(g, _)| g.world_size())
    }

    /// Every expert's trained parameters from its owner on the EP group's rank 0, which writes the
    /// checkpoint (a collective; the other ranks stay sharded).
    pub fn gather_experts(&self, model: Mm1Model) -> Result<Mm1Model, RunError> {
        match &self.experts {
            Some((group, n)) => gather_experts(model, group.as_ref(), *n).map_err(comm),
            None => Ok(model),
        }
    }

    /// How this rank shares an evaluation: data-parallel ranks split the items (`gather` is
    /// [`Ranks::gather_json`]); with expert parallelism every rank evaluates everything in
    /// lockstep, since each forward pass needs the whole EP group.
    pub fn eval_split<'a>(&self, gather: GatherJson<'a>) -> WorkSplit<'a> {
        if self.experts.is_some() {
            return WorkSplit { rank: 0, world: 1, gather };
        }
        WorkSplit { rank: self.rank(), world: self.world(), gather }
    }

    /// Every rank's `value`, in rank order, on every rank.
    pub fn gather_json(&self, value: &serde_json::Value) -> Result<Vec<serde_json::Value>, RunError> {
        if self.world() == 1 {
            return Ok(vec![value.clone()]);
        }
        let bytes = serde_json::to_vec(value).map_err(|e| RunError::Stop(format!("serialising: {e}")))?;
        let all = all_gather_bytes(self.coll.as_ref(), bytes).map_err(comm)?;
        all.iter()
            .enumerate()
            .map(|(r, b)| {
                serde_json::from_slice(b).map_err(|e| RunError::Stop(format!("state from rank {r}: {e}")))
            })
            .collect()
    }

    /// The largest of every rank's `value`, on every rank (one small all-gather).
    pub fn agree_max(&self, value: u64) -> Result<u64, RunError> {
        if self.world() == 1 {
            return Ok(value);
        }
        let all = self.coll.all_gather_u64(vec![value]).map_err(comm)?;
        Ok(all.into_iter().max().unwrap_or(value))
    }

    /// Communication of the last step (`None` in a world of one).
    pub fn take_comm_stats(&self) -> Option<CommStats> {
        self.sync.as_ref().map(RankSync::take_comm_stats)
    }
}
