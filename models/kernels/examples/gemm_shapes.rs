//! GEMM throughput of the flex backend on the matmul shapes of the `bench_cpu` step
//! (forward `x·W`, backward `g·Wᵀ` and `xᵀ·g`), to compare with
//! `numpy`/`torch` on the same machine. Prints GFLOP/s per shape.
//!
//! `cargo run -p mm1-kernels --example gemm_shapes`

use burn::prelude::*;
use std::time::Instant;

fn main() {
    let device = Device::flex();
    let shapes: [(usize, usize, usize); 11] = [
        (2048, 256, 256),
        (2048, 256, 128),
        (2048, 256, 688),
        (2048, 688, 256),
        (2048, 256, 4096),
        (2048, 4096, 256),
        (256, 2048, 4096),
        (256, 2048, 688),
        (688, 2048, 256),
        (512, 192, 576),
        (512, 192, 768),
    ];
    for (m, k, n) in shapes {
        let a = Tensor::<2>::random([m, k], burn::tensor::Distribution::Default, &device);
        let b = Tensor::<2>::random([k, n], burn::tensor::Distribution::Default, &device);
        let bt = b.clone().transpose(); // [n, k], a strided view as the backward sees it
        let run = |f: &dyn Fn() -> Tensor<2>| {
            let _ = f().into_data();
            let t0 = Instant::now();
            for _ in 0..10 {
                let _ = f().into_data();
            }
            t0.elapsed().as_secs_f64() / 10.0
        };
        let flops = 2.0 * m as f64 * k as f64 * n as f64;
        let plain = run(&|| a.clone().matmul(b.clone()));
        let strided = run(&|| a.clone().matmul(bt.clone().transpose()));
        println!(
            "{m}x{k}x{n}: flex {:6.1} GF/s, with a transposed operand {:6.1} GF/s",
            flops / plain / 1e9,
            flops / strided / 1e9
        );
    }
}
