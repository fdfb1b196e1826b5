
pub mod eval;
pub mod config;
pub mod logging;
pub mod schedule;
pub mod parallel;
pub mod sweep;
pub mod report;
