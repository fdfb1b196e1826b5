//! Launch `mpirun -n N` on the current test binary, running one `#[ignore]`d worker test on
//! every rank. Shared by the `parallel_*` test files.
//!
//! The tests that call [`run_workers`] carry
//! `#[cfg_attr(not(feature = "mpi"), ignore = "needs the `mpi` feature ...")]`: without the
//! feature they show as ignored with that reason instead of passing without running anything.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// What an mpirun launch produced.
pub struct Outcome {
    pub success: bool,
    pub code: Option<i32>,
    /// mpirun's own stdout: every rank's lines, interleaved as they arrived.
    pub stdout: String,
    pub stderr: String,
    /// Each rank's stdout on its own (mpirun `--output-filename`), index = rank.
    pub rank_stdout: Vec<String>,
    pub elapsed: Duration,
    /// Number of ranks launched.
    pub ranks: usize,
}

impl Outcome {
    /// Panic with both output streams unless the job succeeded.
    pub fn expect_success(&self) {
        assert!(
            self.success,
            "mpirun failed (exit {:?}) after {:.1} s\n--- stdout\n{}\n--- stderr\n{}",
            self.code,
            self.elapsed.as_secs_f64(),
            self.stdout,
            self.stderr
        );
        // `--exact` with a wrong name runs nothing and succeeds: require one pass on every rank.
        // Each rank's own stream is checked: lines of the merged stream can interleave mid-line.
        let passed: Vec<usize> = (0..self.ranks)
            .filter(|&r| self.rank_stdout.get(r).is_some_and(|s| s.contains("test result: ok. 1 passed")))
            .collect();
        assert_eq!(
            passed.len(),
            self.ranks,
            "expected the worker to pass on all {} ranks, passed on ranks {passed:?}\n--- stdout\n{}",
            self.ranks,
            self.stdout
        );
    }

    /// Both streams, for assertions on messages.
    pub fn output(&self) -> String {
        format!("{}\n{}", self.stdout, self.stderr)
    }
}

/// Run worker test `worker` (full path, e.g. `workers::worker_x`) on `ranks` MPI ranks (with extra environment variables).
pub fn run_workers(worker: &str, ranks: usize, env: &[(&str, &str)]) -> Outcome {
    // Only reached through `--ignored`: the worker tests do not exist without the feature.
    if !cfg!(feature = "mpi") {
        panic!("{worker} needs mm1-trainer's `mpi` feature: cargo test -p mm1-trainer --features mpi");
    }
    let exe = std::env::current_exe().expect("test binary path");
    let mut cmd = Command::new("mpirun");
    // Root in containers and more ranks than cores on small CI machines.
    cmd.args(["--allow-run-as-root", "--oversubscribe", "-n", &ranks.to_string()]);
    let per_rank_dir = unique_temp_dir(worker);
    cmd.arg("--output-filename").arg(&per_rank_dir);
    for (k, v) in env {
        cmd.args(["-x", &format!("{k}={v}")]);
    }
    cmd.arg(exe).args(["--ignored", "--exact", worker, "--nocapture", "--test-threads=1"]);
    // Keep Open MPI quiet about missing high-speed interconnects.
    cmd.env("OMPI_MCA_btl", "self,vader,tcp");
    cmd.env("OMPI_MCA_btl_vader_single_copy_mechanism", "none");
    let t0 = Instant::now();
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run mpirun ({e}); install openmpi-bin (scripts/test.sh does)"));
    let elapsed = t0.elapsed();
    let rank_stdout = (0..ranks).map(|r| read_rank_stdout(&per_rank_dir, r)).collect();
    let _ = std::fs::remove_dir_all(&per_rank_dir);
    Outcome {
        success: out.status.success(),
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        rank_stdout,
        elapsed,
        ranks,
    }
}

/// A fresh folder for mpirun's per-rank output files.
fn unique_temp_dir(worker: &str) -> PathBuf {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let name = format!(
        "mm1-mpirun-{}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed),
        worker.replace("::", "-")
    );
    std::env::temp_dir().join(name)
}

/// Rank `rank`'s stdout as Open MPI 4 lays it out: `DIR/<job>/rank.<rank>/stdout` (empty if absent).
fn read_rank_stdout(dir: &Path, rank: usize) -> String {
    let Ok(jobs) = std::fs::read_dir(dir) else { return String::new() };
    jobs.flatten()
        .filter_map(|job| {
            std::fs::read_to_string(job.path().join(format!("rank.{rank}")).join("stdout")).ok()
        })
        .collect()
}
