//! Ablation sweeps: a sweep file names a base config, axes of dotted-key values, how they combine
//! (one factor at a time from the base, as MM1's ablations do, or a full grid) and seeds. From it:
//! a plan of arms with deterministic run ids (`mm1-sweep plan`), a local runner that skips finished
//! arms and resumes interrupted ones (`mm1-sweep run`), and a Slurm array script with the same layout
//! (`mm1-sweep slurm`). Layout of a sweep folder:
//!
//! ```text
//! SWEEP_DIR/sweep.json        the plan (arms, deltas, seeds, run ids, commands)
//! SWEEP_DIR/RUN_ID/           the run folder given to `mm1-train --run-dir` (+ done.json, attempts.jsonl)
//! SWEEP_DIR/logs/RUN_ID.log   stdout and stderr of every attempt
//! SWEEP_DIR/slurm/sweep.sbatch
//! ```
//!
//! [`report`] turns a finished sweep folder into `report.md` / `report.html`. The binaries
//! (`mm1-sweep`, `mm1-report`) live in the `mm1-trainer` package beside `mm1-train`, which the runner
//! finds next to its own executable. See `docs/ablations.md`.

pub mod report;

mod base;
mod cli;
mod error;
mod plan;
mod runner;
mod slurm;
mod spec;

pub use base::lookup;
pub use cli::{
    check_arms, evaluator_command, format_plan, plan_file, resolved_base, sweep_dir, trainer_command,
};
pub use error::SweepError;
pub use plan::{Arm, Plan, PlannedRun, bundle, plain, plan_sweep, run_id, short, toml_literal};
pub use runner::{
    DONE_FILE, RunOutcome, RunnerOptions, has_checkpoint, run_sweep, set_pairs, trainer_args, write_plan,
};
pub use slurm::{slurm_script, submit};
pub use spec::{LoadedSweep, Mode, OneOrMany, SlurmSpec, SweepEval, SweepFile};
