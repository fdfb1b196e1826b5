//! Launch `mpirun -n N` on the current test binary, running one `#[ignore]`d worker test on
//! every rank. Shared by the `parallel_*` test files.

#![allow(dead_code)]

use std::process::Command;
use std::time::{Duration, Instant};

/// What an mpirun launch produced.
pub struct Outcome {
    pub success: bool,
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    pub elapsed: Duration,
    /// `true` when the launch was skipped (no `mpi` feature).
    pub skipped: bool,
    /// Number of ranks launched.
    pub ranks: usize,
}

impl Outcome {
    /// Panic with both output streams unless the job succeeded (or was skipped).
    pub fn expect_success(&self) {
        if self.skipped {
            return;
        }
        assert!(
            self.success,
            "mpirun failed (exit {:?}) after {:.1} s\n--- stdout\n{}\n--- stderr\n{}",
            self.code,
            self.elapsed.as_secs_f64(),
            self.stdout,
            self.stderr
        );
        // `--exact` with a wrong name runs nothing and succeeds: require one pass per rank.
        let passed = self.stdout.matches("test result: ok. 1 passed").count();
        assert_eq!(
            passed, self.ranks,
            "expected the worker to pass on {} ranks, saw {passed}\n--- stdout\n{}",
            self.ranks, self.stdout
        );
    }

    /// Both streams, for assertions on messages.
    pub fn output(&self) -> String {
        format!("{}\n{}", self.stdout, self.stderr)
    }
}

/// Run worker test `worker` (full path, e.g. `workers::worker_x`) on `ranks` MPI ranks (with extra environment variables).
pub fn run_workers(worker: &str, ranks: usize, env: &[(&str, &str)]) -> Outcome {
    if !cfg!(feature = "mpi") {
        println!(
            "skipped {worker}: mm1-trainer built without the `mpi` feature \
             (run `cargo test -p mm1-trainer --features mpi`)"
        );
        return Outcome {
            success: true,
            code: Some(0),
            stdout: String::new(),
            stderr: String::new(),
            elapsed: Duration::ZERO,
            skipped: true,
            ranks,
        };
    }
    let exe = std::env::current_exe().expect("test binary path");
    let mut cmd = Command::new("mpirun");
    // Root in containers and more ranks than cores on small CI machines.
    cmd.args(["--allow-run-as-root", "--oversubscribe", "-n", &ranks.to_string()]);
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
    Outcome {
        success: out.status.success(),
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        elapsed: t0.elapsed(),
        skipped: false,
        ranks,
    }
}
