//! Rank discovery (`LaunchInfo::from_env`) on the environments real launchers gave two ranks:
//! Slurm 22.05's `srun` with `--mpi=pmix`, `--mpi=pmi2` and no MPI plugin, Open MPI 4.1's
//! `mpirun` alone and inside a Slurm job, torchrun alone and started by `srun`, and a batch
//! script's own environment. Captured by `scripts/slurm/capture-launch-env.sh` on a
//! `scripts/slurm/local-cluster.sh` node (issue #20: `srun --mpi=pmix` sets `PMIX_RANK` and never
//! `PMI_SIZE`, which the trainer used to reject).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use mm1_parallel::{LaunchInfo, Launcher};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/launch-env")
}

/// `KEY=VALUE` lines of one captured rank; `#` lines are the capture's notes.
fn captured(name: &str) -> HashMap<String, String> {
    let path = fixtures().join(format!("{name}.env"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text.lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            let (k, v) = l.split_once('=').unwrap_or_else(|| panic!("{name}: not KEY=VALUE: {l:?}"));
            (k.to_string(), v.to_string())
        })
        .collect()
}

/// Each case of two ranks on one node, and the launcher whose numbering must be used.
const TWO_RANK_CASES: [(&str, Launcher); 7] = [
    ("srun-pmix", Launcher::Slurm),
    ("srun-pmi2", Launcher::Slurm),
    ("srun-none", Launcher::Slurm),
    ("mpirun", Launcher::OpenMpi),
    // every rank also sees the batch script's SLURM_PROCID=0
    ("mpirun-in-sbatch", Launcher::OpenMpi),
    ("torchrun", Launcher::Torchrun),
    // one srun task (SLURM_PROCID=0) running a torchrun agent with two workers
    ("srun-torchrun", Launcher::Torchrun),
];

#[test]
fn every_captured_launcher_gives_each_rank_its_place() {
    for (case, launcher) in TWO_RANK_CASES {
        for rank in 0..2 {
            let env = captured(&format!("{case}.{rank}"));
            let info = LaunchInfo::from_env(&env).unwrap_or_else(|e| panic!("{case} rank {rank}: {e}"));
            // one node: the local rank is the rank
            let want = LaunchInfo { launcher, rank, world_size: 2, local_rank: rank };
            assert_eq!(info, want, "{case} rank {rank}");
        }
    }
}

#[test]
fn the_batch_script_itself_is_one_process() {
    // SLURM_PROCID=0 and SLURM_NTASKS=2 describe the allocation, not a task of a step.
    let env = captured("sbatch-batch-step.0");
    assert_eq!((env["SLURM_PROCID"].as_str(), env["SLURM_NTASKS"].as_str()), ("0", "2"));
    assert_eq!(LaunchInfo::from_env(&env).unwrap(), LaunchInfo::single());
}

#[test]
fn srun_with_pmix_sets_no_pmi_size() {
    // The environment issue #20 met: PMIX_RANK without PMI_SIZE, read through Slurm's numbering.
    let env = captured("srun-pmix.1");
    assert_eq!(env.get("PMIX_RANK").map(String::as_str), Some("1"));
    assert!(!env.contains_key("PMI_SIZE"));
    // Without Slurm's variables the same PMIX_RANK is an error naming what is missing.
    let bare: HashMap<String, String> = env.into_iter().filter(|(k, _)| k.starts_with("PMIX_")).collect();
    let err = LaunchInfo::from_env(&bare).unwrap_err().to_string();
    assert!(
        err.contains("PMIX_RANK=1 is set but no launcher variable gives the number of processes"),
        "{err}"
    );
}

#[test]
fn every_fixture_is_tested() {
    let mut names: Vec<String> = std::fs::read_dir(fixtures())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    let mut tested: Vec<String> =
        TWO_RANK_CASES.iter().flat_map(|(c, _)| [format!("{c}.0.env"), format!("{c}.1.env")]).collect();
    tested.push("sbatch-batch-step.0.env".into());
    tested.sort();
    assert_eq!(names, tested, "a captured environment without a test (or a test without its capture)");
}
