//! `mm1-train plan`: the tensor-free planner of `mm1-plan` (re-exported), and [`measure`], its
//! check against a real training process.

pub mod measure;

pub use mm1_plan::*;
