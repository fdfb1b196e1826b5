//! Two paths that must agree: a packed row of two documents vs each document alone;
//! incremental (KV-cached) decoding vs one full forward; plus input validation.

mod common;

use burn::prelude::*;
use mm1_models::{Mm1Input, presets};

fn ints(v: Vec<i64>, b: usize, t: usize, device: &Device) -> Tensor<2, Int> {
    Tensor::from_data(TensorData::new(v, [b, t]), device)
}

fn text_input(ids: Vec<i64>, seg: Vec<i64>, pos: Vec<i64>, device: &Device) -> Mm1Input {
    let t = ids.len();
    Mm1Input {
        tokens: ints(ids, 1, t, device),
        image_mask: Tensor::<2, Bool>::from_data(TensorData::new(vec![false; t], [1, t]), device),
        segment_ids: ints(seg, 1, t, device),
        position_ids: ints(pos, 1, t, device),
        images: None,
    }
}

#[test]
fn packed_documents_do_not_see_each_other() {
    let device = Device::flex();
    // Unlimited expert capacity: with a capacity, which tokens are dropped depends on the
    // other tokens in the batch (GShard), so packing could legitimately change MoE outputs.
    let mut cfg = presets::tiny_moe();
    cfg.llm.moe.as_mut().unwrap().capacity_factor = 0.0;
    let model = cfg.init(&device).unwrap();
    let (a, b): (Vec<i64>, Vec<i64>) = ((1..6).collect(), (20..24).collect());
    let alone = |doc: &Vec<i64>| {
        let n = doc.len();
        let input = text_input(doc.clone(), vec![0; n], (0..n as i64).collect(), &device);
        model.forward(input).unwrap().logits
    };
    let packed = text_input(
        [a.clone(), b.clone()].concat(),
        [vec![1; 5], vec![2; 4]].concat(),
        (0..5).chain(0..4).collect(),
        &device,
    );
    let logits = model.forward(packed).unwrap().logits; // [1, 9, v]
    let v = logits.dims()[2];
    let first = logits.clone().slice([0..1, 0..5, 0..v]);
    let second = logits.slice([0..1, 5..9, 0..v]);
    assert!(common::max_abs_diff(first, alone(&a)) < 1e-5);
    assert!(common::max_abs_diff(second, alone(&b)) < 1e-5);
}

#[test]
fn kv_cached_decoding_matches_full_forward() {
    let device = Device::flex();
    let cfg = presets::tiny();
    let model = cfg.init(&device).unwrap();
    let (b, t) = (2, 12);
    let full_in = common::batch(&cfg, b, t, 1, &device);
    let full = model.forward(full_in.clone()).unwrap().logits; // [b, t, v]
    let v = full.dims()[2];
    // Prompt (with the image) first, then one token at a time.
    let cut = |x: Tensor<2, Int>, r: std::ops::Range<usize>| x.slice([0..b, r]);
    let prompt = 8;
    let chunk = |r: std::ops::Range<usize>, images| Mm1Input {
        tokens: cut(full_in.tokens.clone(), r.clone()),
        image_mask: full_in.image_mask.clone().slice([0..b, r.clone()]),
        segment_ids: cut(full_in.segment_ids.clone(), r.clone()),
        position_ids: cut(full_in.position_ids.clone(), r),
        images,
    };
    let (out, mut cache) = model.forward_cached(chunk(0..prompt, full_in.images.clone()), None).unwrap();
    let mut pieces = vec![out.logits];
    for i in prompt..t {
        let (out, next) = model.forward_cached(chunk(i..i + 1, None), Some(cache)).unwrap();
        pieces.push(out.logits);
        cache = next;
    }
    assert_eq!(cache.len(), t);
    let stepped = Tensor::cat(pieces, 1);
    assert_eq!(stepped.dims(), [b, t, v]);
    assert!(common::max_abs_diff(stepped, full) < 1e-4);
}

#[test]
fn image_tokens_land_at_the_placeholders() {
    // Moving the placeholders changes the logits there; the text before them is untouched.
    let device = Device::flex();
    let cfg = presets::tiny();
    let model = cfg.init(&device).unwrap();
    let input = common::batch(&cfg, 1, 10, 1, &device); // placeholders at 1..5
    let no_image = Mm1Input {
        image_mask: Tensor::<2, Bool>::from_data(TensorData::new(vec![false; 10], [1, 10]), &device),
        images: None,
        ..input.clone()
    };
    let with = model.forward(input.clone()).unwrap().logits;
    let without = model.forward(no_image).unwrap().logits;
    let v = with.dims()[2];
    let at = |x: Tensor<3>, r: std::ops::Range<usize>| x.slice([0..1, r, 0..v]);
    assert!(common::max_abs_diff(at(with.clone(), 0..1), at(without.clone(), 0..1)) < 1e-6);
    assert!(common::max_abs_diff(at(with, 1..5), at(without, 1..5)) > 1e-3);
    // The scattered embeddings equal the connector output row for row.
    let emb = model.embed(&input).unwrap(); // [1, 10, d]
    let d = emb.dims()[2];
    let img = model.encode_images(input.images.clone().unwrap()); // [1, 4, d]
    assert!(common::max_abs_diff(emb.slice([0..1, 1..5, 0..d]), img) < 1e-6);
}

#[test]
fn placeholder_mismatch_names_both_counts() {
    let device = Device::flex();
    let cfg = presets::tiny();
    let model = cfg.init(&device).unwrap();
    let mut input = common::batch(&cfg, 2, 10, 1, &device); // 2 images x 4 tokens = 8
    let mut mask = vec![false; 20];
    mask[1..8].iter_mut().for_each(|m| *m = true); // 7 placeholders
    input.image_mask = Tensor::from_data(TensorData::new(mask, [2, 10]), &device);
    let e = model.forward(input).unwrap_err().to_string();
    assert!(e.contains("(7)") && e.contains("(8 ="), "{e}");
}

#[test]
fn too_long_sequences_are_refused_with_both_lengths() {
    let device = Device::flex();
    let mut cfg = presets::tiny();
    cfg.llm.max_seq_len = 8;
    let model = cfg.init(&device).unwrap();
    let e = model.forward(common::batch(&cfg, 1, 9, 0, &device)).unwrap_err().to_string();
    assert!(e.contains("(9)") && e.contains("(8)"), "{e}");
    let (_, cache) = model.forward_cached(common::batch(&cfg, 1, 8, 0, &device), None).unwrap();
    let e = model.forward_cached(common::batch(&cfg, 1, 1, 0, &device), Some(cache)).unwrap_err().to_string();
    assert!(e.contains("(9)"), "{e}");
}

#[test]
fn an_empty_image_batch_is_text_only() {
    let device = Device::flex();
    let cfg = presets::tiny();
    let model = cfg.init(&device).unwrap();
    let text = common::batch(&cfg, 2, 8, 0, &device);
    let [h, w] = cfg.image_size();
    let empty = Mm1Input { images: Some(Tensor::zeros([0, 3, h, w], &device)), ..text.clone() };
    let a = model.forward(text).unwrap().logits;
    let b = model.forward(empty).unwrap().logits;
    assert!(common::max_abs_diff(a, b) == 0.0);
}
