//! Distributed training: how the computation is spread over processes (the model code knows
//! nothing of ranks; see `docs/distributed.md`). The trainer joins these exchanges to its step
//! (`mm1_trainer::parallel::RankSync`); this crate knows nothing of the trainer.
//!
//! - [`Collective`]: the communication interface; [`SingleProcess`] (default) and
//!   `MpiCollective` (feature `mpi`); [`init_collective`] picks one from the launcher's
//!   environment ([`LaunchInfo`]).
//! - [`data_parallel`]: identical initial weights on every rank, token-weighted bucketed
//!   gradient all-reduce, communication timing.
//! - [`expert_parallel`]: all-to-all token dispatch for MoE layers (the models crate's
//!   `ExpertDispatch`), dense/expert gradient reduction groups; [`shard_experts`] keeps only a
//!   rank's own experts, [`gather_experts`] copies each expert from its owner to rank 0 before
//!   a checkpoint, [`expert_index`] names each expert parameter's expert.
//! - [`all_to_all_grad`]: a differentiable all-to-all (backward = the reverse exchange), the
//!   building block of expert-parallel token dispatch.
//! - [`zero`]: ZeRO stages 1 and 2 (`parallel.zero`): optimizer state (and reduced gradients)
//!   sharded over the data-parallel ranks, updated parameters all-gathered back.
//! - [`watchdog`]: collective timeouts that name the dead or hung rank and the step.
//! - `nccl` (feature `cuda`): burn's in-process NCCL all-reduce over the GPUs of one node.
//! - [`params`] and [`param_kind`]: every parameter with its dotted path, and what it is (expert,
//!   embedding, norm, ...) from that path; expert sharding and ZeRO's partition read them, and so
//!   do the trainer's optimizer groups.

pub mod all_to_all_grad;
mod collective;
pub mod data_parallel;
mod env;
pub mod expert_parallel;
mod expert_shard;
#[cfg(feature = "mpi")]
mod mpi;
#[cfg(feature = "mpi")]
mod mpi_check_in;
#[cfg(feature = "cuda")]
pub mod nccl;
pub mod param_kind;
pub mod params;
mod single;
pub mod watchdog;
pub mod zero;

use std::sync::Arc;

pub use collective::{Collective, CollectiveError, ReduceOp, all_gather_bytes, exchange_counts};
pub use env::{LaunchInfo, Launcher};
pub use expert_shard::{expert_index, gather_experts, held_params, shard_experts};
#[cfg(feature = "mpi")]
pub use mpi::MpiCollective;
pub use params::{ParamInfo, list_params};
pub use single::SingleProcess;
pub use watchdog::{EXIT_COLLECTIVE_TIMEOUT, FailureConfig};

/// The world communicator for this process: [`SingleProcess`] when the launcher started one
/// process, MPI when it started several (an error naming the launcher's variables when this
/// build has no `mpi` feature).
pub fn init_collective(failure: FailureConfig) -> Result<Arc<dyn Collective>, CollectiveError> {
    let launch = LaunchInfo::from_process_env()?;
    if launch.world_size == 1 {
        return Ok(Arc::new(SingleProcess));
    }
    #[cfg(feature = "mpi")]
    {
        let _ = launch;
        Ok(Arc::new(MpiCollective::init(failure)?))
    }
    #[cfg(not(feature = "mpi"))]
    {
        let _ = failure;
        Err(CollectiveError::Launch(format!(
            "{:?} started {} ranks but mm1-parallel was built without the `mpi` feature \
             (rebuild mm1-trainer with `--features mpi`)",
            launch.launcher, launch.world_size
        )))
    }
}
