//! Helpers shared by the integration tests.
#![allow(dead_code)]

use burn::module::{Module, ModuleVisitor, Param};
use burn::prelude::*;
use burn::tensor::Gradients;
use mm1_models::{Mm1Config, Mm1Input};

/// `(path, has_gradient)` for every float parameter.
pub fn grad_presence<M: Module>(module: &M, grads: &Gradients) -> Vec<(String, bool)> {
    struct V<'a> {
        path: Vec<String>,
        grads: &'a Gradients,
        out: Vec<(String, bool)>,
    }
    impl ModuleVisitor for V<'_> {
        fn enter_module(&mut self, name: &str, _: &str) {
            self.path.push(name.to_string());
        }
        fn exit_module(&mut self, _: &str, _: &str) {
            self.path.pop();
        }
        fn visit_float<const D: usize>(&mut self, p: &Param<Tensor<D>>) {
            let g = p.val().grad(self.grads).is_some_and(|g| g.abs().sum().into_scalar::<f32>() > 0.0);
            self.out.push((self.path.join("."), g));
        }
    }
    let mut v = V { path: Vec::new(), grads, out: Vec::new() };
    module.visit(&mut v);
    v.out
}

/// Deterministic pseudo-random values in [-1, 1).
pub fn values(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    (0..n)
        .map(|_| {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect()
}

/// A batch of `b` rows of length `t`, each with `images_per_row` images whose placeholders
/// start at position 1 (after a BOS-like token), one document per row.
pub fn batch(cfg: &Mm1Config, b: usize, t: usize, images_per_row: usize, device: &Device) -> Mm1Input {
    let m = cfg.num_image_tokens();
    let [h, w] = cfg.image_size();
    let ids: Vec<i64> = (0..b * t).map(|i| ((i * 7 + 3) % cfg.llm.vocab_size) as i64).collect();
    let mask: Vec<bool> = (0..b * t).map(|i| (1..1 + m * images_per_row).contains(&(i % t))).collect();
    let n = b * images_per_row;
    Mm1Input {
        tokens: Tensor::from_data(TensorData::new(ids, [b, t]), device),
        image_mask: Tensor::from_data(TensorData::new(mask, [b, t]), device),
        segment_ids: Tensor::zeros([b, t], device),
        position_ids: Tensor::<1, Int>::arange(0..t as i64, device).reshape([1, t]).repeat_dim(0, b),
        images: (n > 0)
            .then(|| Tensor::from_data(TensorData::new(values(n * 3 * h * w, 7), [n, 3, h, w]), device)),
    }
}

pub fn max_abs_diff<const D: usize>(a: Tensor<D>, b: Tensor<D>) -> f32 {
    (a - b).abs().max().into_scalar::<f32>()
}
