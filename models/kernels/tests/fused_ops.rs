//! The fused ops (`mm1_kernels`, `mm1_models::ops`) against burn's decomposed ops under
//! autodiff: same outputs and same gradients for every input, on shapes that exercise GQA and
//! masks. The inputs the model would build (the packed-row mask, the RoPE tables) are written
//! here with burn's ops, so these tests need the kernels only.

use burn::prelude::*;
use burn::tensor::Gradients;
use mm1_kernels::{AttentionMask, fused_attention_available, gqa_attention};

/// Deterministic pseudo-random values in [-1, 1) (the generator of `models/tests/common`).
fn values(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    (0..n)
        .map(|_| {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect()
}

fn input<const D: usize>(shape: [usize; D], seed: u64, device: &Device) -> Tensor<D> {
    let n = shape.iter().product();
    let x = Tensor::from_data(TensorData::new(values(n, seed), shape), device);
    if device.is_autodiff() { x.require_grad() } else { x }
}

/// `true` where a query may not see a key: a later key, or one of another packed document
/// (the decoder's `segment_causal_mask`, on equal query and key lengths).
///
/// # Shapes
/// - `seg`: `[b, t]` → `[b, 1, t, t]`
fn segment_causal_mask(seg: Tensor<2, Int>) -> Tensor<4, Bool> {
    let [b, t] = seg.dims();
    let future = Tensor::<2, Bool>::tril_mask([t, t], 0, &seg.device()); // [t, t]
    let other_doc =
        seg.clone().reshape([b, t, 1]).repeat_dim(2, t).not_equal(seg.reshape([b, 1, t]).repeat_dim(1, t)); // [b, t, t]
    other_doc.bool_or(future.unsqueeze_dim::<3>(0).repeat_dim(0, b)).unsqueeze_dim(1) // [b, 1, t, t]
}

/// HF Llama's rotate-half RoPE tables `(cos, sin)` for explicit positions, each `[b, t, 1, dh]`
/// (the decoder's `Rope::tables`).
fn rope_tables(positions: Tensor<2, Int>, dh: usize, theta: f32) -> (Tensor<4>, Tensor<4>) {
    let [b, t] = positions.dims();
    let inv: Vec<f32> = (0..dh / 2).map(|i| 1.0 / theta.powf((2 * i) as f32 / dh as f32)).collect();
    let inv =
        Tensor::<1>::from_data(TensorData::new(inv, [dh / 2]), &positions.device()).reshape([1, 1, dh / 2]);
    let ang = positions.float().reshape([b, t, 1]) * inv; // [b, t, dh/2]
    let ang = Tensor::cat(vec![ang.clone(), ang], 2).reshape([b, t, 1, dh]); // [b, t, 1, dh]
    (ang.clone().cos(), ang.sin())
}

fn assert_close<const D: usize>(what: &str, a: Tensor<D>, b: Tensor<D>, tol: f32) {
    let (a, b) = (a.into_data().try_to_vec::<f32>().unwrap(), b.into_data().try_to_vec::<f32>().unwrap());
    assert_eq!(a.len(), b.len(), "{what}: lengths");
    let scale = b.iter().fold(0f32, |m, x| m.max(x.abs())).max(1e-6);
    let worst = a.iter().zip(&b).map(|(x, y)| (x - y).abs()).fold(0f32, f32::max);
    assert!(worst <= tol * scale, "{what}: max |diff| {worst} > {tol} x max |ref| {scale}");
}

fn grad<const D: usize>(x: &Tensor<D>, grads: &Gradients) -> Tensor<D> {
    x.grad(grads).expect("input has a gradient")
}

/// burn's attention on K/V repeated per query head (the path `gqa_attention` replaces), on
/// heads moved in front of the tokens and back.
///
/// # Shapes
/// - `q`: `[b, t, h, dh]`, `k`, `v`: `[b, tk, kvh, dh]` → `[b, t, h, dh]`
fn reference(q: Tensor<4>, k: Tensor<4>, v: Tensor<4>, mask: Option<Tensor<4, Bool>>) -> Tensor<4> {
    let [b, t, h, dh] = q.dims();
    let [_, tk, kvh, _] = k.dims();
    let rep = |x: Tensor<4>| {
        x.swap_dims(1, 2).unsqueeze_dim::<5>(2).repeat_dim(2, h / kvh).reshape([b, h, tk, dh]) // [b, h, tk, dh]
    };
    let mask = mask.map(|m| m.expand([b, h, t, tk]));
    let a =
        burn::tensor::module::attention(q.swap_dims(1, 2), rep(k), rep(v), mask, None, Default::default());
    a.swap_dims(1, 2) // [b, t, h, dh]
}

fn check_attention(b: usize, h: usize, kvh: usize, t: usize, dh: usize, masked: bool) {
    let device = Device::flex().autodiff();
    let q = input([b, t, h, dh], 1, &device);
    let k = input([b, t, kvh, dh], 2, &device);
    let v = input([b, t, kvh, dh], 3, &device);
    assert!(fused_attention_available(&q), "the fused path runs on Flex under autodiff");
    // two packed documents per row (split at t/3), causal inside each
    let seg: Vec<i64> = (0..b * t).map(|i| 1 + ((i % t) >= t / 3) as i64).collect();
    let seg = Tensor::<2, Int>::from_data(TensorData::new(seg, [b, t]), &device);
    let mask = masked.then(|| segment_causal_mask(seg));
    // a loss that weighs every output element differently
    let w = Tensor::<4>::from_data(TensorData::new(values(b * t * h * dh, 9), [b, t, h, dh]), &device);

    let prepared = mask.clone().map(AttentionMask::new);
    // a segment-causal mask hides every future key: the products skip those blocks
    assert_eq!(prepared.as_ref().map(AttentionMask::skips_future), masked.then_some(true));
    let ours = gqa_attention(q.clone(), k.clone(), v.clone(), prepared.as_ref());
    let theirs = reference(q.clone(), k.clone(), v.clone(), mask);
    let what = format!("b{b} h{h} kvh{kvh} t{t} masked={masked}");
    assert_close(&format!("{what} output"), ours.clone().inner(), theirs.clone().inner(), 1e-5);
    let g1 = (ours * w.clone()).sum().backward();
    let g2 = (theirs * w).sum().backward();
    for (name, x) in [("q", &q), ("k", &k), ("v", &v)] {
        assert_close(&format!("{what} d{name}"), grad(x, &g1), grad(x, &g2), 1e-4);
    }
}

#[test]
fn gqa_attention_matches_burn_attention_with_gradients() {
    check_attention(2, 4, 2, 12, 8, true); // GQA, packed + causal mask (the LLM)
    check_attention(2, 3, 3, 9, 4, false); // MHA, no mask (the ViT)
    check_attention(1, 4, 1, 7, 8, true); // MQA
    check_attention(2, 4, 2, 150, 8, true); // scores split over several parallel tasks
}

#[test]
fn gqa_attention_without_autodiff_matches_with() {
    let plain = Device::flex();
    let q = input([1, 5, 2, 4], 4, &plain);
    let k = input([1, 5, 1, 4], 5, &plain);
    let v = input([1, 5, 1, 4], 6, &plain);
    let a = gqa_attention(q.clone(), k.clone(), v.clone(), None);
    let b = reference(q, k, v, None);
    assert_close("no-autodiff output", a, b, 1e-5);
}

#[test]
fn masked_nll_matches_log_softmax_with_gradients() {
    use mm1_kernels::{decomposed_masked_nll, masked_nll};
    let device = Device::flex().autodiff();
    let (b, t, v) = (2, 5, 11);
    let logits = input([b, t, v], 11, &device).mul_scalar(4.0).detach().require_grad();
    let targets: Vec<i64> = (0..b * t).map(|i| ((i * 7 + 2) % v) as i64).collect();
    let targets = Tensor::<2, Int>::from_data(TensorData::new(targets, [b, t]), &device);
    let mask: Vec<f32> = (0..b * t).map(|i| (i % 3 != 0) as u8 as f32).collect();
    let mask = Tensor::<2>::from_data(TensorData::new(mask, [b, t]), &device);
    let ours = masked_nll(logits.clone(), targets.clone(), mask.clone());
    let theirs = decomposed_masked_nll(logits.clone(), targets.clone(), mask.clone());
    assert_close("nll", ours.clone().inner(), theirs.clone().inner(), 1e-6);
    // a different upstream gradient per position
    let w = Tensor::<2>::from_data(TensorData::new(values(b * t, 12), [b, t]), &device);
    let g1 = (ours * w.clone()).sum().backward();
    let g2 = (theirs * w).sum().backward();
    let d = grad(&logits, &g1);
    assert_close("dlogits", d.clone(), grad(&logits, &g2), 1e-5);
    // unscored rows get no gradient at all
    let row0 = d.slice([0..1, 0..1, 0..v]).abs().sum().into_scalar::<f32>();
    assert_eq!(row0, 0.0, "position 0 is unscored");
    // logits ~±100 apart: the log-sum-exp (taken from the largest probability) stays exact
    let far = input([b, t, v], 13, &device).mul_scalar(100.0).detach();
    let ours = masked_nll(far.clone(), targets.clone(), mask.clone()).inner();
    let theirs = decomposed_masked_nll(far, targets, mask).inner();
    let max_nll = theirs.clone().max().into_scalar::<f32>();
    assert!(max_nll > 50.0, "{max_nll}");
    assert_close("nll, far-apart logits", ours, theirs, 1e-6);
    // a vocabulary wide enough that the rows are split over several parallel tasks
    let (b, t, v) = (2, 9, 5000);
    let logits = input([b, t, v], 14, &device).mul_scalar(6.0).detach().require_grad();
    let targets: Vec<i64> = (0..b * t).map(|i| ((i * 997 + 5) % v) as i64).collect();
    let targets = Tensor::<2, Int>::from_data(TensorData::new(targets, [b, t]), &device);
    let mask = Tensor::<2>::ones([b, t], &device);
    let ours = masked_nll(logits.clone(), targets.clone(), mask.clone());
    let theirs = decomposed_masked_nll(logits.clone(), targets, mask);
    assert_close("nll, wide vocabulary", ours.clone().inner(), theirs.clone().inner(), 1e-6);
    let (g1, g2) = (ours.sum().backward(), theirs.sum().backward());
    assert_close("dlogits, wide vocabulary", grad(&logits, &g1), grad(&logits, &g2), 1e-5);
}

#[test]
fn rms_norm_matches_burn_rms_norm_with_gradients() {
    use burn::nn::RmsNormConfig;
    use mm1_kernels::rms_norm;
    let device = Device::flex().autodiff();
    // a small case and one whose rows are split over several parallel blocks
    for (b, t, d) in [(2, 3, 6), (4, 50, 300)] {
        let mut norm = RmsNormConfig::new(d).with_epsilon(1e-5).init(&device);
        // a non-trivial weight, still a trainable parameter
        norm.gamma = norm.gamma.map(|_| input([d], 21, &device).add_scalar(1.5).detach().require_grad());
        let x = input([b, t, d], 22, &device);
        let w = Tensor::<3>::from_data(TensorData::new(values(b * t * d, 23), [b, t, d]), &device);
        let ours = rms_norm(&norm, x.clone());
        let theirs = norm.forward(x.clone());
        assert_close("rms_norm output", ours.clone().inner(), theirs.clone().inner(), 1e-6);
        let g1 = (ours * w.clone()).sum().backward();
        let g2 = (theirs * w).sum().backward();
        assert_close("rms_norm dx", grad(&x, &g1), grad(&x, &g2), 1e-5);
        let gamma = norm.gamma.val();
        assert_close("rms_norm dgamma", grad(&gamma, &g1), grad(&gamma, &g2), 1e-5);
    }
}

#[test]
fn swiglu_matches_silu_times_up_with_gradients() {
    use burn::tensor::activation::silu;
    use mm1_kernels::swiglu;
    let device = Device::flex().autodiff();
    // a small tensor and one split over several parallel tasks
    for (n, f) in [(3, 7), (40, 1001)] {
        let a = input([n, f], 31, &device).mul_scalar(3.0).detach().require_grad();
        let b = input([n, f], 32, &device);
        let w = Tensor::<2>::from_data(TensorData::new(values(n * f, 33), [n, f]), &device);
        let ours = swiglu(a.clone(), b.clone());
        let theirs = silu(a.clone()) * b.clone();
        assert_close("swiglu output", ours.clone().inner(), theirs.clone().inner(), 1e-6);
        let g1 = (ours * w.clone()).sum().backward();
        let g2 = (theirs * w).sum().backward();
        assert_close("swiglu da", grad(&a, &g1), grad(&a, &g2), 1e-5);
        assert_close("swiglu db", grad(&b, &g1), grad(&b, &g2), 1e-5);
    }
}

#[test]
fn gelu_matches_burn_gelu_with_gradients() {
    use burn::tensor::activation::gelu as burn_gelu;
    use mm1_kernels::gelu;
    let device = Device::flex().autodiff();
    // a small tensor and one split over several parallel tasks; values out to ±12
    for (n, f) in [(3, 7), (40, 1001)] {
        let x = input([n, f], 41, &device).mul_scalar(12.0).detach().require_grad();
        let w = Tensor::<2>::from_data(TensorData::new(values(n * f, 42), [n, f]), &device);
        let ours = gelu(x.clone());
        let theirs = burn_gelu(x.clone());
        assert_close("gelu output", ours.clone().inner(), theirs.clone().inner(), 1e-6);
        let g1 = (ours * w.clone()).sum().backward();
        let g2 = (theirs * w).sum().backward();
        assert_close("gelu dx", grad(&x, &g1), grad(&x, &g2), 1e-6);
    }
    // without autodiff too
    let plain = input([2, 9], 43, &Device::flex()).mul_scalar(5.0);
    assert_close("gelu, no autodiff", gelu(plain.clone()), burn_gelu(plain), 1e-6);
}

#[test]
fn rope_matches_rotate_half_with_gradients() {
    let device = Device::flex().autodiff();
    let (b, h, t, dh) = (2, 3, 40, 16);
    let x = input([b, t, h, dh], 51, &device);
    // packed documents: positions restart inside each row
    let pos: Vec<i64> = (0..b * t).map(|i| ((i % t) % 23) as i64).collect();
    let pos = Tensor::<2, Int>::from_data(TensorData::new(pos, [b, t]), &device);
    let (cos, sin) = rope_tables(pos, dh, 10_000.0);
    // HF `apply_rotary_pos_emb` written with burn's ops
    let x1 = x.clone().slice([0..b, 0..t, 0..h, 0..dh / 2]);
    let x2 = x.clone().slice([0..b, 0..t, 0..h, dh / 2..dh]);
    let theirs = x.clone() * cos.clone() + Tensor::cat(vec![x2.neg(), x1], 3) * sin.clone();
    let ours = mm1_kernels::rope(x.clone(), &cos, &sin);
    assert_close("rope output", ours.clone().inner(), theirs.clone().inner(), 1e-6);
    let w = Tensor::<4>::from_data(TensorData::new(values(b * t * h * dh, 52), [b, t, h, dh]), &device);
    let g1 = (ours * w.clone()).sum().backward();
    let g2 = (theirs * w).sum().backward();
    assert_close("rope dx", grad(&x, &g1), grad(&x, &g2), 1e-6);
    // without autodiff too
    let (plain, cos, sin) = (x.inner(), cos.inner(), sin.inner());
    let x1 = plain.clone().slice([0..b, 0..t, 0..h, 0..dh / 2]);
    let x2 = plain.clone().slice([0..b, 0..t, 0..h, dh / 2..dh]);
    let theirs = plain.clone() * cos.clone() + Tensor::cat(vec![x2.neg(), x1], 3) * sin.clone();
    assert_close("rope, no autodiff", mm1_kernels::rope(plain, &cos, &sin), theirs, 1e-6);
}

#[test]
fn linear_matches_burn_linear_with_gradients() {
    use burn::nn::LinearConfig;
    use mm1_kernels::linear;
    let device = Device::flex().autodiff();
    // odd sizes on one thread, and a product large enough for the parallel GEMM; with and
    // without bias; a frozen weight (no dW) too
    for (b, t, d_in, d_out, bias, frozen) in
        [(2, 7, 33, 45, true, false), (4, 128, 96, 200, false, false), (3, 5, 8, 6, true, true)]
    {
        let mut layer = LinearConfig::new(d_in, d_out).with_bias(bias).init(&device);
        if frozen {
            layer.weight = layer.weight.clone().set_require_grad(false);
        }
        let x = input([b, t, d_in], 61, &device);
        let w = Tensor::<3>::from_data(TensorData::new(values(b * t * d_out, 62), [b, t, d_out]), &device);
        let ours = linear(&layer, x.clone());
        let theirs = layer.forward(x.clone());
        assert_close("linear output", ours.clone().inner(), theirs.clone().inner(), 1e-4);
        let g1 = (ours * w.clone()).sum().backward();
        let g2 = (theirs * w).sum().backward();
        assert_close("linear dx", grad(&x, &g1), grad(&x, &g2), 1e-4);
        match frozen {
            true => assert!(layer.weight.grad(&g1).is_none(), "frozen weight got a gradient"),
            false => assert_close(
                "linear dW",
                layer.weight.grad(&g1).expect("dW"),
                layer.weight.grad(&g2).expect("dW"),
                1e-3,
            ),
        }
        if let Some(bias) = &layer.bias {
            let (db1, db2) = (bias.grad(&g1).expect("db"), bias.grad(&g2).expect("db"));
            assert_close("linear db", db1.unsqueeze::<2>(), db2.unsqueeze(), 1e-3);
        }
    }
    // without autodiff too
    let layer = LinearConfig::new(10, 4).init(&Device::flex());
    let plain = input([3, 2, 10], 63, &Device::flex());
    assert_close("linear, no autodiff", linear(&layer, plain.clone()), layer.forward(plain), 1e-5);
}

#[test]
fn linears_on_one_input_match_burn_linear_with_gradients() {
    use burn::nn::LinearConfig;
    use mm1_kernels::linears;
    let device = Device::flex().autodiff();
    // query/key/value-like widths (one product split over the pool, two on one thread each),
    // with and without bias, the input's gradient summed over the three layers
    for bias in [false, true] {
        let layers = [256, 96, 96].map(|d_out| LinearConfig::new(128, d_out).with_bias(bias).init(&device));
        let x = input([2, 150, 128], 64, &device);
        let ours = linears([&layers[0], &layers[1], &layers[2]], x.clone());
        let theirs = layers.each_ref().map(|layer| layer.forward(x.clone()));
        let loss = |ys: &[Tensor<3>; 3]| {
            let weighted = ys.iter().enumerate().map(|(i, y)| y.clone().mul_scalar(i as f64 + 1.0).sum());
            weighted.reduce(|a, b| a + b).expect("three layers")
        };
        for (a, b) in ours.iter().zip(&theirs) {
            assert_close("linears output", a.clone().inner(), b.clone().inner(), 1e-4);
        }
        let (g1, g2) = (loss(&ours).backward(), loss(&theirs).backward());
        assert_close("linears dx", grad(&x, &g1), grad(&x, &g2), 1e-3);
        for layer in &layers {
            let (w1, w2) = (layer.weight.grad(&g1).expect("dW"), layer.weight.grad(&g2).expect("dW"));
            assert_close("linears dW", w1, w2, 1e-3);
            if let Some(b) = &layer.bias {
                let (db1, db2) = (b.grad(&g1).expect("db"), b.grad(&g2).expect("db"));
                assert_close("linears db", db1.unsqueeze::<2>(), db2.unsqueeze(), 1e-3);
            }
        }
    }
}
