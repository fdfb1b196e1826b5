//! `mm1-sweep plan|run|slurm FILE`: plan, run locally or submit to Slurm an ablation sweep
//! (see `docs/ablations.md`).

use std::path::PathBuf;
use std::process::ExitCode;

use mm1_trainer::sweep::{
    RunOutcome, RunnerOptions, SweepError, check_arms, evaluator_command, format_plan, plan_file, run_sweep,
    slurm_script, submit, sweep_dir, trainer_command, write_plan,
};

const USAGE: &str = "usage:
  mm1-sweep plan  FILE [--out DIR]                 print the arms and run ids
  mm1-sweep run   FILE [--out DIR] [--parallel N]  run unfinished arms locally (resumes interrupted ones)
  mm1-sweep slurm FILE [--out DIR] [--submit]      write SWEEP_DIR/slurm/sweep.sbatch (and sbatch it)";

struct Args {
    command: String,
    file: PathBuf,
    out: Option<PathBuf>,
    parallel: usize,
    submit: bool,
}

fn parse(mut it: impl Iterator<Item = String>) -> Result<Args, String> {
    let command = it.next().ok_or("missing command")?;
    let file = PathBuf::from(it.next().ok_or("missing sweep FILE")?);
    let mut args = Args { command, file, out: None, parallel: 1, submit: false };
    while let Some(a) = it.next() {
        match a.as_str() {
            "--out" => args.out = Some(it.next().ok_or("--out needs a folder")?.into()),
            "--parallel" => {
                let v = it.next().ok_or("--parallel needs a number")?;
                args.parallel = v
                    .parse()
                    .ok()
                    .filter(|n| *n > 0)
                    .ok_or(format!("--parallel {v}: not a positive integer"))?;
            }
            "--submit" => args.submit = true,
            other => return Err(format!("unknown argument `{other}`")),
        }
    }
    Ok(args)
}

fn main() -> ExitCode {
    let args = match parse(std::env::args().skip(1)) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("mm1-sweep: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match run(&args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("mm1-sweep: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &Args) -> Result<ExitCode, SweepError> {
    let plan = plan_file(&args.file)?;
    check_arms(&plan)?;
    let dir = sweep_dir(&plan, args.out.as_deref())?;
    match args.command.as_str() {
        "plan" => {
            print!("{}", format_plan(&plan));
            println!("sweep folder: {}", dir.display());
        }
        "run" => {
            let opts = RunnerOptions {
                parallel: args.parallel,
                trainer: trainer_command(&plan),
                evaluator: evaluator_command(&plan),
            };
            let outcomes = run_sweep(&plan, &dir, &opts)?;
            let failed: Vec<_> =
                outcomes.iter().filter(|(_, o)| matches!(o, RunOutcome::Failed { .. })).collect();
            let skipped = outcomes.iter().filter(|(_, o)| *o == RunOutcome::AlreadyDone).count();
            println!(
                "{}: {} runs, {} already finished, {} ran, {} failed; report with `mm1-report {}`",
                plan.name,
                outcomes.len(),
                skipped,
                outcomes.len() - skipped - failed.len(),
                failed.len(),
                dir.display()
            );
            if !failed.is_empty() {
                return Ok(ExitCode::FAILURE);
            }
        }
        "slurm" => {
            write_plan(&plan, &dir)?;
            // Slurm opens each task's --output (SWEEP_DIR/logs/...) before the script runs, and
            // fails the task when that folder is missing.
            for sub in [dir.join("slurm"), dir.join("logs")] {
                std::fs::create_dir_all(&sub).map_err(|e| SweepError::io(&sub, e))?;
            }
            let script_dir = dir.join("slurm");
            let script = script_dir.join("sweep.sbatch");
            let text = slurm_script(&plan, &dir, &trainer_command(&plan), &evaluator_command(&plan));
            std::fs::write(&script, text).map_err(|e| SweepError::io(&script, e))?;
            println!("wrote {} ({} array tasks)", script.display(), plan.runs.len());
            if args.submit {
                println!("{}", submit(&script)?);
            }
        }
        other => {
            eprintln!("mm1-sweep: unknown command `{other}`\n{USAGE}");
            return Ok(ExitCode::from(2));
        }
    }
    Ok(ExitCode::SUCCESS)
}
