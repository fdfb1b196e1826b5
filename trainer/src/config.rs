//! The run file: `mm1-config` (RunConfig, layering, validation, the resolved config), re-exported
//! so `crate::config::X` reads as before.

pub use mm1_config::*;
