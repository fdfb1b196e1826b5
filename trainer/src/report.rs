//! Sweep reports (`mm1_sweep::report`, re-exported).

pub use mm1_sweep::report::*;
