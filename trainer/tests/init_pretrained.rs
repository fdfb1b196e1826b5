//! `[model.init]` (issue #16, item 1), against checkpoints written by transformers'
//! `save_pretrained` (`scripts/make_init_fixtures.py`: a full CLIPModel in f32, a Llama in bf16
//! over three shards, and transformers' greedy decoding of one prompt):
//! - a run configured by `mm1-train init-config` starts from exactly those weights (its export
//!   equals the originals) and decodes greedily as transformers does;
//! - the staged pair `configs/staged/` end to end: stage 1 trains the connector alone, stage 2
//!   starts from stage 1's checkpoint exactly and trains everything;
//! - `init-config --tokenizer-out`: the LLM's tokenizer, with the image / end-of-chunk / pad
//!   tokens added, becomes the run's; the embedding and head grow by the mean row and greedy
//!   decoding is unchanged;
//! - shape and config.json mismatches name the key, the file and both values; a larger
//!   `vocab_size` grows the embedding and head with the mean row.

#[path = "train_support/mod.rs"]
mod support;

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use burn::tensor::Device;
use mm1_models::weights::{HostTensor, read_safetensors};
use mm1_trainer::generate::{GenerateOptions, generate_ids, load_checkpoint};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/init").join(name)
}

fn staged(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs/staged").join(name)
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("mm1-init-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Run `mm1-train ARGS` in `dir`; stdout and stderr on success, a panic with both otherwise.
fn mm1(dir: &Path, args: &[&str]) -> (String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_mm1-train")).args(args).current_dir(dir).output().unwrap();
    let (o, e) = (String::from_utf8_lossy(&out.stdout).into(), String::from_utf8_lossy(&out.stderr).into());
    assert!(out.status.success(), "mm1-train {args:?} failed:\n{o}\n{e}");
    (o, e)
}

/// A tiny run file plus `init.toml` as `mm1-train init-config` writes it for the fixtures.
fn setup(dir: &Path, steps: u64, extra: &str) -> (PathBuf, PathBuf) {
    let run = support::tiny_run_file(dir, &dir.join("synth"), steps, extra);
    let (clip, llama) = (fixture("clip"), fixture("llama"));
    let (toml, _) =
        mm1(dir, &["init-config", "--vision", clip.to_str().unwrap(), "--llm", llama.to_str().unwrap()]);
    let init = dir.join("init.toml");
    std::fs::write(&init, toml).unwrap();
    (run, init)
}

fn export(dir: &Path, run: &str) -> BTreeMap<String, HostTensor> {
    let out = dir.join(format!("{}.safetensors", run.replace('/', "-")));
    mm1(dir, &["export", "--checkpoint", run, "--out", out.to_str().unwrap()]);
    read_safetensors(&out).unwrap()
}

fn max_abs_diff(a: &HostTensor, b: &HostTensor) -> f32 {
    assert_eq!(a.shape, b.shape);
    a.data.iter().zip(&b.data).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

/// Every tensor of `originals` this model uses (the CLIP text tower and post-layernorm are not)
/// against the export; returns (tensors compared, largest difference).
fn compare(
    originals: &BTreeMap<String, HostTensor>,
    exported: &BTreeMap<String, HostTensor>,
) -> (usize, f32) {
    let mut worst = 0.0f32;
    let mut n = 0;
    for (k, t) in originals {
        if mm1_models::weights::keymap::ignorable(k) {
            continue;
        }
        let e = exported.get(k).unwrap_or_else(|| panic!("{k} is not in the export"));
        worst = worst.max(max_abs_diff(t, e));
        n += 1;
    }
    (n, worst)
}

const NO_UPDATE: &str = "\n[optim.lr_multipliers]\nvision = 0.0\nconnector = 0.0\nllm = 0.0\n";

#[test]
fn run_starts_from_the_pretrained_weights_and_decodes_as_transformers() {
    let dir = tmp("pretrained");
    // One step at learning rate 0: the checkpoint holds the step-0 weights.
    let (run, init) = setup(&dir, 1, NO_UPDATE);
    let (_, log) = mm1(
        &dir,
        &["--config", run.to_str().unwrap(), "--with", init.to_str().unwrap(), "--run-dir", "runs/a"]
            .into_iter()
            .chain(["--set", "schedule.warmup_steps=1"])
            .collect::<Vec<_>>(),
    );
    assert!(
        log.contains("[model.init] vision = ")
            && log.contains("loaded 37 tensors, 0 missing, 0 unused, 25 ignored"),
        "{log}"
    );
    assert!(
        log.contains("[model.init] llm = ") && log.contains("loaded 21 tensors, 0 missing, 0 unused"),
        "{log}"
    );
    assert!(!log.contains("is the run's"), "an explicit data.tokenizer wins: {log}");
    let exported = export(&dir, "runs/a");
    let (nv, dv) = compare(&read_safetensors(&fixture("clip")).unwrap(), &exported);
    let (nl, dl) = compare(&read_safetensors(&fixture("llama")).unwrap(), &exported);
    eprintln!("vision: {nv} tensors, max |diff| {dv}; llm (bf16 shards): {nl} tensors, max |diff| {dl}");
    assert_eq!((nv, nl), (37, 21));
    assert_eq!((dv, dl), (0.0, 0.0));

    // Text-only greedy decoding from the run's checkpoint = transformers'.
    let want: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fixture("greedy.json")).unwrap()).unwrap();
    let ids =
        |v: &serde_json::Value| v.as_array().unwrap().iter().map(|x| x.as_u64().unwrap() as u32).collect();
    let (prompt, greedy): (Vec<u32>, Vec<u32>) = (ids(&want["prompt"]), ids(&want["greedy"]));
    let device = Device::flex();
    let (model, _) = load_checkpoint(&dir.join("runs/a"), &device).unwrap();
    for kv_cache in [true, false] {
        let opts = GenerateOptions { max_new_tokens: greedy.len(), kv_cache, ..Default::default() };
        let got = generate_ids(&model, &prompt, &vec![false; prompt.len()], None, &opts, &device).unwrap();
        assert_eq!(got, greedy, "kv_cache {kv_cache}");
    }
    eprintln!("greedy ids equal transformers': {greedy:?}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn staged_pair_stage2_starts_from_stage1_and_trains_everything() {
    let dir = tmp("staged");
    let (run, init) = setup(&dir, 3, "");
    let (run, init) = (run.to_str().unwrap(), init.to_str().unwrap());
    let (s1, s2) = (staged("stage1-connector.toml"), staged("stage2-full.toml"));
    let (s1, s2) = (s1.to_str().unwrap(), s2.to_str().unwrap());
    // Stage 1: the towers stay exactly the pretrained ones, the connector trains.
    mm1(&dir, &["--config", run, "--with", init, "--with", s1, "--run-dir", "runs/stage1"]);
    let one = export(&dir, "runs/stage1");
    let (_, dv) = compare(&read_safetensors(&fixture("clip")).unwrap(), &one);
    let (_, dl) = compare(&read_safetensors(&fixture("llama")).unwrap(), &one);
    assert_eq!((dv, dl), (0.0, 0.0), "frozen towers moved in stage 1");

    // Stage 2 at learning rate 0: starts from stage 1's checkpoint exactly (connector included).
    let zero =
        ["optim.lr_multipliers.vision=0", "optim.lr_multipliers.connector=0", "optim.lr_multipliers.llm=0"];
    let mut args = vec!["--config", run, "--with", init, "--with", s2, "--run-dir", "runs/stage2-lr0"];
    args.extend(["--set", "train.steps=1", "--set", "schedule.warmup_steps=1"]);
    zero.iter().for_each(|z| args.extend(["--set", z]));
    let (_, log) = mm1(&dir, &args);
    assert!(log.contains("[model.init] checkpoint = runs/stage1: loaded"), "{log}");
    assert!(log.contains("not read, checkpoint = runs/stage1 holds it"), "{log}");
    let two = export(&dir, "runs/stage2-lr0");
    let (n, d) = compare(&one, &two);
    eprintln!("stage 2 at step 0 vs stage 1's end: {n} tensors, max |diff| {d}");
    assert_eq!((n, d), (one.len(), 0.0));

    // Stage 2 as shipped: every component moves.
    mm1(&dir, &["--config", run, "--with", init, "--with", s2, "--run-dir", "runs/stage2"]);
    let two = export(&dir, "runs/stage2");
    for key in [
        "vision_model.encoder.layers.0.mlp.fc1.weight",
        "connector.AvgPool.proj.weight",
        "model.layers.0.mlp.up_proj.weight",
    ] {
        let (a, b) = (&one[key], &two[key]);
        assert!(max_abs_diff(a, b) > 0.0, "{key} did not train in stage 2");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// `o`'s rows then `rows - v` copies of their mean (f64 sum, as the import computes it).
fn with_mean_rows(o: &HostTensor, rows: usize) -> Vec<f32> {
    let [v, d] = o.shape[..] else { panic!("{:?}", o.shape) };
    let mean: Vec<f32> =
        (0..d).map(|j| ((0..v).map(|i| o.data[i * d + j] as f64).sum::<f64>() / v as f64) as f32).collect();
    let mut out = o.data.clone();
    (v..rows).for_each(|_| out.extend_from_slice(&mean));
    out
}

#[test]
fn llm_tokenizer_becomes_the_run_tokenizer_with_the_special_tokens_added() {
    let dir = tmp("tokenizer");
    let run = support::tiny_run_file(&dir, &dir.join("synth"), 1, NO_UPDATE);
    let (clip, llama) = (fixture("clip"), fixture("llama"));
    let (clip, llama) = (clip.to_str().unwrap(), llama.to_str().unwrap());
    let args = ["init-config", "--vision", clip, "--llm", llama, "--tokenizer-out", "tokenizer.json"];
    let (toml, said) = mm1(&dir, &args);
    for want in [
        "added <image> as id 320",
        "added <|endofchunk|> as id 321",
        "added <pad> as id 322",
        "model.llm.vocab_size 320 -> 323",
    ] {
        assert!(said.contains(want), "{want}: {said}");
    }
    assert!(toml.contains("tokenizer = \"tokenizer.json\"") && toml.contains("vocab_size = 323"), "{toml}");
    let init = dir.join("init.toml");
    std::fs::write(&init, toml).unwrap();
    let run = run.to_str().unwrap();
    let sets = ["--set", "schedule.warmup_steps=1"];
    let (_, log) = mm1(
        &dir,
        &[&["--config", run, "--with", init.to_str().unwrap(), "--run-dir", "runs/t"][..], &sets].concat(),
    );
    assert!(log.contains("vocabulary grown from 320 to 323 rows (new rows = mean of the old ones)"), "{log}");

    let exported = export(&dir, "runs/t");
    let orig = read_safetensors(&fixture("llama")).unwrap();
    for (k, o) in &orig {
        let want = if k.contains("embed_tokens") || k.starts_with("lm_head") {
            with_mean_rows(o, 323)
        } else {
            o.data.clone()
        };
        assert_eq!(exported[k].data, want, "{k}");
    }
    // The mean row's logit is the mean of the others, never the largest: decoding is unchanged.
    let want: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fixture("greedy.json")).unwrap()).unwrap();
    let ids = |v: &serde_json::Value| -> Vec<u32> {
        v.as_array().unwrap().iter().map(|x| x.as_u64().unwrap() as u32).collect()
    };
    let device = Device::flex();
    let (model, cfg) = load_checkpoint(&dir.join("runs/t"), &device).unwrap();
    let tok = mm1_data::TextTokenizer::load(&mm1_data::DataConfig {
        tokenizer: dir.join(&cfg.data.tokenizer),
        ..cfg.data.clone()
    })
    .unwrap();
    assert_eq!((tok.image_id, tok.end_of_chunk_id, tok.pad_id, tok.vocab_size()), (320, 321, 322, 323));
    let opts = GenerateOptions { max_new_tokens: 12, ..Default::default() };
    let prompt = ids(&want["prompt"]);
    let got = generate_ids(&model, &prompt, &vec![false; prompt.len()], None, &opts, &device).unwrap();
    assert_eq!(got, ids(&want["greedy"]));
    let _ = std::fs::remove_dir_all(&dir);
}

/// A model config for the fixtures (as init-config writes it), with `edit` applied.
fn fixture_model(edit: impl Fn(&mut mm1_models::Mm1Config)) -> mm1_models::Mm1Config {
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let dir = tmp(&format!("cfg{}", N.fetch_add(1, std::sync::atomic::Ordering::Relaxed)));
    let (_, init) = setup(&dir, 1, "");
    let text = std::fs::read_to_string(init).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    let mut cfg: mm1_trainer::config::RunConfig = toml::from_str(&text).unwrap();
    cfg.model.connector = mm1_models::presets::tiny().connector;
    edit(&mut cfg.model);
    cfg.model
}

fn apply(cfg: &mm1_models::Mm1Config) -> (Result<mm1_models::Mm1Model, String>, Vec<String>) {
    let said = RefCell::new(Vec::new());
    let model = cfg.init(&Device::flex()).unwrap();
    let r = mm1_trainer::init::apply(model, cfg, &|m| said.borrow_mut().push(m.to_string()));
    (r.map_err(|e| e.to_string()), said.into_inner())
}

#[test]
fn shape_mismatch_names_key_file_and_both_shapes() {
    let cfg = fixture_model(|m| {
        m.llm.ffn_dim = 48; // the checkpoint has 64
        m.init.vision = None;
    });
    let e = apply(&cfg).0.err().unwrap();
    eprintln!("{e}");
    assert!(e.contains("[model.init] llm = ") && e.contains("fixtures/init/llama"), "{e}");
    assert!(e.contains("mlp.") && e.contains("64") && e.contains("48"), "{e}");
}

#[test]
fn config_json_mismatch_names_the_key_and_both_values() {
    let cfg = fixture_model(|m| m.llm.rope_theta = 500000.0);
    let e = apply(&cfg).0.err().unwrap();
    assert!(e.contains("model.llm.rope_theta") && e.contains("10000.0") && e.contains("500000.0"), "{e}");
    let cfg = fixture_model(|m| m.vision.activation = mm1_models::Activation::Gelu);
    let e = apply(&cfg).0.err().unwrap();
    assert!(e.contains("model.vision.activation") && e.contains("QuickGelu") && e.contains("Gelu"), "{e}");
}

#[test]
fn larger_vocab_grows_embedding_and_head_with_the_mean_row() {
    let cfg = fixture_model(|m| m.llm.vocab_size = 323);
    let (model, said) = apply(&cfg);
    let said = said.join("\n");
    assert!(said.contains("vocabulary grown from 320 to 323 rows"), "{said}");
    let got = model.unwrap().export_tensors();
    let orig = read_safetensors(&fixture("llama")).unwrap();
    for key in ["model.embed_tokens.weight", "lm_head.weight"] {
        let (o, g) = (&orig[key], &got[key]);
        let d = o.shape[1];
        assert_eq!(g.shape, vec![323, d]);
        assert_eq!(&g.data[..320 * d], &o.data[..], "{key}: the checkpoint's rows changed");
        let mean: Vec<f32> = (0..d)
            .map(|j| ((0..320).map(|i| o.data[i * d + j] as f64).sum::<f64>() / 320.0) as f32)
            .collect();
        for r in 320..323 {
            assert_eq!(&g.data[r * d..(r + 1) * d], &mean[..], "{key} row {r}");
        }
    }
}

#[test]
fn without_data_tokenizer_the_run_takes_the_llm_tokenizer_by_itself() {
    let dir = tmp("auto-tokenizer");
    let (run, init) = setup(&dir, 1, NO_UPDATE);
    // The run file without its `data.tokenizer` line: nothing names a tokenizer.
    let text = std::fs::read_to_string(&run).unwrap();
    let text: String =
        text.lines().filter(|l| !l.starts_with("tokenizer =")).map(|l| format!("{l}\n")).collect();
    std::fs::write(&run, text).unwrap();
    let sets = ["--set", "schedule.warmup_steps=1"];
    let args =
        ["--config", run.to_str().unwrap(), "--with", init.to_str().unwrap(), "--run-dir", "runs/auto"];
    let (_, log) = mm1(&dir, &[&args[..], &sets].concat());
    for want in [
        "its tokenizer.json is the run's (runs/auto/tokenizer.json; added: <image> = 320, <|endofchunk|> = 321, <pad> = 322",
        "model.llm.vocab_size 320 -> 323",
        "vocabulary grown from 320 to 323 rows (new rows = mean of the old ones)",
    ] {
        assert!(log.contains(want), "{want}: {log}");
    }
    let exported = export(&dir, "runs/auto");
    for (k, o) in &read_safetensors(&fixture("llama")).unwrap() {
        let grown = k.contains("embed_tokens") || k.starts_with("lm_head");
        assert_eq!(exported[k].data, if grown { with_mean_rows(o, 323) } else { o.data.clone() }, "{k}");
    }
    let (_, cfg) = load_checkpoint(&dir.join("runs/auto"), &Device::flex()).unwrap();
    assert_eq!(
        (cfg.data.tokenizer.as_path(), cfg.model.llm.vocab_size),
        (Path::new("runs/auto/tokenizer.json"), 323)
    );
    let tok = mm1_data::TextTokenizer::load(&mm1_data::DataConfig {
        tokenizer: dir.join(&cfg.data.tokenizer),
        ..cfg.data.clone()
    })
    .unwrap();
    assert_eq!((tok.image_id, tok.end_of_chunk_id, tok.pad_id, tok.vocab_size()), (320, 321, 322, 323));
    let _ = std::fs::remove_dir_all(&dir);
}
