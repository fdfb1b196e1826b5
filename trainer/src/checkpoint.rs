//! Checkpoints: `mm1-checkpoint` (burnpack model and optimizer files, `state.json`, manifests,
//! the background writer, EP/ZeRO optimizer files), re-exported so `crate::checkpoint::X` reads
//! as before.

pub use mm1_checkpoint::*;
