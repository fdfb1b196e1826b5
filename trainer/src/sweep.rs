//! Ablation sweeps and their reports: `mm1-sweep` (re-exported), whose binaries `mm1-sweep`
//! and `mm1-report` live in this package beside `mm1-train`, which the runner finds next to itself.

pub use mm1_sweep::*;
