//! Distributed training as the trainer sees it: the `mm1-parallel` crate (collectives, data and
//! expert parallelism, ZeRO, the watchdog; see its crate docs and `docs/distributed.md`),
//! re-exported so that `crate::parallel::X` names it, plus [`RankSync`], the glue that runs the
//! training step's exchanges ([`crate::step::StepSync`]) over those collectives.

mod step_sync;

pub use mm1_parallel::*;
pub use step_sync::RankSync;
