//! Shared by the training tests: a tiny MM1 stack on a tiny synthetic benchmark, written
//! as a run file into a temp folder (so the tests go through the same loading as the CLI).

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use burn::store::ModuleSnapshot;
use mm1_trainer::config::{ConfigSources, LoadedConfig};

/// One in-process model initialisation or run at a time, for the tests of one binary that need
/// theirs reproducible: burn-flex keeps one random stream per process, so two tests that seed
/// and build a model at the same moment draw each other's numbers (seen: a golden quickstart run
/// off by up to 6e-2, an elastic reference run's step 1 off by 0.02, and the accumulation test's
/// parameters 1.7e-5 apart after one AdamW step). Worker processes need no lock.
pub fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

/// A run file for a ~60k-parameter model; `extra` is appended (more sections or keys).
pub fn tiny_run_file(dir: &Path, synth: &Path, steps: u64, extra: &str) -> PathBuf {
    let s = synth.display();
    let text = format!(
        r#"
[model.vision]
image_size = 16
patch_size = 8
width = 32
layers = 1
heads = 2
mlp_dim = 64

[model.connector]
kind = "avg_pool"
num_tokens = 4

[model.llm]
vocab_size = 320
width = 48
layers = 1
heads = 2
kv_heads = 1
ffn_dim = 96
max_seq_len = 64

[data]
seq_len = 64
batch_size = 4
max_images_per_seq = 2
tokenizer = "{s}/tokenizer.json"
workers = 1
prefetch = 1
shuffle_buffer = 8

[data.synth]
out = "{s}"
image_size = 32
shards_per_kind = 2
samples_per_shard = 24
eval_vqa = 4
eval_captions = 4
vocab_size = 320

[[data.sources]]
name = "caption"
kind = "caption"
shards = "{s}/caption-000000.tar"
weight = 0.45

[[data.sources]]
name = "interleaved"
kind = "interleaved"
shards = "{s}/interleaved-000000.tar"
weight = 0.45

[[data.sources]]
name = "text"
kind = "text"
shards = "{s}/text-000000.tar"
weight = 0.10

[[data.eval.sources]]
name = "caption"
kind = "caption"
shards = "{s}/caption-000001.tar"

[[data.eval.sources]]
name = "text"
kind = "text"
shards = "{s}/text-000001.tar"

[optim]
lr = 3e-3

[schedule]
warmup_steps = 3

[train]
steps = {steps}

[eval]
every = 0
batches = 1

[checkpoint]
every = 0
keep_last = 2

[log]
every = 1
tensorboard = true
progress = "off"
{extra}
"#
    );
    let path = dir.join("run.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// [`tiny_run_file`] with two training shards per source, so that two data streams (or two
/// ranks) each read their own.
pub fn two_stream_run_file(dir: &Path, steps: u64, extra: &str) -> PathBuf {
    let file = tiny_run_file(dir, &dir.join("synth"), steps, extra);
    let mut text =
        std::fs::read_to_string(&file).unwrap().replace("shards_per_kind = 2", "shards_per_kind = 3");
    for kind in ["caption", "interleaved", "text"] {
        text = text
            .replace(&format!("{kind}-000001.tar"), &format!("{kind}-000002.tar"))
            .replace(&format!("{kind}-000000.tar"), &format!("{kind}-{{000000..000001}}.tar"));
    }
    std::fs::write(&file, text).unwrap();
    file
}

fn sources(file: &Path, sets: &[&str]) -> ConfigSources {
    sets.iter().fold(ConfigSources::new(file), |src, s| src.set(*s))
}

pub fn load(file: &Path, sets: &[&str]) -> LoadedConfig {
    sources(file, sets).load().unwrap()
}

/// The message of the config error `file` with `sets` must give.
pub fn load_err(file: &Path, sets: &[&str]) -> String {
    sources(file, sets).load().expect_err("a config error").to_string()
}

/// The body of a 2-rank test's worker: train the run the launching test names in
/// `MM1_TEST_RUN_FILE`, `MM1_TEST_RUN_DIR`, optional `MM1_TEST_STOP_AFTER` and `MM1_TEST_SETS`
/// (`;`-separated `--set`s).
pub fn train_from_env() {
    let file = std::env::var("MM1_TEST_RUN_FILE").unwrap();
    let run_dir = std::env::var("MM1_TEST_RUN_DIR").unwrap();
    let stop_after = std::env::var("MM1_TEST_STOP_AFTER").ok().and_then(|s| s.parse().ok());
    let sets = std::env::var("MM1_TEST_SETS").unwrap_or_default();
    let sets: Vec<&str> = sets.split(';').filter(|s| !s.is_empty()).collect();
    let opts =
        mm1_trainer::run::RunOptions { run_dir: Some(run_dir.into()), stop_after, ..Default::default() };
    mm1_trainer::run::train(&load(Path::new(&file), &sets), &opts).unwrap();
}

/// The tiny stack in memory: its config (synthetic shards generated under `dir`), the model
/// initialised on flex with autodiff from `seed`, and a loader at the start of the data.
pub fn tiny_in_memory(
    dir: &Path,
    seed: u64,
) -> (mm1_trainer::config::RunConfig, mm1_models::Mm1Model, mm1_data::Loader, burn::tensor::Device) {
    let file = tiny_run_file(dir, &dir.join("synth"), 4, "");
    let cfg = load(&file, &[]).config;
    mm1_trainer::run::ensure_synth(&cfg, |_| {}).unwrap();
    let device = burn::tensor::Device::flex().autodiff();
    device.seed(seed);
    let model = cfg.model.init(&device).unwrap();
    let loader = mm1_data::Loader::new(&cfg.data, cfg.pipeline_shape(), 0, 1).unwrap();
    (cfg, model, loader, device)
}

/// `(step, loss)` of every line of `metrics.jsonl`.
pub fn logged_losses(run_dir: &Path) -> Vec<(u64, f64)> {
    mm1_trainer::logging::read_metrics_jsonl(&run_dir.join("metrics.jsonl"))
        .unwrap()
        .iter()
        .map(|l| (l["step"].as_u64().unwrap(), l["loss"].as_f64().unwrap()))
        .collect()
}

/// Every tensor of the newest checkpoint's model, as raw bytes by name.
pub fn checkpoint_tensors(run_dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let device = burn::tensor::Device::flex();
    let (model, _) = mm1_trainer::generate::load_checkpoint(run_dir, &device).unwrap();
    model
        .collect(None, None, false)
        .into_iter()
        .map(|t| (t.name.clone(), t.to_bytes().unwrap().to_vec()))
        .collect()
}

/// `a` and `b` as one batch: `b`'s rows (and images) after `a`'s.
pub fn stacked(a: &mm1_data::Batch, b: &mm1_data::Batch) -> mm1_data::Batch {
    let mut both = a.clone();
    both.batch_size += b.batch_size;
    both.input_ids.extend(&b.input_ids);
    both.targets.extend(&b.targets);
    both.loss_mask.extend(&b.loss_mask);
    both.image_mask.extend(&b.image_mask);
    both.segment_ids.extend(&b.segment_ids);
    both.position_ids.extend(&b.position_ids);
    both.source_ids.extend(&b.source_ids);
    both.images.extend(&b.images);
    both.n_images += b.n_images;
    both
}

/// A float tensor's values, flattened.
pub fn values<const D: usize>(t: burn::tensor::Tensor<D>) -> Vec<f32> {
    t.into_data().try_to_vec::<f32>().unwrap()
}

/// The gradient of parameter `p` as a flat vector (`None` when it has none).
pub fn grad_of(grads: &burn::optim::GradientsParams, p: &mm1_trainer::optim::ParamInfo) -> Option<Vec<f32>> {
    match p.shape.len() {
        1 => grads.get::<1>(p.id).map(values),
        2 => grads.get::<2>(p.id).map(values),
        3 => grads.get::<3>(p.id).map(values),
        4 => grads.get::<4>(p.id).map(values),
        r => panic!("{}: rank {r}", p.path),
    }
}
