//! Mixed precision (`Mm1Model::with_compute_dtype(BF16)`) against the same model in `f32`:
//! the activations are really `bf16`, the loss is `f32` and agrees within bf16's resolution,
//! and every parameter gets an `f32` gradient close to the `f32` model's.
//!
//! Tolerances: bf16 keeps 8 significant bits (relative step 2⁻⁸ = 0.4 %), and one rounding per
//! op over a few tiny layers moves a parameter's gradient by a few of those steps. Measured on
//! 2026-12-06 (flex): loss relative difference ≤ 7.2e-5 (bound 1e-3; near init the logits are
//! small and the loss ≈ ln(vocab)), worst gradient 4.4 % of its norm (bound 10 %; the largest
//! are the C-Abstractor's LayerNorm2d offsets, behind its bf16 convolutions).

mod common;

use burn::module::{Module, ModuleVisitor, Param};
use burn::prelude::*;
use burn::tensor::{DType, FloatDType, Gradients};
use mm1_kernels::masked_nll;
use mm1_models::config::{AttnPoolConfig, AvgPoolConfig, ConnectorConfig};
use mm1_models::{Mm1Config, Mm1Model, presets};

/// `(loss, logits dtype, grads)` of one forward/backward on the shared test batch.
fn loss_and_grads(model: &Mm1Model, cfg: &Mm1Config, device: &Device) -> (f32, DType, Gradients) {
    let (b, t) = (2, 24);
    let input = common::batch(cfg, b, t, 1, device);
    let targets = input.tokens.clone();
    let out = model.forward(input).unwrap();
    let logits_dtype = out.logits.dtype();
    let mask = Tensor::<2>::ones([b, t], device);
    let loss = masked_nll(out.logits, targets, mask).mean() + out.aux_loss.reshape([1]).sum();
    assert_eq!(loss.dtype(), DType::F32, "the loss is f32 under every compute dtype");
    let value = loss.clone().into_scalar::<f32>();
    (value, logits_dtype, loss.backward())
}

/// `(path, dtype, gradient)` of every float parameter that has one.
fn param_grads<M: Module>(module: &M, grads: &Gradients) -> Vec<(String, DType, Vec<f32>)> {
    struct V<'a> {
        path: Vec<String>,
        grads: &'a Gradients,
        out: Vec<(String, DType, Vec<f32>)>,
    }
    impl ModuleVisitor for V<'_> {
        fn enter_module(&mut self, name: &str, _: &str) {
            self.path.push(name.to_string());
        }
        fn exit_module(&mut self, _: &str, _: &str) {
            self.path.pop();
        }
        fn visit_float<const D: usize>(&mut self, p: &Param<Tensor<D>>) {
            let value = p.val();
            assert_eq!(value.dtype(), DType::F32, "{}: parameter not f32", self.path.join("."));
            if let Some(g) = value.grad(self.grads) {
                let dtype = g.dtype();
                let g = g.into_data().convert::<f32>().try_into_vec::<f32>().unwrap();
                self.out.push((self.path.join("."), dtype, g));
            }
        }
    }
    let mut v = V { path: Vec::new(), grads, out: Vec::new() };
    module.visit(&mut v);
    v.out
}

fn norm(x: &[f32]) -> f32 {
    x.iter().map(|v| v * v).sum::<f32>().sqrt()
}

/// One model drawn at a time: burn-flex keeps one random seed per process and draws the
/// (lazily initialised) weights at first use, so parallel tests would shuffle each other's draws.
static ONE_INIT: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// The bf16 model against the f32 one with the same weights.
fn check(name: &str, cfg: &Mm1Config) {
    let device = Device::flex().autodiff();
    let (model, (loss32, dtype32, grads32)) = {
        let _one = ONE_INIT.lock().unwrap_or_else(|e| e.into_inner());
        device.seed(3);
        let model = cfg.init(&device).unwrap();
        let out = loss_and_grads(&model, cfg, &device); // draws every weight
        (model, out)
    };
    let half = model.clone().with_compute_dtype(FloatDType::BF16);
    let (loss16, dtype16, grads16) = loss_and_grads(&half, cfg, &device);
    assert_eq!((dtype32, dtype16), (DType::F32, DType::BF16), "{name}: logits dtypes");
    let rel = (loss16 - loss32).abs() / loss32.abs();
    assert!(rel < 1e-3, "{name}: loss bf16 {loss16} vs f32 {loss32} (rel {rel:.2e})");
    let (g32, g16) = (param_grads(&model, &grads32), param_grads(&half, &grads16));
    assert_eq!(g32.len(), g16.len(), "{name}: parameters with a gradient");
    // a parameter whose gradient is ~0 in exact arithmetic (a key bias: softmax ignores a
    // constant per row) is judged against 1 % of the whole gradient's norm instead
    let total = norm(&g32.iter().flat_map(|(_, _, g)| g.iter().copied()).collect::<Vec<_>>());
    let mut worst = (0f32, String::new());
    for ((path, _, a), (_, dtype, b)) in g32.iter().zip(&g16) {
        assert_eq!(*dtype, DType::F32, "{name}: gradient of {path} is {dtype:?}");
        let diff: Vec<f32> = a.iter().zip(b).map(|(a, b)| a - b).collect();
        let rel = norm(&diff) / norm(a).max(0.01 * total);
        if rel > worst.0 {
            worst = (rel, path.clone());
        }
    }
    assert!(worst.0 < 0.1, "{name}: gradient of {} off by {:.3} of its norm", worst.1, worst.0);
    eprintln!("{name}: loss rel diff {rel:.2e}, worst gradient rel diff {:.3} ({})", worst.0, worst.1);
}

#[test]
fn bf16_matches_f32_dense_c_abstractor() {
    check("tiny", &presets::tiny());
}

#[test]
fn bf16_matches_f32_moe() {
    let mut cfg = presets::tiny_moe();
    if let Some(moe) = cfg.llm.moe.as_mut() {
        moe.capacity_factor = 0.0; // no drops: a flipped choice would not also drop a token
    }
    check("tiny_moe", &cfg);
}

#[test]
fn bf16_matches_f32_pooling_connectors() {
    let mut cfg = presets::tiny();
    let m = cfg.connector.num_tokens();
    cfg.connector = ConnectorConfig::AvgPool(AvgPoolConfig { num_tokens: m });
    check("avg_pool", &cfg);
    cfg.connector = ConnectorConfig::AttnPool(AttnPoolConfig { num_tokens: m, heads: 2 });
    check("attn_pool", &cfg);
}
