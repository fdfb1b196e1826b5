//! Activation checkpointing (`train.activation_checkpointing`) against keeping every
//! activation: the same loss, aux loss and gradient of every parameter for one micro-batch
//! (dense and MoE, with images so the ViT, connector and splice are covered, text only, a
//! frozen ViT, a tied head), the same per-step losses over a few training steps, and a whole
//! run (`mm1-train`'s loop on synthetic data) logging the same losses.

mod train_support;

use std::path::Path;
use std::sync::Mutex;
use train_support::{grad_of, values};

use burn::module::{Module, ModuleVisitor, Param};
use burn::tensor::{Device, Tensor};
use mm1_data::Batch;
use mm1_models::Mm1Model;
use mm1_trainer::bench::synthetic_batch;
use mm1_trainer::config::{ConfigSources, RunConfig};
use mm1_trainer::optim::{AdamWSettings, GroupedAdamW, list_params};
use mm1_trainer::recompute::{Recompute, batch_grads};
use mm1_trainer::run::{RunOptions, train};
use mm1_trainer::step::{LocalStep, batch_to_tensors, forward_batch, train_step_with_recompute};

/// Two ViT blocks, avg-pool connector, three decoder layers (MoE in every one when `moe`).
fn config(dir: &Path, sets: &[&str]) -> RunConfig {
    let text = r#"
[model.vision]
image_size = 16
patch_size = 4
width = 32
layers = 2
heads = 2
mlp_dim = 64

[model.connector]
kind = "avg_pool"
num_tokens = 4

[model.llm]
vocab_size = 96
width = 48
layers = 3
heads = 4
kv_heads = 2
ffn_dim = 64
max_seq_len = 24

[data]
seq_len = 24
batch_size = 2
max_images_per_seq = 1
tokenizer = "unused.json"

[[data.sources]]
name = "bench"
kind = "caption"
shards = "unused.tar"

[optim]
lr = 3e-3
grad_accum = 2

[schedule]
warmup_steps = 0
"#;
    let path = dir.join("run.toml");
    std::fs::write(&path, text).unwrap();
    let mut src = ConfigSources::new(&path);
    for s in sets {
        src = src.set(*s);
    }
    src.load().unwrap().config
}

/// burn-flex keeps one random seed per process: a model is seeded and its values drawn under
/// this lock (the tests of this file run on parallel threads; a whole run holds it).
static INIT: Mutex<()> = Mutex::new(());

const MOE: &str = "model.llm.moe={num_experts=4,top_k=2,every=1,z_loss_coef=0.01}";

fn setup(cfg: &RunConfig, seed: u64) -> (Mm1Model, GroupedAdamW, Device) {
    let device = Device::flex().autodiff();
    let model = {
        let _init = INIT.lock().unwrap_or_else(|e| e.into_inner());
        device.seed(seed);
        let model = cfg.model.init(&device).unwrap();
        model.visit(&mut Materialize); // parameters draw their values lazily, at first use
        model
    };
    let model = mm1_trainer::precision::apply(model, cfg.train.precision, cfg.train.device, &device).unwrap();
    let resolved = cfg.optim.resolve(mm1_trainer::run::non_embedding_params(&model));
    let settings = AdamWSettings::from_config(&cfg.optim, &resolved, &cfg.model.freeze);
    let optim = GroupedAdamW::new(&model, &settings).unwrap();
    (model, optim, device)
}

/// Reads every parameter once, so that its lazy initialiser draws now.
struct Materialize;

impl ModuleVisitor for Materialize {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let _ = param.val();
    }
}

/// `max |a - b| <= tol · max |b|`.
fn assert_close(what: &str, a: &[f32], b: &[f32], tol: f32) {
    assert_eq!(a.len(), b.len(), "{what}: lengths");
    let scale = b.iter().fold(0f32, |m, x| m.max(x.abs())).max(1e-12);
    let worst = a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0f32, f32::max);
    assert!(worst <= tol * scale, "{what}: max |diff| {worst} (max |ref| {scale})");
}

/// `batch` without its images (placeholders become text).
fn text_only(mut batch: Batch) -> Batch {
    batch.image_mask.fill(false);
    batch.n_images = 0;
    batch.images.clear();
    batch
}

/// One micro-batch kept whole vs with `policy`: loss, aux loss, per-token NLL, MoE loads and
/// the gradient of every trainable parameter (returns how many were compared).
fn compare_grads(cfg: &RunConfig, batch: &Batch, policy: Recompute) -> usize {
    let (model, optim, device) = setup(cfg, 11);
    let (denom, micro) = (batch.loss_tokens() as f64, 2.0);
    // reference: one backward through the whole graph, as train_step does without checkpointing
    let out = forward_batch(&model, batch_to_tensors(batch, &device).unwrap()).unwrap();
    let objective = out.ce_sum().div_scalar(denom) + out.aux.clone().div_scalar(micro);
    let reference = optim.grads(objective.backward(), &model);
    let tensors = batch_to_tensors(batch, &device).unwrap();
    let (ours, grads) = batch_grads(&model, &optim, tensors, policy, (denom, micro), None).unwrap();

    assert_close("nll", &values(ours.nll), &values(out.nll), 1e-6);
    assert_close("aux", &values(ours.aux), &values(out.aux), 1e-6);
    assert_eq!(ours.moe.len(), out.moe.len(), "MoE layers");
    for (a, b) in ours.moe.iter().zip(&out.moe) {
        assert_eq!(a.expert_load, b.expert_load, "expert load of layer {}", a.layer);
    }
    let mut compared = 0;
    for p in list_params(&model) {
        let (a, b) = (grad_of(&grads, &p), grad_of(&reference, &p));
        assert_eq!(a.is_some(), b.is_some(), "{}: a gradient on one path only ({policy:?})", p.path);
        if let (Some(a), Some(b)) = (a, b) {
            assert_close(&format!("d {} ({policy:?})", p.path), &a, &b, 1e-5);
            compared += 1;
        }
    }
    compared
}

#[test]
fn gradients_equal_keeping_everything_dense() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = config(tmp.path(), &[]);
    let batch = synthetic_batch(&cfg, 3);
    for policy in [Recompute::EveryNth(1), Recompute::EveryNth(2)] {
        // every parameter of the model has a gradient with images in the batch
        assert_eq!(compare_grads(&cfg, &batch, policy), list_params(&setup(&cfg, 0).0).len());
    }
    let text = text_only(batch);
    assert!(compare_grads(&cfg, &text, Recompute::EveryNth(1)) > 20, "text-only batch");
}

#[test]
fn gradients_equal_keeping_everything_moe() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = config(tmp.path(), &[MOE]);
    let batch = synthetic_batch(&cfg, 5);
    for policy in [Recompute::EveryNth(1), Recompute::EveryNth(3)] {
        assert_eq!(compare_grads(&cfg, &batch, policy), list_params(&setup(&cfg, 0).0).len());
    }
}

/// bf16 mixed precision (`train.precision`): the recompute runs the same casts.
#[test]
fn gradients_equal_keeping_everything_bf16() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = config(tmp.path(), &[MOE, "train.precision=\"bf16\""]);
    let batch = synthetic_batch(&cfg, 9);
    for policy in [Recompute::EveryNth(1), Recompute::EveryNth(2)] {
        assert_eq!(compare_grads(&cfg, &batch, policy), list_params(&setup(&cfg, 0).0).len());
    }
}

#[test]
fn gradients_equal_with_a_frozen_vit_and_a_tied_head() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = config(tmp.path(), &["model.freeze.vision=true", "model.llm.tie_embeddings=true"]);
    let batch = synthetic_batch(&cfg, 7);
    let vision = list_params(&setup(&cfg, 0).0).iter().filter(|p| p.path.starts_with("vision.")).count();
    let all = list_params(&setup(&cfg, 0).0).len();
    assert_eq!(compare_grads(&cfg, &batch, Recompute::EveryNth(1)), all - vision);
}

/// Per-step loss, aux loss and gradient norm of 3 steps of 2 micro-batches each, from a fresh
/// copy of the seed-17 model and optimizer.
fn losses(cfg: &RunConfig, policy: Recompute) -> Vec<[f64; 3]> {
    let (mut model, mut optim, device) = setup(cfg, 17);
    (0..3u64)
        .map(|step| {
            let batches = [synthetic_batch(cfg, 2 * step), synthetic_batch(cfg, 2 * step + 1)];
            let (m, r) = train_step_with_recompute(
                model.clone(),
                &mut optim,
                &batches,
                3e-3,
                &device,
                &LocalStep,
                policy,
            )
            .unwrap();
            model = m;
            assert!(r.applied);
            [r.loss, r.aux_loss, r.grad_norm]
        })
        .collect()
}

fn assert_same_losses(what: &str, ours: &[[f64; 3]], reference: &[[f64; 3]]) {
    assert_eq!(ours.len(), reference.len(), "{what}: steps");
    for (step, (a, b)) in ours.iter().zip(reference).enumerate() {
        for (name, x, y) in [("loss", a[0], b[0]), ("aux", a[1], b[1]), ("grad norm", a[2], b[2])] {
            assert!((x - y).abs() <= 1e-5 * y.abs().max(1e-6), "{what}, step {step} {name}: {x} vs {y}");
        }
    }
}

#[test]
fn training_steps_give_the_same_losses() {
    let tmp = tempfile::tempdir().unwrap();
    for sets in [&[][..], &[MOE][..]] {
        let cfg = config(tmp.path(), sets);
        let reference = losses(&cfg, Recompute::Nothing);
        assert!(sets.is_empty() || reference[0][1] > 0.0, "the MoE run has an aux loss");
        for policy in [Recompute::EveryNth(1), Recompute::EveryNth(2)] {
            assert_same_losses(&format!("{policy:?} {sets:?}"), &losses(&cfg, policy), &reference);
        }
    }
}

/// `mm1-train`'s loop (data loader, micro-batches, logging) with the field set in the config:
/// the logged loss, aux loss and gradient norm of 4 steps equal those of the run without it.
#[test]
fn a_run_logs_the_same_losses() {
    let tmp = tempfile::tempdir().unwrap();
    let synth = tmp.path().join("synth");
    let file = train_support::tiny_run_file(tmp.path(), &synth, 4, "");
    let run = |name: &str, sets: &[&str]| {
        let mut sets = sets.to_vec();
        sets.extend(["optim.grad_accum=2", "model.llm.layers=2", "checkpoint.every=0", MOE]);
        let loaded = train_support::load(&file, &sets);
        let run_dir = tmp.path().join(name);
        let opts = RunOptions { run_dir: Some(run_dir.clone()), ..RunOptions::default() };
        let _init = INIT.lock().unwrap_or_else(|e| e.into_inner()); // the run seeds and draws its model
        train(&loaded, &opts).unwrap();
        let lines = mm1_trainer::logging::read_metrics_jsonl(&run_dir.join("metrics.jsonl")).unwrap();
        let value = |l: &serde_json::Map<String, serde_json::Value>, key: &str| {
            l.get(key).and_then(|v| v.as_f64()).unwrap_or_else(|| panic!("{key} in {l:?}"))
        };
        lines
            .iter()
            .map(|l| [value(l, "loss"), value(l, "aux_loss"), value(l, "grad_norm")])
            .collect::<Vec<_>>()
    };
    let reference = run("none", &[]);
    assert_eq!(reference.len(), 4);
    assert_same_losses("blocks", &run("blocks", &["train.activation_checkpointing=\"blocks\""]), &reference);
    let every_2nd = ["train.activation_checkpointing=\"every_n\"", "train.activation_checkpointing_every=2"];
    assert_same_losses("every 2nd block", &run("every_2nd", &every_2nd), &reference);
}

#[test]
fn config_selects_the_blocks() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = config(tmp.path(), &["train.activation_checkpointing=\"blocks\""]);
    assert_eq!(Recompute::from_config(&cfg.train), Recompute::EveryNth(1));
    let cfg = config(
        tmp.path(),
        &["train.activation_checkpointing=\"every_n\"", "train.activation_checkpointing_every=2"],
    );
    let policy = Recompute::from_config(&cfg.train);
    assert_eq!((0..4).map(|i| policy.block(i)).collect::<Vec<_>>(), [false, true, false, true]);
    assert_eq!(Recompute::from_config(&config(tmp.path(), &[]).train), Recompute::Nothing);

    let path = tmp.path().join("run.toml");
    let err = |sets: &[&str]| {
        let mut src = ConfigSources::new(&path);
        for s in sets {
            src = src.set(*s);
        }
        src.load().unwrap_err().to_string()
    };
    let e = err(&["train.activation_checkpointing=\"every_n\"", "train.activation_checkpointing_every=0"]);
    assert!(e.contains("train.activation_checkpointing_every") && e.contains("got 0"), "{e}");
    // with expert parallelism too (tests/activation_checkpointing_ep.rs runs it on 2 ranks)
    let cfg = config(
        tmp.path(),
        &[MOE, "parallel.dp=2", "parallel.ep=2", "train.activation_checkpointing=\"blocks\""],
    );
    assert_eq!(Recompute::from_config(&cfg.train), Recompute::EveryNth(1));
}
