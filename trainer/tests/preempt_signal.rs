//! Preemption (issue #17): SIGTERM or SIGUSR1 at an arbitrary moment makes `mm1-train` finish the
//! step it is in, write a checkpoint and exit 85; started again, it continues from that step and
//! logs exactly the losses and ends with exactly the weights of the uninterrupted run (no step is
//! recomputed: the checkpoint is of the last finished step).

mod train_support;

use std::path::Path;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use mm1_trainer::run::EXIT_PREEMPTED;
use train_support::*;

const STEPS: u64 = 30;

fn spawn(file: &Path, dir: &Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_mm1-train"))
        // no periodic checkpoint: only the signal's (and the final one) exist
        .args(["--config", file.to_str().unwrap(), "--set", "checkpoint.every=0", "--run-dir"])
        .arg(dir)
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap()
}

fn logged_steps(dir: &Path) -> usize {
    std::fs::read_to_string(dir.join("metrics.jsonl")).map_or(0, |t| t.lines().count())
}

#[test]
fn a_signalled_run_checkpoints_exits_85_and_resumes_exactly() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tiny_run_file(tmp.path(), &tmp.path().join("synth"), STEPS, "");
    let full = tmp.path().join("full");
    assert!(spawn(&file, &full).wait().unwrap().success());

    for (signal, after_lines) in [("TERM", 3), ("USR1", 7)] {
        let dir = tmp.path().join(signal);
        let mut child = spawn(&file, &dir);
        let t0 = Instant::now();
        while logged_steps(&dir) < after_lines {
            assert!(t0.elapsed() < Duration::from_secs(120), "no steps logged");
            std::thread::sleep(Duration::from_millis(2));
        }
        let kill = Command::new("kill").arg(format!("-{signal}")).arg(child.id().to_string()).status();
        assert!(kill.unwrap().success());
        let status = child.wait().unwrap();
        assert_eq!(status.code(), Some(EXIT_PREEMPTED as i32), "SIG{signal}: {status:?}");
        let checkpoints: Vec<String> = std::fs::read_dir(dir.join("checkpoints"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            checkpoints.len(),
            1,
            "SIG{signal}: one checkpoint, of the step it stopped at: {checkpoints:?}"
        );
        let stopped_at: u64 = checkpoints[0].trim_start_matches("step-").parse().unwrap();
        assert!((after_lines as u64..STEPS).contains(&stopped_at), "SIG{signal}: stopped at {stopped_at}");
        assert_eq!(logged_steps(&dir) as u64, stopped_at, "SIG{signal}: every finished step is logged");

        assert!(spawn(&file, &dir).wait().unwrap().success(), "SIG{signal}: resumed run failed");
        assert_eq!(logged_losses(&dir), logged_losses(&full), "SIG{signal}: losses differ after resume");
        assert_eq!(checkpoint_tensors(&dir), checkpoint_tensors(&full), "SIG{signal}: weights differ");
    }
}
