//! `mm1-kernels`: the kernels under the MM1 model stack and its optimizer.
//!
//! Fused operations with their own backward pass, registered in burn's autodiff graph on
//! the concrete backend under the run-time dispatch (`Flex`, and `Cube` with `cuda`/`wgpu`).
//! Each falls back to burn's decomposed ops on any other backend. Under them, `host`: the
//! GEMM and SIMD loops on flex's storage (the `unsafe` GEMM calls: `host/gemm.rs`,
//! `host/openblas.rs`), and the optimizer's kernels (`adamw_update`, `square_sum`).
//! Depends on burn only; `mm1-models` re-exports it as `mm1_models::ops`.
//! See `docs/performance.md`.

/// `$call` with the type names `$b` (backend) and `$c` (checkpointing) bound in turn to each
/// concrete autodiff backend of this build: `Flex`, and with `cuda`/`wgpu` the CubeCL `Cube`
/// (the device says which runtime), each without and with gradient checkpointing. The first
/// `Some` wins; `None` means the tensors live on another backend (the caller falls back to
/// burn's decomposed ops).
macro_rules! on_autodiff_backends {
    (|$b:ident, $c:ident| $call:expr) => {{
        use burn::backend::autodiff::checkpoint::strategy::{BalancedCheckpointing, NoCheckpointing};
        let out = {
            type $b = burn::backend::Flex;
            type $c = NoCheckpointing;
            $call
        }
        .or_else(|| {
            type $b = burn::backend::Flex;
            type $c = BalancedCheckpointing;
            $call
        });
        #[cfg(any(feature = "cuda", feature = "wgpu"))]
        let out = out
            .or_else(|| {
                type $b = burn::backend::Cube;
                type $c = NoCheckpointing;
                $call
            })
            .or_else(|| {
                type $b = burn::backend::Cube;
                type $c = BalancedCheckpointing;
                $call
            });
        out
    }};
}

mod attention;
mod conv;
mod cross_entropy;
mod gelu;
mod host;
mod layer_norm;
mod linear;
mod rms_norm;
mod rope;
mod swiglu;

pub use attention::{AttentionMask, fused_attention_available, gqa_attention};
pub use conv::conv2d;
pub use cross_entropy::{decomposed as decomposed_masked_nll, masked_nll};
pub use gelu::gelu;
pub use host::adamw::{AdamWStep, update as adamw_update};
pub use host::{on_flex_f32, square_sum};
pub use layer_norm::layer_norm;
pub use linear::{linear, linear_at_input_dtype, linears};
pub use rms_norm::rms_norm;
pub use rope::rope;
pub use swiglu::swiglu;

use burn::prelude::Tensor;

/// `x` in `f32`: the ops that keep `bf16` activations (mixed precision) compute their
/// reductions, exponentials and statistics in `f32`, as GPU `bf16` kernels do in registers,
/// and store their outputs in the activations' dtype. A no-op on `f32` tensors.
fn upcast<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    x.cast(burn::tensor::FloatDType::F32)
}

/// `true` when `x` holds `f32` values.
fn is_f32<const D: usize>(x: &Tensor<D>) -> bool {
    x.dtype() == burn::tensor::DType::F32
}

/// Largest `|a − b|` over two tensors of one shape: the unit tests' burn-ops-vs-kernel check.
#[cfg(test)]
fn max_abs_diff<const D: usize>(a: burn::prelude::Tensor<D>, b: burn::prelude::Tensor<D>) -> f32 {
    let flat = |t: burn::prelude::Tensor<D>| t.into_data().try_to_vec::<f32>().expect("f32 tensor");
    flat(a).iter().zip(&flat(b)).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max)
}
