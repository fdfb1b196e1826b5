//! Decoding with the KV cache equals recomputing the whole sequence every token (greedy and
//! sampled), and `generate` / `export` work from a real checkpoint.

mod train_support;

use burn::tensor::{Device, Distribution, Tensor};
use mm1_trainer::generate::{GenerateOptions, export_checkpoint, generate_from_checkpoint, generate_ids};
use mm1_trainer::run::{RunOptions, train};
use train_support::*;

#[test]
fn kv_cache_decoding_equals_full_recompute() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tiny_run_file(tmp.path(), &tmp.path().join("synth"), 3, "");
    let cfg = load(&file, &[]).config;
    let device = Device::flex();
    device.seed(5);
    let model = cfg.model.init(&device).unwrap();
    let m = cfg.model.num_image_tokens();
    // one image, then 5 text tokens
    let mut prompt = vec![0u32; m];
    prompt.extend([17, 42, 99, 7, 250]);
    let mut mask = vec![true; m];
    mask.extend([false; 5]);
    let images = Tensor::<4>::random([1, 3, 16, 16], Distribution::Normal(0.0, 1.0), &device);

    for opts in [
        GenerateOptions { max_new_tokens: 8, ..Default::default() },
        GenerateOptions { max_new_tokens: 8, temperature: 1.0, top_k: 20, seed: 3, ..Default::default() },
    ] {
        let cached = generate_ids(&model, &prompt, &mask, Some(images.clone()), &opts, &device).unwrap();
        let full = GenerateOptions { kv_cache: false, ..opts.clone() };
        let recomputed = generate_ids(&model, &prompt, &mask, Some(images.clone()), &full, &device).unwrap();
        assert_eq!(cached.len(), 8);
        assert_eq!(cached, recomputed, "{opts:?}");
        assert!(cached.iter().all(|&t| (t as usize) < cfg.model.llm.vocab_size));
    }
    // A prompt whose mask length differs is an error, not a panic.
    let err = generate_ids(&model, &prompt, &mask[1..], None, &GenerateOptions::default(), &device);
    assert!(err.is_err());
}

#[test]
fn generate_and_export_from_a_checkpoint() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tiny_run_file(tmp.path(), &tmp.path().join("synth"), 3, "");
    let run_dir = tmp.path().join("run");
    train(&load(&file, &[]), &RunOptions { run_dir: Some(run_dir.clone()), ..Default::default() }).unwrap();

    let opts = GenerateOptions { max_new_tokens: 5, ..Default::default() };
    let a = generate_from_checkpoint(&run_dir, "a red circle", &[], &opts).unwrap();
    let b = generate_from_checkpoint(&run_dir.join("checkpoints/step-00000003"), "a red circle", &[], &opts)
        .unwrap();
    assert_eq!(a, b, "run folder resolves to its newest checkpoint");

    let out = tmp.path().join("model.safetensors");
    let n = export_checkpoint(&run_dir, &out).unwrap();
    assert!(n > 10, "{n} tensors");
    let bytes = std::fs::read(&out).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    assert_eq!(st.names().len(), n);
    assert!(st.names().iter().any(|k| k.starts_with("model.layers.0.")), "HF Llama names");
}
