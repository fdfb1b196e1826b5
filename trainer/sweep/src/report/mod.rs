//! Sweep reports: `mm1-report SWEEP_DIR` reads the plan (`sweep.json`) and every run folder
//! (`metrics.jsonl`, `eval.json`, `done.json`) and writes `report.md` (with its plots as SVG files
//! under `plots/`) and a self-contained `report.html` (plots inline).
//!
//! Per sweep: one table row per arm with mean ± sample std over seeds of every eval score (each shot
//! count, its blank-image baseline and the majority answer in their own columns), held-out loss and
//! the final training loss, plus tokens and wall time; per task and arm the headline 0-shot score
//! with 95 % intervals over seeds (t) and items (bootstrap) and the paired difference against the
//! control arm, read as "effect" or "not separated" ([`study`]); `runs.jsonl` with one line per
//! (run, task); training-loss curves per arm; score vs each swept value with error bars; and each
//! arm's config delta from the base.

mod collect;
mod render;
mod stats;
mod study;
mod svg;

pub use collect::{ArmSummary, RunData, SweepData, TaskScore, collect, task_scores};
pub use render::{render_html, render_markdown, write_report};
pub use stats::{
    Interval, MeanStd, bootstrap_interval, fmt_num, mean_std, t_cdf, t_interval, t_quantile, verdict,
};
pub use study::{BOOTSTRAP_REPS, BOOTSTRAP_SEED, PairedDiff, Study, TaskArm, runs_jsonl, study};
pub use svg::{Series, error_bar_chart, line_chart};
