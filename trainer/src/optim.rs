//! The optimizer: `mm1-optim` (grouped AdamW, clipping, accumulation, the fused update),
//! re-exported so `crate::optim::X` reads as before.

pub use mm1_optim::*;
