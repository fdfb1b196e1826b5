//! Time the fused ops alone at the `bench_cpu` step's shapes (forward + backward, flex
//! autodiff): GQA attention `[8, 256, 4, 64]` queries over `[8, 256, 2, 64]` keys with a causal
//! mask, and the masked cross-entropy over `[8, 256, 4096]` logits. Prints the median ms of
//! each; far less noisy than the whole step on a shared machine.
//!
//! `cargo run -p mm1-kernels --example fused_ops_bench -- [--iters N]`

use burn::prelude::*;
use burn::tensor::Distribution;
use mm1_kernels::{AttentionMask, gqa_attention, masked_nll};
use std::time::Instant;

fn median_ms(iters: usize, mut f: impl FnMut()) -> f64 {
    f();
    let mut t: Vec<f64> = (0..iters)
        .map(|_| {
            let t0 = Instant::now();
            f();
            t0.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    t.sort_by(f64::total_cmp);
    t[t.len() / 2]
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let iters =
        args.iter().position(|a| a == "--iters").and_then(|i| args.get(i + 1)?.parse().ok()).unwrap_or(10);
    let device = Device::flex().autodiff();
    let (b, h, kvh, t, dh, v) = (8, 4, 2, 256, 64, 4096);
    let normal = Distribution::Normal(0.0, 1.0);
    let q = Tensor::<4>::random([b, t, h, dh], normal, &device);
    let k = Tensor::<4>::random([b, t, kvh, dh], normal, &device);
    let val = Tensor::<4>::random([b, t, kvh, dh], normal, &device);
    let future = Tensor::<2, Bool>::tril_mask([t, t], 0, &device).reshape([1, 1, t, t]).repeat_dim(0, b);
    let causal = AttentionMask::new(future); // prepared once, as the decoder does for all layers
    let attn = median_ms(iters, || {
        let (q, k, val) = (q.clone().require_grad(), k.clone().require_grad(), val.clone().require_grad());
        let o = gqa_attention(q.clone(), k, val, Some(&causal));
        let g = o.sum().backward();
        let _ = q.grad(&g).unwrap().into_data();
    });
    let logits = Tensor::<3>::random([b, t, v], normal, &device);
    let targets = Tensor::<2, Int>::random([b, t], Distribution::Uniform(0.0, v as f64), &device);
    let mask = Tensor::<2>::ones([b, t], &device);
    let ce = median_ms(iters, || {
        let x = logits.clone().require_grad();
        let g = masked_nll(x.clone(), targets.clone(), mask.clone()).sum().backward();
        let _ = x.grad(&g).unwrap().into_data();
    });
    println!("gqa_attention fwd+bwd {attn:.1} ms, masked_nll fwd+bwd {ce:.1} ms");
}
