//! Exact resume on CPU: N steps in one go vs N/2, stop, resume, N/2 more: bit-identical
//! per-step losses and final parameters. Also from what `kill -9` of the real binary leaves.

mod train_support;

use std::io::Write;
use std::path::Path;
use std::process::Command;

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

/// What `kill -9` can leave behind, made at a fixed step rather than by killing at a moment
/// (a kill lands wherever the process happens to be, so the test would check a different state
/// each run): the run stops after step 6 (`--stop-after 6`, checkpoints every 4), then its step-6
/// checkpoint becomes a half-written `.tmp-step-00000006` (the kill hit the save) and
/// `metrics.jsonl` gets a torn line of step 7 (the kill hit a write). Steps 5 and 6 are logged past
/// the newest complete checkpoint (step 4). The next start must drop the leftover, resume from
/// step 4 and end with the uninterrupted run's losses and parameters.
#[test]
fn killed_run_resumes_exactly() {
    let tmp = tempfile::tempdir().unwrap();
    let synth = tmp.path().join("synth");
    let file = tiny_run_file(tmp.path(), &synth, 12, "");
    let exe = env!("CARGO_BIN_EXE_mm1-train");
    let run = |dir: &Path, extra: &[&str]| {
        let out = Command::new(exe)
            .args(["--config", file.to_str().unwrap(), "--set", "checkpoint.every=4", "--run-dir"])
            .arg(dir)
            .args(extra)
            .output()
            .unwrap();
        assert!(out.status.success(), "mm1-train failed:\n{}", String::from_utf8_lossy(&out.stderr));
    };
    let full_dir = tmp.path().join("full");
    run(&full_dir, &[]);

    let dir = tmp.path().join("killed");
    run(&dir, &["--stop-after", "6"]);
    let ckpts = dir.join("checkpoints");
    let (done, torn) = (ckpts.join("step-00000006"), ckpts.join(".tmp-step-00000006"));
    std::fs::rename(&done, &torn).unwrap();
    let model = torn.join("model.bpk");
    let bytes = std::fs::read(&model).unwrap();
    std::fs::write(&model, &bytes[..bytes.len() / 2]).unwrap();
    std::fs::remove_file(torn.join("state.json")).unwrap();
    let mut metrics = std::fs::OpenOptions::new().append(true).open(dir.join("metrics.jsonl")).unwrap();
    metrics.write_all(b"{\"step\":7,\"lo").unwrap();
    drop(metrics);
    assert_eq!(logged_losses_upto(&dir, 6).len(), 6, "steps 1..=6 logged before the \"kill\"");

    run(&dir, &[]);
    assert!(!torn.exists(), "the half-written checkpoint was not removed");
    assert_eq!(logged_losses(&dir), logged_losses(&full_dir));
    assert_eq!(checkpoint_tensors(&dir), checkpoint_tensors(&full_dir));
}

/// Losses of `metrics.jsonl`'s complete lines up to `step` (the torn last line is skipped).
fn logged_losses_upto(run_dir: &Path, step: u64) -> Vec<f64> {
    std::fs::read_to_string(run_dir.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["step"].as_u64().is_some_and(|s| s <= step))
        .map(|v| v["loss"].as_f64().unwrap())
        .collect()
}
