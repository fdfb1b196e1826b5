//! Distributed training: how the computation is spread over processes (the model code knows
//! nothing of ranks; see `docs/distributed.md`).
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
//! - [`RankSync`]: the training step's exchanges (token counts, logged sums, gradients).
//! - [`zero`]: ZeRO stages 1 and 2 (`parallel.zero`): optimizer state (and reduced gradients)
//!   sharded over the data-parallel ranks, updated parameters all-gathered back.
//! - [`watchdog`]: collective timeouts that name the dead or hung rank and the step.
//! - `nccl` (feature `cuda`): burn's in-process NCCL all-reduce over the GPUs of one node.

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
mod single;
mod step_sync;
pub mod watchdog;
pub mod zero;

use std::sync::Arc;

pub use collective::{Collective, CollectiveError, ReduceOp, all_gather_bytes, exchange_counts};
pub use env::{LaunchInfo, Launcher};
pub use expert_shard::{expert_index, gather_experts, held_params, shard_experts};
#[cfg(feature = "mpi")]
pub use mpi::MpiCollective;
pub use single::SingleProcess;
pub use step_sync::RankSync;
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
            "{:?} started {} ranks but mm1-trainer was built without the `mpi` feature \
             (rebuild with `--features mpi`)",
            launch.launcher, launch.world_size
        )))
    }
}
