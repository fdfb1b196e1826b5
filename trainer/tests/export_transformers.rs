//! `mm1-train export --format hf` against transformers (issue #16, item 1): a run started from
//! the tiny `save_pretrained` checkpoints of `init_pretrained.rs` trains 3 steps, is exported,
//! and `scripts/make_export_fixture.py` loaded that export with `CLIPVisionModel` /
//! `LlamaForCausalLM.from_pretrained` and wrote what transformers computes from it
//! (`tests/fixtures/export/transformers.json`): the vision tower's last hidden state on fixed
//! pixels, the last position's logits of a prompt, and greedy decoding.
//!
//! The fixture names the SHA-256 of both exported weight files, so the test first checks that
//! this run exports exactly the bytes transformers read (the training is deterministic; a change
//! of the training arithmetic changes them, like the golden losses). Then this crate's numbers,
//! computed from the run's checkpoint, must equal transformers' from the export. To regenerate:
//! `MM1_EXPORT_KEEP=/tmp/mm1-export cargo test -p mm1-trainer --test export_transformers` (it
//! fails on the hash and leaves the export), then
//! `/work/venv/bin/python scripts/make_export_fixture.py /tmp/mm1-export/hf`.

#[path = "train_support/mod.rs"]
mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use burn::tensor::{Device, Int, Tensor, TensorData};
use mm1_trainer::generate::{GenerateOptions, generate_ids, load_checkpoint};
use sha2::{Digest, Sha256};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name)
}

/// Run `mm1-train ARGS` in `dir`; stderr on success, a panic with both streams otherwise.
fn mm1(dir: &Path, args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_mm1-train")).args(args).current_dir(dir).output().unwrap();
    let (o, e) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "mm1-train {args:?} failed:\n{o}\n{e}");
    if args[0] == "init-config" { o.into_owned() } else { e.into_owned() }
}

fn sha256(path: &Path) -> String {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

fn floats(v: &serde_json::Value) -> Vec<f32> {
    v.as_array().unwrap().iter().map(|x| x.as_f64().unwrap() as f32).collect()
}

fn ids(v: &serde_json::Value) -> Vec<u32> {
    v.as_array().unwrap().iter().map(|x| x.as_u64().unwrap() as u32).collect()
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

/// The fixture's pixels, as the Python script makes them: `[1, 3, s, s]`, value of flat index
/// `i` = `((i * 37) % 101) / 50 - 1`.
fn pixels(size: usize, device: &Device) -> Tensor<4> {
    let v: Vec<f32> = (0..3 * size * size).map(|i| ((i * 37) % 101) as f32 / 50.0 - 1.0).collect();
    Tensor::from_data(TensorData::new(v, [1, 3, size, size]), device)
}

#[test]
fn hf_export_loads_into_transformers_and_computes_the_same() {
    let dir = match std::env::var_os("MM1_EXPORT_KEEP") {
        Some(d) => PathBuf::from(d),
        None => std::env::temp_dir().join(format!("mm1-export-{}", std::process::id())),
    };
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let run = support::tiny_run_file(&dir, &dir.join("synth"), 3, "");
    let (clip, llama) = (fixture("init/clip"), fixture("init/llama"));
    let args = ["init-config", "--vision", clip.to_str().unwrap(), "--llm", llama.to_str().unwrap()];
    let init = dir.join("init.toml");
    std::fs::write(&init, mm1(&dir, &[&args[..], &["--tokenizer-out", "tokenizer.json"]].concat())).unwrap();
    let sets = ["--set", "schedule.warmup_steps=1"];
    let train = ["--config", run.to_str().unwrap(), "--with", init.to_str().unwrap(), "--run-dir", "runs/a"];
    mm1(&dir, &[&train[..], &sets].concat());
    let said = mm1(&dir, &["export", "--checkpoint", "runs/a", "--out", "hf", "--format", "hf"]);
    assert!(said.contains("copied tokenizer.json to hf/llm/tokenizer.json"), "{said}");

    // 1. The export is the one transformers read.
    let want: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fixture("export/transformers.json")).unwrap()).unwrap();
    let hf = dir.join("hf");
    for part in ["vision", "llm"] {
        let got = sha256(&hf.join(part).join("model.safetensors"));
        assert_eq!(
            got,
            want[part]["sha256"].as_str().unwrap(),
            "{part}/model.safetensors differs from the export transformers read: the training's \
             arithmetic changed; regenerate the fixture (see this file's docs)"
        );
    }

    // 2. mm1's numbers from the run's checkpoint equal transformers' from the export.
    let device = Device::flex();
    let (model, cfg) = load_checkpoint(&dir.join("runs/a"), &device).unwrap();
    let size = cfg.model.vision.image_size.h;
    let hidden = model.vision.forward_hidden(pixels(size, &device)); // [1, 1 + p, d]
    let hidden = hidden.into_data().try_to_vec::<f32>().unwrap();
    let vision_diff = max_abs_diff(&hidden, &floats(&want["vision"]["last_hidden_state"]));

    let prompt = ids(&want["llm"]["prompt"]);
    let tokens: Tensor<2, Int> = Tensor::from_data(
        TensorData::new(prompt.iter().map(|&t| t as i64).collect(), [1, prompt.len()]),
        &device,
    );
    let t = prompt.len();
    let positions: Tensor<2, Int> = Tensor::<1, Int>::arange(0..t as i64, &device).reshape([1, t]);
    let segments: Tensor<2, Int> = Tensor::zeros([1, t], &device);
    let x = model.llm.embed(tokens); // [1, t, d]
    let logits = model.llm.forward(x, positions, segments, None).logits; // [1, t, vocab]
    let v = logits.dims()[2];
    let last = logits.slice([0..1, t - 1..t, 0..v]).into_data().try_to_vec::<f32>().unwrap();
    let logit_diff = max_abs_diff(&last, &floats(&want["llm"]["last_logits"]));
    eprintln!(
        "vs transformers: vision max |diff| {vision_diff:.2e}, last logits max |diff| {logit_diff:.2e}"
    );
    assert!(vision_diff < 1e-4 && logit_diff < 1e-4, "vision {vision_diff}, logits {logit_diff}");

    let greedy = ids(&want["llm"]["greedy"]);
    let opts = GenerateOptions { max_new_tokens: greedy.len(), ..Default::default() };
    let got = generate_ids(&model, &prompt, &vec![false; prompt.len()], None, &opts, &device).unwrap();
    assert_eq!(got, greedy);

    // 3. The exported config.json reads back as the run's model sections.
    let read = |p: &str| mm1_models::weights::read_config_json(&hf.join(p)).unwrap();
    assert_eq!(mm1_models::weights::llm_from_hf(&read("llm")).unwrap(), cfg.model.llm);
    let vision = mm1_models::weights::vision_from_hf(&read("vision")).unwrap();
    assert_eq!((vision.width, vision.layers, vision.image_size), (32, 2, cfg.model.vision.image_size));
    let written = std::fs::read_to_string(hf.join("mm1-config.toml")).unwrap();
    assert_eq!(toml::from_str::<mm1_trainer::config::RunConfig>(&written).unwrap(), cfg, "mm1-config.toml");
    if std::env::var_os("MM1_EXPORT_KEEP").is_none() {
        let _ = std::fs::remove_dir_all(&dir);
    }
}
