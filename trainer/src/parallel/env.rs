//! Which rank am I? Read from the launcher's environment: `mpirun` (Open MPI's
//! `OMPI_COMM_WORLD_*`, or PMIx/PMI as set by MPICH-style launchers), Slurm `srun`
//! (`SLURM_PROCID`, `SLURM_NTASKS`, `SLURM_LOCALID`) and torchrun (`RANK`, `WORLD_SIZE`,
//! `LOCAL_RANK`). A pure function over an environment map so that every launcher is
//! unit-tested without launching anything.

use std::collections::HashMap;

use super::collective::CollectiveError;

/// The launcher that set the variables we read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Launcher {
    /// No launcher variables: a plain single-process run.
    None,
    /// Open MPI's `mpirun` (`OMPI_COMM_WORLD_RANK`, ...).
    OpenMpi,
    /// A PMI/PMIx launcher (MPICH hydra, `srun --mpi=pmix`): `PMI_RANK`/`PMIX_RANK`, `PMI_SIZE`.
    Pmi,
    /// Slurm `srun` (`SLURM_PROCID`, ...).
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

impl LaunchInfo {
    /// One process, no launcher.
    pub fn single() -> Self {
        Self { launcher: Launcher::None, rank: 0, world_size: 1, local_rank: 0 }
    }

    /// Read the current process environment.
    pub fn from_process_env() -> Result<Self, CollectiveError> {
        Self::from_env(&std::env::vars().collect())
    }

    /// Detect the launcher from `env`. MPI variables win over Slurm's (an `mpirun` inside a
    /// Slurm allocation sees both, and its own numbering is the one MPI uses), and Slurm's
    /// over torchrun's. Within one launcher a missing size or an out-of-range rank is an error
    /// naming the variables.
    pub fn from_env(env: &HashMap<String, String>) -> Result<Self, CollectiveError> {
        const SCHEMES: [(Launcher, &str, &str, &[&str]); 5] = [
            (
                Launcher::OpenMpi,
                "OMPI_COMM_WORLD_RANK",
                "OMPI_COMM_WORLD_SIZE",
                &["OMPI_COMM_WORLD_LOCAL_RANK"],
            ),
            (Launcher::Pmi, "PMIX_RANK", "PMI_SIZE", &["MPI_LOCALRANKID", "PMI_LOCAL_RANK"]),
            (Launcher::Pmi, "PMI_RANK", "PMI_SIZE", &["MPI_LOCALRANKID", "PMI_LOCAL_RANK"]),
            (Launcher::Slurm, "SLURM_PROCID", "SLURM_NTASKS", &["SLURM_LOCALID"]),
            (Launcher::Torchrun, "RANK", "WORLD_SIZE", &["LOCAL_RANK"]),
        ];
        for (launcher, rank_var, size_var, local_vars) in SCHEMES {
            let Some(rank) = read(env, rank_var)? else {
                continue;
            };
            let world_size = read(env, size_var)?
                .ok_or_else(|| CollectiveError::Launch(format!("{rank_var} is set but {size_var} is not")))?;
            if world_size == 0 || rank >= world_size {
                return Err(CollectiveError::Launch(format!(
                    "{rank_var}={rank} is not below {size_var}={world_size}"
                )));
            }
            let mut local_rank = None;
            for var in local_vars {
                if let Some(v) = read(env, var)? {
                    local_rank = Some(v);
                    break;
                }
            }
            return Ok(Self {
                launcher,
                rank,
                world_size,
                // Without a local-rank variable assume one process per node.
                local_rank: local_rank.unwrap_or(0),
            });
        }
        Ok(Self::single())
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

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn no_launcher_is_a_single_process() {
        assert_eq!(LaunchInfo::from_env(&env(&[("HOME", "/root")])).unwrap(), LaunchInfo::single());
    }

    #[test]
    fn open_mpi_wins_over_slurm_inside_an_allocation() {
        let e = env(&[
            ("OMPI_COMM_WORLD_RANK", "3"),
            ("OMPI_COMM_WORLD_SIZE", "8"),
            ("OMPI_COMM_WORLD_LOCAL_RANK", "1"),
            ("SLURM_PROCID", "0"),
            ("SLURM_NTASKS", "2"),
            ("SLURM_LOCALID", "0"),
        ]);
        let info = LaunchInfo::from_env(&e).unwrap();
        assert_eq!(
            (info.launcher, info.rank, info.world_size, info.local_rank),
            (Launcher::OpenMpi, 3, 8, 1)
        );
    }

    #[test]
    fn slurm_srun_and_torchrun_are_read() {
        let s = LaunchInfo::from_env(&env(&[
            ("SLURM_PROCID", "5"),
            ("SLURM_NTASKS", "16"),
            ("SLURM_LOCALID", "1"),
        ]))
        .unwrap();
        assert_eq!((s.launcher, s.rank, s.world_size, s.local_rank), (Launcher::Slurm, 5, 16, 1));
        let t =
            LaunchInfo::from_env(&env(&[("RANK", "2"), ("WORLD_SIZE", "4"), ("LOCAL_RANK", "2")])).unwrap();
        assert_eq!((t.launcher, t.rank, t.world_size, t.local_rank), (Launcher::Torchrun, 2, 4, 2));
    }

    #[test]
    fn pmix_rank_with_pmi_size() {
        let p = LaunchInfo::from_env(&env(&[("PMIX_RANK", "1"), ("PMI_SIZE", "2")])).unwrap();
        assert_eq!((p.launcher, p.rank, p.world_size, p.local_rank), (Launcher::Pmi, 1, 2, 0));
    }

    #[test]
    fn bad_values_name_the_variables() {
        let err = LaunchInfo::from_env(&env(&[("RANK", "4"), ("WORLD_SIZE", "4")])).unwrap_err();
        assert!(err.to_string().contains("RANK=4 is not below WORLD_SIZE=4"), "{err}");
        let err = LaunchInfo::from_env(&env(&[("SLURM_PROCID", "x"), ("SLURM_NTASKS", "2")])).unwrap_err();
        assert!(err.to_string().contains("SLURM_PROCID=\"x\""), "{err}");
        let err = LaunchInfo::from_env(&env(&[("RANK", "0")])).unwrap_err();
        assert!(err.to_string().contains("RANK is set but WORLD_SIZE is not"), "{err}");
    }
}
