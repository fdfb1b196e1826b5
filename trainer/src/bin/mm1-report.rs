//! `mm1-report SWEEP_DIR`: tables, per-task intervals, paired differences against the control,
//! plots, config deltas and `runs.jsonl` of a sweep (see `docs/ablations.md`).

use std::path::PathBuf;
use std::process::ExitCode;

use mm1_trainer::report::{collect, write_report};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [dir] = args.as_slice() else {
        eprintln!("usage: mm1-report SWEEP_DIR   (the folder holding sweep.json, written by mm1-sweep)");
        return ExitCode::from(2);
    };
    let result = collect(&PathBuf::from(dir)).and_then(|data| write_report(&data));
    match result {
        Ok(paths) => {
            let runs = paths.iter().find(|p| p.ends_with("runs.jsonl"));
            for p in paths.iter().take(2).chain(runs) {
                println!("wrote {}", p.display());
            }
            println!("({} plots under {}/plots)", paths.len() - 3, dir);
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("mm1-report: {e}");
            ExitCode::FAILURE
        }
    }
}
