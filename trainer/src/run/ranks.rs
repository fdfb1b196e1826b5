//! This process's place in the run: its rank among the data-parallel ranks the launcher started
//! (`mpirun`, `srun`, torchrun-style variables; one process by default) and the exchanges the
//! training loop makes with the others.

use std::sync::Arc;

use mm1_models::Mm1Model;

use super::RunError;
use crate::config::RunConfig;
use crate::parallel::data_parallel::{CommStats, DEFAULT_BUCKET_ELEMS, DataParallel};
use crate::parallel::{
    Collective, CollectiveError, FailureConfig, RankSync, all_gather_bytes, init_collective,
};
use crate::step::{LocalStep, StepSync};

/// Rank, world and the step synchronisation of this process.
pub struct Ranks {
    coll: Arc<dyn Collective>,
    /// `None` in a world of one.
    sync: Option<RankSync>,
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
        if p.ep > 1 {
            // The library has expert parallelism (parallel::expert_parallel, tested on 2 ranks); the
            // run loop does not yet checkpoint optimizer state that is sharded over EP ranks.
            return Err(RunError::Stop(format!(
                "parallel.ep = {}: mm1-train runs data parallel only (parallel.ep = 1) for now, \
                 because its checkpoints cannot yet hold expert-sharded optimizer state; see docs/distributed.md",
                p.ep
            )));
        }
        let sync = (world > 1).then(|| RankSync::data_parallel(coll.clone(), DEFAULT_BUCKET_ELEMS));
        Ok(Self { coll, sync })
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

    /// Rank 0's parameters on every rank (lazy parameters initialised first), verified by checksum.
    pub fn replicate(&self, model: Mm1Model) -> Result<Mm1Model, RunError> {
        if self.world() == 1 {
            return Ok(model);
        }
        let (model, _) =
            DataParallel::new(self.coll.clone(), DEFAULT_BUCKET_ELEMS).sync_module(model).map_err(comm)?;
        Ok(model)
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

    /// Communication of the last step (`None` in a world of one).
    pub fn take_comm_stats(&self) -> Option<CommStats> {
        self.sync.as_ref().map(RankSync::take_comm_stats)
    }
}
