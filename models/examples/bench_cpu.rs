//! Step-time benchmark of the `bench_cpu` preset on the flex CPU backend, timed like
//! `shared/bench/torch_step_baseline.py`: forward + backward + AdamW (lr 1e-4, wd 0.1,
//! clip 1.0), batch 8 × 256 tokens, one image per row whose 16 tokens lead the sequence,
//! cross-entropy on the text positions. Prints median ms/step and tokens/s.
//!
//! `cargo run -p mm1-models --example bench_cpu -- [--steps N] [--json]`
//! (dev profile: dependencies are built at opt-level 3.)

use burn::optim::grad_clipping::GradientClippingConfig;
use burn::optim::{AdamWConfig, GradientsParams};
use burn::prelude::*;
use burn::tensor::activation::log_softmax;
use mm1_models::{Mm1Input, presets};
use std::time::Instant;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let steps = args
        .iter()
        .position(|a| a == "--steps")
        .and_then(|i| args.get(i + 1)?.parse().ok())
        .unwrap_or(10usize);
    let json = args.iter().any(|a| a == "--json");

    let cfg = presets::bench_cpu();
    let device = Device::flex().autodiff();
    device.seed(0);
    let mut model = cfg.init(&device).expect("bench_cpu preset is valid");
    let mut optim = AdamWConfig::new()
        .with_weight_decay(0.1)
        .with_grad_clipping(Some(GradientClippingConfig::Norm(1.0)))
        .init();
    let (b, t, m, v) = (8, 256, cfg.num_image_tokens(), cfg.llm.vocab_size);
    let [h, w] = cfg.image_size();
    let ints = |seed: u64| {
        let mut s = seed;
        let ids: Vec<i64> = (0..b * t)
            .map(|_| {
                s = s.wrapping_mul(6364136223846793005).wrapping_add(1);
                ((s >> 33) % v as u64) as i64
            })
            .collect();
        Tensor::<2, Int>::from_data(TensorData::new(ids, [b, t]), &device)
    };
    let mask: Vec<bool> = (0..b * t).map(|i| i % t < m).collect();
    let input = Mm1Input {
        tokens: ints(1),
        image_mask: Tensor::from_data(TensorData::new(mask.clone(), [b, t]), &device),
        segment_ids: Tensor::zeros([b, t], &device),
        position_ids: Tensor::<1, Int>::arange(0..t as i64, &device).reshape([1, t]).repeat_dim(0, b),
        images: Some(Tensor::random([b, 3, h, w], burn::tensor::Distribution::Normal(0.0, 1.0), &device)),
    };
    let targets = ints(2);
    let text = Tensor::<2, Bool>::from_data(TensorData::new(mask, [b, t]), &device).bool_not().float(); // [b, t]

    let mut times = Vec::new();
    for i in 0..steps + 2 {
        let t0 = Instant::now();
        let out = model.forward(input.clone()).expect("valid input");
        let logp = log_softmax(out.logits, 2); // [b, t, v]
        let nll = logp.gather(2, targets.clone().unsqueeze_dim(2)).squeeze_dim::<2>(2).neg(); // [b, t]
        let loss = (nll * text.clone()).sum() / text.clone().sum();
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        model = optim.step(1e-4, model, grads);
        let _ = loss.into_scalar::<f32>(); // sync
        if i >= 2 {
            times.push(t0.elapsed().as_secs_f64());
        }
    }
    times.sort_by(f64::total_cmp);
    let med = times[times.len() / 2];
    let params = model.num_params();
    if json {
        println!(
            "{{\"ms_per_step\": {:.1}, \"tokens_per_s\": {:.0}, \"params\": {params}}}",
            med * 1e3,
            (b * t) as f64 / med
        );
    } else {
        println!(
            "bench_cpu: {:.1} ms/step, {:.0} tokens/s, {params} params, median of {steps}",
            med * 1e3,
            (b * t) as f64 / med
        );
    }
}
