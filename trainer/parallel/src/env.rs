//! Which rank am I? Read from the environment the launcher gave this process. What each
//! launcher sets was captured from the real ones (`scripts/slurm/capture-launch-env.sh`; the
//! fixtures and their tests are `trainer/parallel/tests/fixtures/launch-env/` and
//! `trainer/parallel/tests/launch_env.rs`):
//!
//! | launcher | rank | ranks | local rank |
//! |---|---|---|---|
//! | Open MPI `mpirun` | `OMPI_COMM_WORLD_RANK` | `OMPI_COMM_WORLD_SIZE` | `OMPI_COMM_WORLD_LOCAL_RANK` |
//! | torchrun | `RANK` | `WORLD_SIZE` | `LOCAL_RANK` |
//! | a Slurm job step (`srun`, any `--mpi`) | `SLURM_PROCID` | `SLURM_STEP_NUM_TASKS` | `SLURM_LOCALID` |
//! | a PMI launcher (MPICH hydra) | `PMI_RANK` | `PMI_SIZE` | `MPI_LOCALRANKID` |
//!
//! The innermost launcher wins, in that order: `mpirun` inside a Slurm job sees the batch
//! script's `SLURM_PROCID=0` on every rank, and torchrun started by `srun` sees srun's task
//! number (one per node). Slurm variables without `SLURM_STEP_ID` belong to the batch script
//! or an `salloc` shell, not to a task: they describe the allocation (`SLURM_NTASKS` tasks,
//! `SLURM_PROCID=0` everywhere), so such a process runs alone, and forgetting `srun` shows up
//! as the trainer's `parallel.dp` check. Slurm's PMI plugins add their own numbering
//! (`--mpi=pmix`: `PMIX_RANK` alone; `--mpi=pmi2`: `PMI_RANK`, `PMI_SIZE`), which must agree
//! with Slurm's. `PMIX_RANK` without any of the above is an error: the number of processes is
//! then known only through the PMIx API. A pure function over an environment map, so that every
//! launcher is tested without launching anything.

use std::collections::HashMap;

use super::collective::CollectiveError;

/// The launcher that set the variables we read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Launcher {
    /// No launcher variables: a plain single-process run (also a Slurm batch script itself).
    None,
    /// Open MPI's `mpirun` (`OMPI_COMM_WORLD_RANK`, ...).
    OpenMpi,
    /// A PMI launcher such as MPICH's hydra: `PMI_RANK`, `PMI_SIZE`.
    Pmi,
    /// A task of a Slurm job step, started by `srun` (`SLURM_PROCID`, ...; with or without
    /// `--mpi=pmix`/`pmi2`).
    Slurm,
    /// torchrun / `torch.distributed.launch` style (`RANK`, `WORLD_SIZE`, `LOCAL_RANK`).
    Torchrun,
}

/// This process's place in the job, as the launcher described it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LaunchInfo {
    /// Which launcher's variables were used.
    pub launcher: Launcher,
    /// Global rank, `0..world_size`.
    pub rank: usize,
    /// Number of processes in the job.
    pub world_size: usize,
    /// Index of this process on its node (selects the GPU).
    pub local_rank: usize,
}

/// One launcher's variables: rank, process count (first one set wins), local rank (idem).
struct Scheme {
    launcher: Launcher,
    rank: &'static str,
    size: &'static [&'static str],
    local: &'static [&'static str],
}

const OPEN_MPI: Scheme = Scheme {
    launcher: Launcher::OpenMpi,
    rank: "OMPI_COMM_WORLD_RANK",
    size: &["OMPI_COMM_WORLD_SIZE"],
    local: &["OMPI_COMM_WORLD_LOCAL_RANK"],
};
const TORCHRUN: Scheme =
    Scheme { launcher: Launcher::Torchrun, rank: "RANK", size: &["WORLD_SIZE"], local: &["LOCAL_RANK"] };
// Inside a step `SLURM_NTASKS` is the step's count too; `SLURM_STEP_NUM_TASKS` says so by name.
const SLURM_STEP: Scheme = Scheme {
    launcher: Launcher::Slurm,
    rank: "SLURM_PROCID",
    size: &["SLURM_STEP_NUM_TASKS", "SLURM_NTASKS"],
    local: &["SLURM_LOCALID"],
};
const PMI: Scheme = Scheme {
    launcher: Launcher::Pmi,
    rank: "PMI_RANK",
    size: &["PMI_SIZE"],
    local: &["MPI_LOCALRANKID", "PMI_LOCAL_RANK"],
};

impl LaunchInfo {
    /// One process, no launcher.
    pub fn single() -> Self {
        Self { launcher: Launcher::None, rank: 0, world_size: 1, local_rank: 0 }
    }

    /// Read the current process environment.
    pub fn from_process_env() -> Result<Self, CollectiveError> {
        Self::from_env(&std::env::vars().collect())
    }

    /// Detect the launcher from `env` (see the module docs for the order). Within one launcher
    /// a missing count, an out-of-range rank or a disagreeing PMI numbering is an error naming
    /// the variables.
    pub fn from_env(env: &HashMap<String, String>) -> Result<Self, CollectiveError> {
        if let Some(info) = OPEN_MPI.read(env)? {
            return Ok(info);
        }
        if let Some(info) = TORCHRUN.read(env)? {
            return Ok(info);
        }
        let in_step = env.contains_key("SLURM_STEP_ID") || env.contains_key("SLURM_STEPID");
        if in_step && let Some(info) = SLURM_STEP.read(env)? {
            agrees(env, "PMIX_RANK", "SLURM_PROCID", info.rank)?;
            agrees(env, "PMI_RANK", "SLURM_PROCID", info.rank)?;
            agrees(env, "PMI_SIZE", "SLURM_STEP_NUM_TASKS", info.world_size)?;
            return Ok(info);
        }
        if let Some(info) = PMI.read(env)? {
            return Ok(info);
        }
        if let Some(rank) = read(env, "PMIX_RANK")? {
            return Err(CollectiveError::Launch(format!(
                "PMIX_RANK={rank} is set but no launcher variable gives the number of processes \
                 (SLURM_STEP_NUM_TASKS with SLURM_STEP_ID under srun, OMPI_COMM_WORLD_SIZE under \
                 mpirun, PMI_SIZE)"
            )));
        }
        Ok(Self::single())
    }
}

impl Scheme {
    /// `None` when this launcher's rank variable is not set.
    fn read(&self, env: &HashMap<String, String>) -> Result<Option<LaunchInfo>, CollectiveError> {
        let Some(rank) = read(env, self.rank)? else {
            return Ok(None);
        };
        let (size_var, world_size) = first_set(env, self.size)?.ok_or_else(|| {
            CollectiveError::Launch(format!("{} is set but {} is not", self.rank, self.size.join(" / ")))
        })?;
        if world_size == 0 || rank >= world_size {
            return Err(CollectiveError::Launch(format!(
                "{}={rank} is not below {size_var}={world_size}",
                self.rank
            )));
        }
        Ok(Some(LaunchInfo {
            launcher: self.launcher,
            rank,
            world_size,
            // Without a local-rank variable assume one process per node.
            local_rank: first_set(env, self.local)?.map_or(0, |(_, v)| v),
        }))
    }
}

/// The first of `vars` that is set, with its value.
fn first_set(
    env: &HashMap<String, String>,
    vars: &[&'static str],
) -> Result<Option<(&'static str, usize)>, CollectiveError> {
    for var in vars {
        if let Some(v) = read(env, var)? {
            return Ok(Some((var, v)));
        }
    }
    Ok(None)
}

/// An error when `var` is set to something other than `value` (which `source` gave).
fn agrees(
    env: &HashMap<String, String>,
    var: &str,
    source: &str,
    value: usize,
) -> Result<(), CollectiveError> {
    match read(env, var)? {
        Some(v) if v != value => Err(CollectiveError::Launch(format!(
            "{var}={v} disagrees with {source}={value} in a Slurm job step"
        ))),
        _ => Ok(()),
    }
}

/// `Some(value)` when `var` is set, an error naming it when it is not a number.
fn read(env: &HashMap<String, String>, var: &str) -> Result<Option<usize>, CollectiveError> {
    match env.get(var) {
        None => Ok(None),
        Some(v) => v
            .trim()
            .parse()
            .map(Some)
            .map_err(|_| CollectiveError::Launch(format!("{var}={v:?} is not a non-negative integer"))),
    }
}

// What real launchers set is tested on captured environments in trainer/parallel/tests/launch_env.rs;
// these are the errors, on environments no launcher writes.
#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    fn err(pairs: &[(&str, &str)]) -> String {
        LaunchInfo::from_env(&env(pairs)).unwrap_err().to_string()
    }

    #[test]
    fn no_launcher_is_a_single_process() {
        assert_eq!(LaunchInfo::from_env(&env(&[("HOME", "/root")])).unwrap(), LaunchInfo::single());
    }

    #[test]
    fn bad_values_name_the_variables() {
        let e = err(&[("RANK", "4"), ("WORLD_SIZE", "4")]);
        assert!(e.contains("RANK=4 is not below WORLD_SIZE=4"), "{e}");
        let e = err(&[("SLURM_STEP_ID", "0"), ("SLURM_PROCID", "x"), ("SLURM_NTASKS", "2")]);
        assert!(e.contains("SLURM_PROCID=\"x\""), "{e}");
        let e = err(&[("RANK", "0")]);
        assert!(e.contains("RANK is set but WORLD_SIZE is not"), "{e}");
        let e = err(&[("SLURM_STEP_ID", "0"), ("SLURM_PROCID", "0")]);
        assert!(e.contains("SLURM_PROCID is set but SLURM_STEP_NUM_TASKS / SLURM_NTASKS is not"), "{e}");
    }

    #[test]
    fn slurm_step_falls_back_to_slurm_ntasks() {
        let e = env(&[("SLURM_STEP_ID", "3"), ("SLURM_PROCID", "1"), ("SLURM_NTASKS", "2")]);
        let info = LaunchInfo::from_env(&e).unwrap();
        assert_eq!((info.launcher, info.rank, info.world_size, info.local_rank), (Launcher::Slurm, 1, 2, 0));
    }

    #[test]
    fn a_pmi_numbering_that_disagrees_with_slurm_is_an_error() {
        let step = [("SLURM_STEP_ID", "0"), ("SLURM_PROCID", "1"), ("SLURM_STEP_NUM_TASKS", "2")];
        let e = err(&[step.as_slice(), &[("PMIX_RANK", "0")]].concat());
        assert!(e.contains("PMIX_RANK=0 disagrees with SLURM_PROCID=1"), "{e}");
        let e = err(&[step.as_slice(), &[("PMI_RANK", "1"), ("PMI_SIZE", "4")]].concat());
        assert!(e.contains("PMI_SIZE=4 disagrees with SLURM_STEP_NUM_TASKS=2"), "{e}");
    }

    #[test]
    fn pmix_rank_alone_names_what_is_missing() {
        // The environment issue #20 met (srun --mpi=pmix) minus Slurm's own variables.
        let e = err(&[("PMIX_RANK", "1")]);
        assert!(
            e.contains("PMIX_RANK=1 is set but no launcher variable gives the number of processes"),
            "{e}"
        );
    }
}
