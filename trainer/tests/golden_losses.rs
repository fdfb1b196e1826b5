//! Golden losses: the per-step training losses of the README quickstart's first 50 steps and of
//! the `bench` preset's first 5 steps, compared with the files committed in
//! `tests/fixtures/golden/`, so that a kernel rewrite, a changed initialisation or a changed data
//! order cannot change the training silently (torchtitan keeps reference losses the same way).
//!
//! - `quickstart_first_50_steps`: `configs/quickstart.toml` as written, its synthetic shards
//!   generated into a temp folder, stopped after step 50 (`--stop-after 50`), so the learning-rate
//!   schedule is the 300-step run's: the losses of the README command's first 50 steps.
//! - `bench_first_5_steps`: `configs/bench-cpu.toml` through `bench::bench_losses`, the steps
//!   `mm1-train bench` runs (its 2 warm-up steps first) on its in-memory random batch.
//!
//! Each loss must be within a relative [`REL_TOL`] of the file's. Measured (docs/training.md,
//! "Golden losses"): reruns and `RAYON_NUM_THREADS` = 1, 2, 4 give bit-identical losses, and the
//! OpenBLAS GEMMs (another summation order) differ by 1.2e-7 at most: those pass. The learning
//! rate changed by 1e-4 relative (6.7e-5 quickstart, 2.1e-6 bench), the ViT's GELU swapped for
//! QuickGELU (1.8e-4) and another `data.seed` (0.55) fail.
//!
//! The quickstart's file records the synthetic generator's version (`GENERATOR_VERSION`), whose
//! shards it trained on. When a change is meant to change the training (a new generator in
//! `data/src/synth/`, a new initialisation, a kernel with other maths), rewrite both files with one
//! command and commit them with the change, saying why:
//!
//! ```sh
//! MM1_REGEN_GOLDEN=1 cargo test -p mm1-trainer --test golden_losses
//! ```

mod train_support;

use std::path::{Path, PathBuf};

use mm1_trainer::run::{RunOptions, train};

/// Largest relative difference accepted between a step's loss and the golden file's.
const REL_TOL: f64 = 1e-6;

/// Set to `1` to rewrite the golden files instead of comparing with them.
const REGEN: &str = "MM1_REGEN_GOLDEN";

const QUICKSTART_STEPS: u64 = 50;
const BENCH_STEPS: usize = 5;

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

fn golden_path(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/golden").join(name)
}

/// The header line naming the synthetic generator's version the quickstart trained on.
fn generator_line() -> String {
    format!("synthetic generator {}", mm1_data::synth::GENERATOR_VERSION)
}

/// `(step, loss)` rows of a golden file (`#` lines are comments).
fn read_golden(path: &Path) -> Vec<(u64, f64)> {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e} (write it with {REGEN}=1)", path.display()));
    let row = |l: &str| {
        let (step, loss) = l.split_once('\t').unwrap_or_else(|| panic!("{}: bad line {l:?}", path.display()));
        (step.parse().unwrap(), loss.parse().unwrap())
    };
    text.lines().filter(|l| !l.starts_with('#') && !l.trim().is_empty()).map(row).collect()
}

fn write_golden(path: &Path, about: &str, losses: &[(u64, f64)]) {
    let mut text = String::new();
    for line in about.lines() {
        text += &format!("# {line}\n");
    }
    text += &format!("# Rewrite: {REGEN}=1 cargo test -p mm1-trainer --test golden_losses\n# step\tloss\n");
    for (step, loss) in losses {
        text += &format!("{step}\t{loss}\n"); // shortest text that reads back as the same f64
    }
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

/// Compares `losses` with the golden file `name` (or rewrites it under [`REGEN`]).
fn check_golden(name: &str, about: &str, losses: &[(u64, f64)]) {
    let path = golden_path(name);
    if std::env::var(REGEN).is_ok_and(|v| v == "1") {
        write_golden(&path, about, losses);
        println!("{REGEN}=1: wrote {} ({} steps)", path.display(), losses.len());
        return;
    }
    check_generator(&path, about);
    let golden = read_golden(&path);
    let steps = |v: &[(u64, f64)]| v.iter().map(|r| r.0).collect::<Vec<_>>();
    assert_eq!(steps(losses), steps(&golden), "{}: steps differ", path.display());
    compare(&path, losses, &golden);
}

/// A file written on another synthetic generator than this build's fails with that reason (its
/// losses would differ too, but the message says why).
fn check_generator(path: &Path, about: &str) {
    let Some(now) = about.lines().find(|l| l.starts_with("synthetic generator")) else { return };
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let then =
        text.lines().find_map(|l| l.strip_prefix("# ").filter(|l| l.starts_with("synthetic generator")));
    assert_eq!(
        then,
        Some(now),
        "{}: written on another synthetic generator (data/src/synth/mod.rs GENERATOR_VERSION): \
         rewrite it with {REGEN}=1 cargo test -p mm1-trainer --test golden_losses",
        path.display()
    );
}

/// Every step within [`REL_TOL`] of the golden loss; the panic lists each step outside it with
/// both numbers.
fn compare(path: &Path, losses: &[(u64, f64)], golden: &[(u64, f64)]) {
    let rel = |a: f64, g: f64| (a - g).abs() / g.abs();
    let within = |a: f64, g: f64| rel(a, g) <= REL_TOL; // false for NaN
    let max = losses.iter().zip(golden).map(|(a, g)| rel(a.1, g.1)).fold(0.0, f64::max);
    println!(
        "{}: max relative difference {max:.3e} over {} steps (tolerance {REL_TOL:e})",
        path.display(),
        losses.len()
    );
    let off: Vec<String> = losses
        .iter()
        .zip(golden)
        .filter(|(a, g)| !within(a.1, g.1))
        .map(|(a, g)| format!("step {}: {} vs golden {} ({:.2e} relative)", a.0, a.1, g.1, rel(a.1, g.1)))
        .collect();
    assert!(
        off.is_empty(),
        "{} of {} losses differ from {} by more than {REL_TOL:e} relative:\n{}\n\
         If the training is meant to change, rewrite the file: {REGEN}=1 cargo test -p mm1-trainer --test golden_losses",
        off.len(),
        losses.len(),
        path.display(),
        off.join("\n")
    );
}

#[test]
fn quickstart_first_50_steps() {
    let _one = train_support::one_at_a_time();
    let tmp = tempfile::tempdir().unwrap();
    // The quickstart as written, its data paths (relative to the working folder) moved to `tmp`.
    let text = std::fs::read_to_string(repo_root().join("configs/quickstart.toml")).unwrap();
    let synth = tmp.path().join("synth");
    let text = text.replace("data/synth-cache/quickstart", synth.to_str().unwrap());
    let file = tmp.path().join("quickstart.toml");
    std::fs::write(&file, text).unwrap();
    let loaded = train_support::load(&file, &["log.progress=\"off\"", "log.tensorboard=false"]);
    let run_dir = tmp.path().join("run");
    let opts = RunOptions { run_dir: Some(run_dir), stop_after: Some(QUICKSTART_STEPS), resume: false };
    let s = train(&loaded, &opts).unwrap();
    assert_eq!(s.end_step, QUICKSTART_STEPS);
    let about = format!(
        "Training loss of steps 1-50 of configs/quickstart.toml (the README's first command,\n\
         --stop-after 50), flex device; trainer/tests/golden_losses.rs compares with it.\n{}",
        generator_line()
    );
    check_golden("quickstart-50.tsv", &about, &s.losses);
}

#[test]
fn bench_first_5_steps() {
    let _one = train_support::one_at_a_time();
    let loaded = train_support::load(&repo_root().join("configs/bench-cpu.toml"), &[]);
    let losses = mm1_trainer::bench::bench_losses(&loaded.config, BENCH_STEPS).unwrap();
    let losses: Vec<(u64, f64)> = (1..).zip(losses).collect();
    let about = "Training loss of the first 5 steps of `mm1-train bench --config configs/bench-cpu.toml`\n\
                 (its 2 warm-up steps, then the timed ones) on its in-memory batch, flex device;\n\
                 trainer/tests/golden_losses.rs compares with it.";
    check_golden("bench-cpu-5.tsv", about, &losses);
}
