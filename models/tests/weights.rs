//! Weight import/export: export → import round trip gives the same outputs; sharded and
//! bf16 checkpoints load; shape mismatches name the key and both shapes; a dense
//! checkpoint upcycles into an MoE model; a larger vocabulary grows by the mean row; connector
//! weights load from an export or from bare paths.

mod common;

use burn::prelude::*;
use mm1_models::llm::LlmDecoder;
use mm1_models::presets;
use mm1_models::weights::{self, HostTensor, read_safetensors, write_safetensors};
use safetensors::Dtype;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("mm1-models-test-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/parity").join(name)
}

#[test]
fn export_then_import_reproduces_the_model() {
    let device = Device::flex();
    let cfg = presets::tiny_moe();
    let a = cfg.init(&device).unwrap();
    let b = cfg.init(&device).unwrap();
    let input = common::batch(&cfg, 2, 12, 1, &device);
    let dir = tmp("roundtrip");
    let n = a.export_safetensors(&dir.join("mm1.safetensors")).unwrap();
    let keys = read_safetensors(&dir.join("mm1.safetensors")).unwrap();
    assert_eq!(keys.len(), n);
    assert!(keys.contains_key("vision_model.encoder.layers.0.self_attn.q_proj.weight"));
    assert!(keys.contains_key("model.layers.1.mlp.experts.3.down_proj.weight"));
    let (b, report) = b.import_safetensors(&dir.join("mm1.safetensors")).unwrap();
    assert!(report.missing.is_empty() && report.unused.is_empty(), "{report}");
    let (ya, yb) = (a.forward(input.clone()).unwrap().logits, b.forward(input).unwrap().logits);
    assert!(common::max_abs_diff(ya, yb) == 0.0);
}

/// Split a checkpoint into two shards, the second stored as bf16, with an index file.
fn shard(src: &Path, dst: &Path) {
    let all = read_safetensors(src).unwrap();
    let (mut a, mut b) = (BTreeMap::new(), Vec::new());
    let mut weight_map = serde_json::Map::new();
    for (i, (k, t)) in all.into_iter().enumerate() {
        let file =
            if i % 2 == 0 { "model-00001-of-00002.safetensors" } else { "model-00002-of-00002.safetensors" };
        weight_map.insert(k.clone(), file.into());
        if i % 2 == 0 {
            a.insert(k, t);
        } else {
            let bf: Vec<u8> =
                t.data.iter().flat_map(|v| ((v.to_bits() >> 16) as u16).to_le_bytes()).collect();
            b.push((k, t.shape, bf));
        }
    }
    write_safetensors(&dst.join("model-00001-of-00002.safetensors"), &a).unwrap();
    let views: Vec<_> = b
        .iter()
        .map(|(k, s, d)| {
            (k.clone(), safetensors::tensor::TensorView::new(Dtype::BF16, s.clone(), d).unwrap())
        })
        .collect();
    safetensors::serialize_to_file(views, None, &dst.join("model-00002-of-00002.safetensors")).unwrap();
    let index = serde_json::json!({"metadata": {}, "weight_map": weight_map});
    std::fs::write(dst.join("model.safetensors.index.json"), index.to_string()).unwrap();
}

#[test]
fn sharded_bf16_checkpoint_loads_and_matches_f32() {
    let src = fixture("llama_gqa_untied");
    let dst = tmp("sharded");
    shard(&src.join("model.safetensors"), &dst);
    let f32s = read_safetensors(&src).unwrap();
    let mixed = read_safetensors(&dst).unwrap();
    assert_eq!(f32s.keys().collect::<Vec<_>>(), mixed.keys().collect::<Vec<_>>());
    for (k, t) in &f32s {
        let m = &mixed[k];
        let worst =
            t.data.iter().zip(&m.data).map(|(a, b)| (a - b).abs() / a.abs().max(1e-3)).fold(0.0, f32::max);
        assert!(worst < 1e-2, "{k}: bf16 relative error {worst}");
    }
    let device = Device::flex();
    let cfg = weights::llm_from_hf(&weights::read_config_json(&src).unwrap()).unwrap();
    let (_, report) = weights::load_llama(LlmDecoder::new(&cfg, &device), &dst).unwrap();
    assert!(report.missing.is_empty() && report.unused.is_empty(), "{report}");
}

#[test]
fn shape_mismatch_names_key_and_both_shapes() {
    let src = fixture("llama_gqa_untied");
    let device = Device::flex();
    let mut cfg = weights::llm_from_hf(&weights::read_config_json(&src).unwrap()).unwrap();
    cfg.ffn_dim = 40; // checkpoint has 48
    let e = weights::load_llama(LlmDecoder::new(&cfg, &device), &src).unwrap_err().to_string();
    assert!(e.contains("mlp.") && e.contains("48") && e.contains("40"), "{e}");
}

#[test]
fn dense_checkpoint_upcycles_into_moe_and_reports_router_missing() {
    let src = fixture("llama_gqa_untied");
    let device = Device::flex();
    let dense_cfg = weights::llm_from_hf(&weights::read_config_json(&src).unwrap()).unwrap();
    let mut moe_cfg = dense_cfg.clone();
    moe_cfg.moe = Some(mm1_models::MoeConfig {
        num_experts: 3,
        every: 2,
        capacity_factor: 0.0,
        upcycle: true,
        ..Default::default()
    });
    let (dense, _) = weights::load_llama(LlmDecoder::new(&dense_cfg, &device), &src).unwrap();
    let (moe, report) = weights::load_llama(LlmDecoder::new(&moe_cfg, &device), &src).unwrap();
    assert_eq!(report.missing, vec!["layers.1.mlp.Moe.router.weight".to_string()]);
    assert!(report.unused.is_empty(), "{report}");
    // Identical experts + renormalised gates = the dense FFN, whatever the router does.
    let tokens = Tensor::<2, Int>::from_data(TensorData::new((0..16).collect::<Vec<i64>>(), [2, 8]), &device);
    let pos = Tensor::<1, Int>::arange(0..8, &device).reshape([1, 8]).repeat_dim(0, 2);
    let seg = Tensor::<2, Int>::zeros([2, 8], &device);
    let run = |m: &LlmDecoder| m.forward(m.embed(tokens.clone()), pos.clone(), seg.clone(), None).logits;
    assert!(common::max_abs_diff(run(&dense), run(&moe)) < 1e-4);
}

#[test]
fn f16_conversion_is_exact_on_known_values() {
    for (bits, want) in [
        (0x3c00u16, 1.0f32),
        (0xc000, -2.0),
        (0x3555, 0.333_251_95),
        (0x0001, 5.960_464_5e-8),
        (0x7bff, 65504.0),
    ] {
        assert_eq!(weights::f16_to_f32(bits), want);
    }
    let _ = HostTensor { shape: vec![], data: vec![] };
}

#[test]
fn larger_vocab_grows_embedding_and_head_with_the_mean_row() {
    let src = fixture("llama_gqa_untied");
    let device = Device::flex();
    let mut cfg = weights::llm_from_hf(&weights::read_config_json(&src).unwrap()).unwrap();
    let v = cfg.vocab_size;
    cfg.vocab_size = v + 2;
    let (llm, report) = weights::load_llama(LlmDecoder::new(&cfg, &device), &src).unwrap();
    assert_eq!(report.grown_vocab, Some((v, v + 2)), "{report}");
    assert!(report.missing.is_empty() && report.unused.is_empty(), "{report}");
    let orig = read_safetensors(&src).unwrap();
    let emb = orig["model.embed_tokens.weight"].clone();
    let d = emb.shape[1];
    let got: Vec<f32> = llm.embed_tokens.weight.val().into_data().iter::<f32>().collect();
    assert_eq!(&got[..v * d], &emb.data[..]);
    for j in 0..d {
        let mean = ((0..v).map(|i| emb.data[i * d + j] as f64).sum::<f64>() / v as f64) as f32;
        assert_eq!((got[v * d + j], got[(v + 1) * d + j]), (mean, mean), "column {j}");
    }
}

#[test]
fn connector_loads_from_an_export_and_from_bare_paths() {
    let device = Device::flex();
    let cfg = presets::tiny();
    let a = cfg.init(&device).unwrap();
    let dir = tmp("connector");
    a.export_safetensors(&dir.join("all.safetensors")).unwrap();
    let all = read_safetensors(&dir.join("all.safetensors")).unwrap();
    let bare: BTreeMap<String, HostTensor> = all
        .iter()
        .filter_map(|(k, t)| Some((k.strip_prefix("connector.")?.to_string(), t.clone())))
        .collect();
    write_safetensors(&dir.join("bare.safetensors"), &bare).unwrap();
    for file in ["all.safetensors", "bare.safetensors"] {
        let b = cfg.init(&device).unwrap();
        let (c, report) = weights::load_connector(b.connector, &dir.join(file)).unwrap();
        assert!(report.missing.is_empty() && report.unused.is_empty(), "{file}: {report}");
        assert_eq!(report.loaded.len(), bare.len());
        let mut b = cfg.init(&device).unwrap();
        b.connector = c;
        let exported = b.export_tensors();
        for (k, t) in &bare {
            assert_eq!(&exported[&format!("connector.{k}")], t, "{file}: {k}");
        }
    }
}
