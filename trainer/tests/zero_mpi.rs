//! ZeRO over 2 MPI ranks (`parallel.zero`): stages 1 and 2 train the tiny model to the losses and
//! parameters of `parallel.zero = 0` on the same 2 ranks, each rank's optimizer slice holds about
//! half the AdamW state (counted from the checkpoint's files), a stopped and resumed ZeRO run
//! equals the uninterrupted one bit for bit, and its slices load on another number of ranks.

mod parallel_support;
mod train_support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use mm1_trainer::checkpoint::{ZeroIndex, slice_file};
use mm1_trainer::run::{RunOptions, train};
use parallel_support::*;
use train_support::*;

const STEPS: u64 = 8;
const HALF: u64 = 4;

/// 2 ranks × 2 rows, 2 micro-batches per step (accumulation goes through the reduction too).
const TWO: [&str; 4] =
    ["data.batch_size=2", "parallel.dp=2", "parallel.collective_timeout_s=60", "optim.grad_accum=2"];
/// The same 2 streams read by 1 rank.
const ONE: [&str; 3] = ["data.streams=2", "data.batch_size=4", "optim.grad_accum=2"];

/// The tiny run with two training shards per source, one per data stream (as elastic_resume.rs);
/// `extra` is appended to the run file.
fn two_stream_file(dir: &Path, extra: &str) -> PathBuf {
    two_stream_run_file(dir, STEPS, extra)
}

/// burn-flex keeps one random seed per process: one in-process run at a time (see elastic_resume.rs).
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn one_rank(file: &Path, run_dir: &Path, stop_after: Option<u64>, sets: &[&str]) {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let opts = RunOptions { run_dir: Some(run_dir.to_path_buf()), stop_after, ..Default::default() };
    train(&load(file, sets), &opts).unwrap();
}

fn two_ranks(file: &Path, run_dir: &Path, stop_after: Option<u64>, sets: &[&str]) {
    let stop = stop_after.map(|n| n.to_string()).unwrap_or_default();
    let sets = sets.join(";");
    let env = [
        ("MM1_TEST_RUN_FILE", file.to_str().unwrap()),
        ("MM1_TEST_RUN_DIR", run_dir.to_str().unwrap()),
        ("MM1_TEST_STOP_AFTER", stop.as_str()),
        ("MM1_TEST_SETS", sets.as_str()),
    ];
    run_workers("workers::worker_train", 2, &env).expect_success();
}

fn with(sets: &[&str], more: &[&'static str]) -> Vec<String> {
    sets.iter().chain(more).map(|s| s.to_string()).collect()
}

fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

/// The logged losses of `got` equal `want`'s within the data-parallel tolerance.
fn assert_losses(got: &Path, want: &Path, what: &str) {
    let (got, want) = (logged_losses(got), logged_losses(want));
    assert_eq!(got.len(), want.len(), "{what}: steps logged");
    for ((s, g), (_, w)) in got.iter().zip(&want) {
        assert!((g - w).abs() <= 1e-5 * w.abs(), "{what}, step {s}: {g} vs {w}");
    }
}

/// The newest checkpoints' parameters agree within the data-parallel tolerance (per tensor:
/// L2 difference <= 1e-5 of its norm); returns how many tensors are bit-identical.
fn assert_params(got: &Path, want: &Path, what: &str) -> usize {
    assert_params_but(got, want, what, "")
}

/// [`assert_params`] for the tensors whose names do not end in `skip` (empty: all).
fn assert_params_but(got: &Path, want: &Path, what: &str, skip: &str) -> usize {
    let (got, want) = (checkpoint_tensors(got), checkpoint_tensors(want));
    assert_eq!(got.keys().collect::<Vec<_>>(), want.keys().collect::<Vec<_>>(), "{what}: tensor names");
    let f32s =
        |b: &[u8]| -> Vec<f32> { b.chunks(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect() };
    let mut identical = 0;
    println!("{what}: {} tensors", got.len());
    for (name, g) in got.iter().filter(|(name, _)| skip.is_empty() || !name.ends_with(skip)) {
        let (g, w) = (f32s(g), f32s(&want[name]));
        let diff: f64 = g.iter().zip(&w).map(|(a, b)| ((a - b) as f64).powi(2)).sum::<f64>().sqrt();
        let norm: f64 = w.iter().map(|b| (*b as f64).powi(2)).sum::<f64>().sqrt();
        assert!(diff <= 1e-5 * norm.max(1e-3), "{what}, {name}: difference {diff}, norm {norm}");
        identical += usize::from(g == w);
    }
    identical
}

fn last_checkpoint(run_dir: &Path) -> PathBuf {
    run_dir.join(format!("checkpoints/step-{STEPS:08}"))
}

/// Bytes of the AdamW state tensors in one optimizer file.
fn state_bytes(file: &Path) -> usize {
    let bytes = burn::tensor::Bytes::from_bytes_vec(std::fs::read(file).unwrap());
    mm1_trainer::optim::state_tensor_bytes(bytes).unwrap()
}

#[test]
#[cfg_attr(not(feature = "mpi"), ignore = "needs the `mpi` feature: cargo test --features mm1-trainer/mpi")]
fn zero_1_and_2_on_two_ranks_equal_zero_0_with_half_the_optimizer_state_per_rank() {
    let tmp = tempfile::tempdir().unwrap();
    let file = two_stream_file(tmp.path(), "");
    let runs: BTreeMap<u8, PathBuf> = (0..=2).map(|z| (z, tmp.path().join(format!("zero{z}")))).collect();
    for (z, dir) in &runs {
        let stage = format!("parallel.zero={z}");
        two_ranks(&file, dir, None, &[&TWO[..], &[stage.as_str()]].concat());
    }
    for z in [1, 2] {
        assert_losses(&runs[&z], &runs[&0], &format!("zero {z} vs 0"));
        let identical = assert_params(&runs[&z], &runs[&0], &format!("zero {z} vs 0"));
        println!("zero {z}: {identical} of the model's tensors bit-identical to zero 0");
    }

    // optimizer state per rank: zero 0 holds all of it on each rank, zero 1 and 2 one slice each
    let whole = state_bytes(&last_checkpoint(&runs[&0]).join("optim.bpk"));
    let tensors = checkpoint_tensors(&runs[&0]); // f32 bytes by parameter path
    assert!(!last_checkpoint(&runs[&0]).join("zero-index.json").exists());
    for z in [1, 2] {
        let ckpt = last_checkpoint(&runs[&z]);
        let index: ZeroIndex =
            serde_json::from_str(&std::fs::read_to_string(ckpt.join("zero-index.json")).unwrap()).unwrap();
        assert_eq!((index.stage, index.ranks), (z, 2));
        let slices: Vec<usize> = (0..2).map(|r| state_bytes(&ckpt.join(slice_file(r)))).collect();
        println!("zero {z}: AdamW state bytes per rank {slices:?}, zero 0: {whole} on each rank");
        // every parameter's state exactly once, split as the index says
        assert_eq!(slices.iter().sum::<usize>(), whole, "zero {z}: slices {slices:?} vs whole {whole}");
        let moments = |p: &mm1_trainer::checkpoint::ZeroEntry| 2 * tensors[&p.path].len(); // 2 f32 per value
        let index_bytes: Vec<usize> =
            (0..2).map(|r| index.params.iter().filter(|p| p.rank == r).map(moments).sum()).collect();
        assert_eq!(slices, index_bytes, "zero {z}: slice sizes vs the index's parameters");
        // together the slices are zero 0's state, value for value (the runs are bit-identical)
        let merged = state_by_path(&[ckpt.join(slice_file(0)), ckpt.join(slice_file(1))]);
        assert!(merged == state_by_path(&[last_checkpoint(&runs[&0]).join("optim.bpk")]), "zero {z}: state");
        // greedy balance: no slice above half plus the largest parameter's moments
        let largest = index.params.iter().map(moments).max().unwrap();
        assert!(slices.iter().all(|&s| s <= whole / 2 + largest), "zero {z}: {slices:?}, largest {largest}");
    }
}

/// With a MoE decoder (`ep = 1`: the experts are partitioned like any parameter, and an expert no
/// token reached has no gradient on a rank) ZeRO-2 still trains as `zero = 0`, also reducing unit
/// by unit under activation checkpointing.
#[test]
#[cfg_attr(not(feature = "mpi"), ignore = "needs the `mpi` feature: cargo test --features mm1-trainer/mpi")]
fn zero_2_with_a_moe_decoder_equals_zero_0() {
    let tmp = tempfile::tempdir().unwrap();
    let moe = "\n[model.llm.moe]\nnum_experts = 4\ntop_k = 2\nevery = 1\ncapacity_factor = 0.0\n";
    let file = two_stream_file(tmp.path(), moe);
    let (zero0, zero2) = (tmp.path().join("zero0"), tmp.path().join("zero2"));
    two_ranks(&file, &zero0, None, &TWO);
    two_ranks(&file, &zero2, None, &strs(&with(&TWO, &["parallel.zero=2"])));
    assert_losses(&zero2, &zero0, "MoE, zero 2 vs 0");
    let identical = assert_params(&zero2, &zero0, "MoE, zero 2 vs 0");
    println!("MoE, zero 2: {identical} tensors bit-identical to zero 0");
    assert!(last_checkpoint(&zero2).join("optim-zero1.bpk").is_file());

    // every block recomputed, one micro-batch per step: each MoE layer's gradients (router and
    // experts) reduced with the layer, bit for bit zero 0's
    let (zero0, zero2) = (tmp.path().join("zero0-ckpt"), tmp.path().join("zero2-ckpt"));
    two_ranks(&file, &zero0, None, &CHECKPOINTED);
    two_ranks(&file, &zero2, None, &[&CHECKPOINTED[..], &["parallel.zero=2"]].concat());
    assert_eq!(logged_losses(&zero2), logged_losses(&zero0), "MoE, checkpointed zero 2 vs 0");
    assert_eq!(checkpoint_tensors(&zero2), checkpoint_tensors(&zero0), "MoE, checkpointed zero 2 vs 0");
}

/// 2 ranks × 4 rows in one micro-batch, a tied head, every block recomputed: ZeRO-2 reduces each
/// unit's gradients during the segmented backward pass (`recompute/finish.rs`).
const CHECKPOINTED: [&str; 6] = [
    "data.batch_size=4",
    "parallel.dp=2",
    "parallel.collective_timeout_s=60",
    "optim.grad_accum=1",
    "model.llm.tie_embeddings=true",
    "train.activation_checkpointing=\"blocks\"",
];

/// ZeRO-2 under activation checkpointing, each unit's gradients reduced to their owner as soon
/// as they are complete: with one micro-batch per step every sum is zero 0's `a + b` (a tied
/// embedding's head and embedding terms added before its reduction, as zero 0 adds them), so it
/// logs zero 0's losses and ends with its parameters bit for bit, also with a frozen ViT; a
/// unit's gradient dropped or reduced twice would move them. Both stay within the data-parallel tolerance of zero 0 without
/// checkpointing (one backward pass through the whole graph). With 2 micro-batches per step
/// each is reduced on its own and the owner adds the sums (`(a1 + b1) + (a2 + b2)`, not zero
/// 0's `(a1 + a2) + (b1 + b2)`): losses within the tolerance, and the parameters but the
/// attention key biases, whose gradient is rounding noise only (see the resume test below).
#[test]
#[cfg_attr(not(feature = "mpi"), ignore = "needs the `mpi` feature: cargo test --features mm1-trainer/mpi")]
fn zero_2_with_activation_checkpointing_equals_zero_0() {
    let tmp = tempfile::tempdir().unwrap();
    let file = two_stream_file(tmp.path(), "");
    let run = |name: &str, sets: &[&str]| {
        let dir = tmp.path().join(name);
        two_ranks(&file, &dir, None, sets);
        dir
    };
    let zero0 = run("zero0", &CHECKPOINTED);
    let zero2 = run("zero2", &[&CHECKPOINTED[..], &["parallel.zero=2"]].concat());
    assert_eq!(logged_losses(&zero2), logged_losses(&zero0), "zero 2 vs 0, checkpointed");
    assert_eq!(checkpoint_tensors(&zero2), checkpoint_tensors(&zero0), "zero 2 vs 0, checkpointed");
    let full_graph =
        run("zero0-none", &[&CHECKPOINTED[..], &["train.activation_checkpointing=\"none\""]].concat());
    assert_losses(&zero2, &full_graph, "zero 2 checkpointed vs zero 0 not");
    assert_params(&zero2, &full_graph, "zero 2 checkpointed vs zero 0 not");

    // a frozen ViT: its units have no partitioned parameter and exchange nothing
    let frozen = ["model.freeze.vision=true"];
    let zero0 = run("zero0-frozen", &[&CHECKPOINTED[..], &frozen].concat());
    let zero2 = run("zero2-frozen", &[&CHECKPOINTED[..], &frozen, &["parallel.zero=2"]].concat());
    assert_eq!(logged_losses(&zero2), logged_losses(&zero0), "frozen ViT, zero 2 vs 0");
    assert_eq!(checkpoint_tensors(&zero2), checkpoint_tensors(&zero0), "frozen ViT, zero 2 vs 0");

    let accum2 = ["data.batch_size=2", "optim.grad_accum=2"];
    let zero0 = run("zero0-accum", &[&CHECKPOINTED[..], &accum2].concat());
    let zero2 = run("zero2-accum", &[&CHECKPOINTED[..], &accum2, &["parallel.zero=2"]].concat());
    assert_losses(&zero2, &zero0, "zero 2 vs 0, checkpointed, 2 micro-batches");
    let what = "zero 2 vs 0, checkpointed, 2 micro-batches";
    let identical = assert_params_but(&zero2, &zero0, what, "k_proj.bias");
    println!("checkpointed, 2 micro-batches: {identical} tensors bit-identical to zero 0");
}

/// A checkpointed ZeRO-2 run stopped after 4 of 8 steps and resumed equals the uninterrupted one.
#[test]
#[cfg_attr(not(feature = "mpi"), ignore = "needs the `mpi` feature: cargo test --features mm1-trainer/mpi")]
fn a_checkpointed_zero_2_run_resumes_exactly() {
    let tmp = tempfile::tempdir().unwrap();
    let file = two_stream_file(tmp.path(), "");
    let sets = [&CHECKPOINTED[..], &["data.batch_size=2", "optim.grad_accum=2", "parallel.zero=2"]].concat();
    let (full, split) = (tmp.path().join("full"), tmp.path().join("split"));
    two_ranks(&file, &full, None, &sets);
    two_ranks(&file, &split, Some(HALF), &sets);
    two_ranks(&file, &split, None, &sets);
    assert_eq!(logged_losses(&split), logged_losses(&full), "resumed checkpointed zero 2 run");
    assert_eq!(checkpoint_tensors(&split), checkpoint_tensors(&full), "parameters after resume");
}

/// Every state tensor of the optimizer files `files` by `<parameter path>.<field>` (the ids differ
/// between runs, the paths do not).
fn state_by_path(files: &[PathBuf]) -> BTreeMap<String, Vec<u8>> {
    use burn::store::burn_pack::Reader;
    let mut out = BTreeMap::new();
    for file in files {
        let reader = Reader::from_file(file).unwrap();
        let paths = reader.metadata().clone();
        for t in reader.into_tensors().unwrap() {
            let (name, _, _, id, bytes) = t.into_parts().unwrap();
            let field = name.split_once('.').unwrap().1;
            let path = &paths[&id.unwrap().to_string()];
            assert!(out.insert(format!("{path}.{field}"), bytes.to_vec()).is_none(), "{path} in two files");
        }
    }
    out
}

#[test]
#[cfg_attr(not(feature = "mpi"), ignore = "needs the `mpi` feature: cargo test --features mm1-trainer/mpi")]
fn a_zero_run_resumes_exactly_and_on_another_number_of_ranks() {
    let tmp = tempfile::tempdir().unwrap();
    let file = two_stream_file(tmp.path(), "");
    let zero1 = with(&TWO, &["parallel.zero=1"]);
    let full = tmp.path().join("full");
    two_ranks(&file, &full, None, &strs(&zero1));

    // stopped after 4 steps and resumed on the same 2 ranks: bit for bit
    let split = tmp.path().join("split");
    two_ranks(&file, &split, Some(HALF), &strs(&zero1));
    assert!(split.join(format!("checkpoints/step-{HALF:08}/optim-zero1.bpk")).is_file());
    two_ranks(&file, &split, None, &strs(&zero1));
    assert_eq!(logged_losses(&split), logged_losses(&full), "resumed zero 1 run");
    assert_eq!(checkpoint_tensors(&split), checkpoint_tensors(&full), "parameters after resume");

    // Across a change of ranks the losses are compared (as elastic_resume.rs), not the parameters:
    // the attention key biases get a gradient that is rounding noise only (softmax ignores a
    // shift of every score), which AdamW scales up, so 1 vs 2 ranks moves them by ~3e-5 relative.
    // zero 2 on 2 ranks, then 1 rank over the same 2 streams: the slices merged by the index
    let down = tmp.path().join("down");
    two_ranks(&file, &down, Some(HALF), &strs(&with(&TWO, &["parallel.zero=2"])));
    one_rank(&file, &down, None, &ONE);
    assert_losses(&down, &full, "zero 2 on 2 ranks -> 1 rank");
    assert!(!last_checkpoint(&down).join("zero-index.json").exists());

    // 1 rank, then zero 1 on 2 ranks: each rank takes its own parameters from optim.bpk
    let up = tmp.path().join("up");
    one_rank(&file, &up, Some(HALF), &ONE);
    two_ranks(&file, &up, None, &strs(&zero1));
    assert_losses(&up, &full, "1 rank -> zero 1 on 2 ranks");
}

/// A checkpoint whose experts' AdamW state is split by expert (`parallel.ep = 2`) does not load
/// into a ZeRO run; the error names both settings and what resumes instead.
#[test]
#[cfg_attr(not(feature = "mpi"), ignore = "needs the `mpi` feature: cargo test --features mm1-trainer/mpi")]
fn a_zero_run_from_an_expert_parallel_checkpoint_names_both_settings() {
    let tmp = tempfile::tempdir().unwrap();
    let moe = "\n[model.llm.moe]\nnum_experts = 2\ntop_k = 1\nevery = 1\ncapacity_factor = 0.0\n";
    let file = two_stream_file(tmp.path(), moe);
    let run = tmp.path().join("run");
    two_ranks(&file, &run, Some(2), &strs(&with(&TWO, &["parallel.ep=2"])));
    assert!(run.join("checkpoints/step-00000002/optim-ep1.bpk").is_file());
    let sets = with(&TWO, &["parallel.zero=1"]).join(";");
    let env = [
        ("MM1_TEST_RUN_FILE", file.to_str().unwrap()),
        ("MM1_TEST_RUN_DIR", run.to_str().unwrap()),
        ("MM1_TEST_SETS", sets.as_str()),
    ];
    let out = run_workers("workers::worker_train", 2, &env);
    let text = out.output();
    assert!(!out.success, "a ZeRO run resumed an ep = 2 checkpoint:\n{text}");
    assert!(text.contains("written with parallel.ep = 2") && text.contains("parallel.zero = 1"), "{text}");
}

#[test]
fn zero_needs_ep_1_and_a_stage_of_at_most_2() {
    let tmp = tempfile::tempdir().unwrap();
    let file = two_stream_file(tmp.path(), "");
    let load_err = |sets: &[&str]| load_err(&file, sets);
    let err = load_err(&["parallel.zero=3"]);
    assert!(err.contains("parallel.zero") && err.contains("got 3"), "{err}");
    let err = load_err(&["parallel.zero=1", "parallel.dp=2", "parallel.ep=2"]);
    assert!(err.contains("parallel.zero (1) > 0 needs parallel.ep = 1 (got 2)"), "{err}");
}

#[cfg(feature = "mpi")]
mod workers {
    use super::*;

    #[test]
    #[ignore = "run on 2 ranks by the ZeRO tests"]
    fn worker_train() {
        train_from_env();
    }
}
