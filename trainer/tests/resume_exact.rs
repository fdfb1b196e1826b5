//! Exact resume on CPU: N steps in one go vs N/2, stop, resume, N/2 more: bit-identical
//! per-step losses and final parameters. Also after `kill -9` of the real binary.

mod train_support;

use std::process::Command;
use std::time::{Duration, Instant};

use mm1_trainer::run::{RunOptions, train};
use train_support::*;

const N: u64 = 8;

#[test]
fn stopped_and_resumed_run_equals_uninterrupted_run() {
    let tmp = tempfile::tempdir().unwrap();
    let synth = tmp.path().join("synth");
    // Accumulate 2 micro-batches per step so resume also covers the loader mid-accumulation.
    let file = tiny_run_file(tmp.path(), &synth, N, "");
    let loaded = load(&file, &["optim.grad_accum=2", "checkpoint.every=3"]);

    let full_dir = tmp.path().join("full");
    let full = train(&loaded, &RunOptions { run_dir: Some(full_dir.clone()), ..Default::default() }).unwrap();

    let split_dir = tmp.path().join("split");
    let opts = RunOptions { run_dir: Some(split_dir.clone()), stop_after: Some(N / 2), resume: false };
    let a = train(&loaded, &opts).unwrap();
    assert_eq!(a.end_step, N / 2);
    let opts = RunOptions { run_dir: Some(split_dir.clone()), stop_after: None, resume: true };
    let b = train(&loaded, &opts).unwrap();
    assert_eq!((b.start_step, b.end_step), (N / 2, N));

    let mut resumed = a.losses.clone();
    resumed.extend(b.losses.clone());
    assert_eq!(resumed, full.losses, "per-step losses differ after resume");
    // metrics.jsonl of the resumed run continues without duplicates
    assert_eq!(logged_losses(&split_dir), full.losses);
    assert_eq!(checkpoint_tensors(&split_dir), checkpoint_tensors(&full_dir), "parameters differ");
}

#[test]
fn killed_run_resumes_exactly() {
    let tmp = tempfile::tempdir().unwrap();
    let synth = tmp.path().join("synth");
    let file = tiny_run_file(tmp.path(), &synth, 30, "");
    let exe = env!("CARGO_BIN_EXE_mm1-train");
    let run = |dir: &std::path::Path| {
        Command::new(exe)
            .args(["--config", file.to_str().unwrap(), "--set", "checkpoint.every=2", "--run-dir"])
            .arg(dir)
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap()
    };
    let full_dir = tmp.path().join("full");
    assert!(run(&full_dir).wait().unwrap().success());

    // Kill -9 once a few steps are logged (most likely mid-step or mid-checkpoint-write).
    let dir = tmp.path().join("killed");
    let mut child = run(&dir);
    let t0 = Instant::now();
    while !dir.join("checkpoints/step-00000004/state.json").exists() {
        assert!(t0.elapsed() < Duration::from_secs(120), "no checkpoint appeared");
        std::thread::sleep(Duration::from_millis(5));
    }
    std::thread::sleep(Duration::from_millis(25));
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    assert!(!dir.join("checkpoints/step-00000030").exists(), "the run finished before the kill");
    assert!(run(&dir).wait().unwrap().success());

    assert_eq!(logged_losses(&dir), logged_losses(&full_dir));
    assert_eq!(checkpoint_tensors(&dir), checkpoint_tensors(&full_dir));
}
