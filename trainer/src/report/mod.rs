//! Sweep reports: `mm1-report SWEEP_DIR` reads the plan (`sweep.json`) and every run folder
//! (`metrics.jsonl`, `eval.json`, `done.json`) and writes `report.md` (with its plots as SVG files
//! under `plots/`) and a self-contained `report.html` (plots inline).
//!
//! Per sweep: one table row per arm with mean ± sample std over seeds of every eval score, held-out
//! loss and the final training loss, plus tokens and wall time; training-loss curves per arm; score
//! vs each swept value with error bars; and each arm's config delta from the base.

mod collect;
mod render;
mod stats;
mod svg;

pub use collect::{ArmSummary, RunData, SweepData, collect};
pub use render::{render_html, render_markdown, write_report};
pub use stats::{MeanStd, mean_std};
pub use svg::{Series, error_bar_chart, line_chart};
