//! Activation checkpointing with expert parallelism: 2 MPI ranks, `parallel.ep = 2` (each rank
//! computes half of the experts of every MoE layer, tokens exchanged by all-to-all), log the
//! same loss, aux loss and gradient norm with every block or every 2nd block recomputed as
//! without. The recompute reruns a layer's forward all-to-all in the backward pass, in the same
//! order on both ranks.

mod parallel_support;
mod train_support;

use std::path::{Path, PathBuf};

use parallel_support::*;
use train_support::*;

/// 2 ranks × 2 rows over 2 data streams; 4 experts, top 2, in every layer.
const EP2: [&str; 6] = [
    "data.streams=2",
    "data.batch_size=2",
    "parallel.dp=2",
    "parallel.ep=2",
    "parallel.collective_timeout_s=60",
    "optim.grad_accum=2",
];

/// The tiny run with two training shards per source (one per stream) and a MoE decoder.
fn ep_run_file(dir: &Path) -> PathBuf {
    let moe = "\n[model.llm.moe]\nnum_experts = 4\ntop_k = 2\nevery = 1\ncapacity_factor = 0.0\n";
    two_stream_run_file(dir, 4, moe)
}

fn two_ranks(file: &Path, run_dir: &Path, sets: &[&str]) -> Vec<[f64; 3]> {
    let sets = [&EP2[..], sets].concat().join(";");
    let env = [
        ("MM1_TEST_RUN_FILE", file.to_str().unwrap()),
        ("MM1_TEST_RUN_DIR", run_dir.to_str().unwrap()),
        ("MM1_TEST_SETS", sets.as_str()),
    ];
    run_workers("workers::worker_train", 2, &env).expect_success();
    let lines = mm1_trainer::logging::read_metrics_jsonl(&run_dir.join("metrics.jsonl")).unwrap();
    let value = |l: &serde_json::Map<String, serde_json::Value>, key: &str| {
        l.get(key).and_then(|v| v.as_f64()).unwrap_or_else(|| panic!("{key} in {l:?}"))
    };
    lines.iter().map(|l| [value(l, "loss"), value(l, "aux_loss"), value(l, "grad_norm")]).collect()
}

#[test]
#[cfg_attr(not(feature = "mpi"), ignore = "needs the `mpi` feature: cargo test --features mm1-trainer/mpi")]
fn expert_parallel_runs_log_the_same_losses_with_recomputed_blocks() {
    let tmp = tempfile::tempdir().unwrap();
    let file = ep_run_file(tmp.path());
    let reference = two_ranks(&file, &tmp.path().join("none"), &[]);
    assert_eq!(reference.len(), 4);
    assert!(reference.iter().all(|r| r[1] > 0.0), "the MoE run logs an aux loss: {reference:?}");
    let every_2nd = ["train.activation_checkpointing=\"every_n\"", "train.activation_checkpointing_every=2"];
    for (what, sets) in
        [("blocks", &["train.activation_checkpointing=\"blocks\""][..]), ("every 2nd block", &every_2nd[..])]
    {
        let ours = two_ranks(&file, &tmp.path().join(what.replace(' ', "_")), sets);
        assert_eq!(ours.len(), reference.len(), "{what}: steps");
        for (step, (a, b)) in ours.iter().zip(&reference).enumerate() {
            for (name, x, y) in [("loss", a[0], b[0]), ("aux", a[1], b[1]), ("grad norm", a[2], b[2])] {
                assert!((x - y).abs() <= 1e-5 * y.abs(), "{what}, step {}: {name} {x} vs {y}", step + 1);
            }
        }
    }
}

#[cfg(feature = "mpi")]
mod workers {
    use super::*;

    #[test]
    #[ignore = "run on 2 ranks by expert_parallel_runs_log_the_same_losses_with_recomputed_blocks"]
    fn worker_train() {
        train_from_env();
    }
}
