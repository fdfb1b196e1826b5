//! Ours vs HF `transformers`: every case folder under `tests/fixtures/parity/` (and under
//! `$MM1_EXTRA_PARITY_DIR` if set) is loaded through the HF import path and run; every
//! output element must be within the case's `atol`. Fixtures: `scripts/make_parity_fixtures.py`.
//! Kinds: `clip_vision`, `llama` (transformers) and `c_abstractor` (Honeybee's maths in PyTorch).

use burn::prelude::*;
use mm1_models::connector::CAbstractor;
use mm1_models::llm::LlmDecoder;
use mm1_models::vit::VisionTransformer;
use mm1_models::weights::{
    self, HostTensor, llm_from_hf, read_config_json, read_safetensors, vision_from_hf,
};
use mm1_models::{CAbstractorConfig, Size2, VisionConfig, presets};
use std::path::{Path, PathBuf};

fn case_dirs() -> Vec<PathBuf> {
    let mut roots = vec![Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/parity")];
    if let Ok(extra) = std::env::var("MM1_EXTRA_PARITY_DIR") {
        roots.push(PathBuf::from(extra));
    }
    let mut dirs = Vec::new();
    for root in roots {
        let entries = std::fs::read_dir(&root).unwrap_or_else(|e| panic!("{}: {e}", root.display()));
        dirs.extend(
            entries.filter_map(|e| e.ok()).map(|e| e.path()).filter(|p| p.join("case.json").is_file()),
        );
    }
    dirs.sort();
    dirs
}

fn tensor<const D: usize>(t: &HostTensor, device: &Device) -> Tensor<D> {
    Tensor::from_data(TensorData::new(t.data.clone(), t.shape.clone()), device)
}

/// Largest absolute difference; panics naming the case if above `atol`.
fn compare(case: &Path, ours: Tensor<3>, expected: &HostTensor, atol: f64) {
    assert_eq!(ours.dims().to_vec(), expected.shape, "{}: output shape", case.display());
    let got = ours.into_data().convert::<f32>().try_into_vec::<f32>().unwrap();
    let (i, diff) = got
        .iter()
        .zip(&expected.data)
        .map(|(a, b)| (a - b).abs() as f64)
        .enumerate()
        .fold((0, 0.0), |m, (i, d)| if d > m.1 { (i, d) } else { m });
    println!("{}: max |diff| = {diff:.2e} at {i} (atol {atol:.0e})", case.display());
    assert!(diff <= atol, "{}: element {i} differs by {diff:.3e} > atol {atol:.1e}", case.display());
}

fn run_clip(
    case: &Path,
    spec: &serde_json::Value,
    io: &std::collections::BTreeMap<String, HostTensor>,
    device: &Device,
) -> Tensor<3> {
    let px = &io["pixel_values"];
    let hf = vision_from_hf(&read_config_json(case).unwrap()).unwrap();
    let (h, w) = (px.shape[2], px.shape[3]);
    let interpolate = spec["interpolate_pos_encoding"].as_bool().unwrap_or(false);
    assert!(
        interpolate || hf.image_size == Size2 { h, w },
        "{}: input {h}x{w} needs interpolate_pos_encoding",
        case.display()
    );
    let cfg = VisionConfig { image_size: Size2 { h, w }, pretrained_image_size: Some(hf.image_size), ..hf };
    cfg.validate().unwrap();
    let (vit, report) = weights::load_clip_vision(VisionTransformer::new(&cfg, device), case).unwrap();
    assert!(report.missing.is_empty() && report.unused.is_empty(), "{}: {report}", case.display());
    vit.forward_hidden(tensor(px, device))
}

/// Honeybee C-Abstractor written out in PyTorch (weights under our own parameter paths).
fn run_c_abstractor(
    case: &Path,
    spec: &serde_json::Value,
    io: &std::collections::BTreeMap<String, HostTensor>,
    device: &Device,
) -> Tensor<3> {
    let n =
        |k: &str| spec[k].as_u64().unwrap_or_else(|| panic!("{}: case.json {k}", case.display())) as usize;
    let grid = [spec["grid"][0].as_u64().unwrap() as usize, spec["grid"][1].as_u64().unwrap() as usize];
    let patch = 8;
    let vision = VisionConfig {
        image_size: Size2 { h: grid[0] * patch, w: grid[1] * patch },
        patch_size: patch,
        width: n("vision_width"),
        ..presets::tiny().vision
    };
    let cfg = CAbstractorConfig {
        num_tokens: n("num_tokens"),
        hidden: n("hidden"),
        depth: n("depth"),
        mlp_depth: 2,
        pos_emb: true,
    };
    let conn = CAbstractor::new(&cfg, &vision, n("llm_width"), device);
    let tensors = read_safetensors(&case.join("model.safetensors")).unwrap();
    let (conn, report) = weights::load_into(conn, &tensors, &[], "").unwrap();
    assert!(report.missing.is_empty() && report.unused.is_empty(), "{}: {report}", case.display());
    conn.forward(tensor(&io["features"], device), grid)
}

fn run_llama(case: &Path, io: &std::collections::BTreeMap<String, HostTensor>, device: &Device) -> Tensor<3> {
    let cfg = llm_from_hf(&read_config_json(case).unwrap()).unwrap();
    cfg.validate().unwrap();
    let (llm, report) = weights::load_llama(LlmDecoder::new(&cfg, device), case).unwrap();
    assert!(report.missing.is_empty() && report.unused.is_empty(), "{}: {report}", case.display());
    let ids = &io["input_ids"];
    let (b, t) = (ids.shape[0], ids.shape[1]);
    let ids: Vec<i64> = ids.data.iter().map(|&v| v as i64).collect();
    let tokens = Tensor::<2, Int>::from_data(TensorData::new(ids, [b, t]), device);
    let positions = Tensor::<1, Int>::arange(0..t as i64, device).reshape([1, t]).repeat_dim(0, b);
    let segments = Tensor::<2, Int>::zeros([b, t], device);
    llm.forward(llm.embed(tokens), positions, segments, None).logits
}

#[test]
fn parity_with_transformers() {
    let device = Device::flex();
    let cases = case_dirs();
    assert!(cases.len() >= 4, "expected the committed parity cases, found {}", cases.len());
    for case in cases {
        let spec: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(case.join("case.json")).unwrap()).unwrap();
        let atol = spec["atol"].as_f64().expect("case.json: atol");
        let io = read_safetensors(&case.join("io.safetensors")).unwrap();
        match spec["kind"].as_str() {
            Some("clip_vision") => {
                compare(&case, run_clip(&case, &spec, &io, &device), &io["last_hidden_state"], atol)
            }
            Some("llama") => compare(&case, run_llama(&case, &io, &device), &io["logits"], atol),
            Some("c_abstractor") => {
                compare(&case, run_c_abstractor(&case, &spec, &io, &device), &io["tokens"], atol)
            }
            other => panic!("{}: unknown kind {other:?}", case.display()),
        }
    }
}
