//! Fused operations with their own backward pass, registered in burn's autodiff graph on
//! the concrete backend under the run-time dispatch (`Flex`, and `Cube` with `cuda`/`wgpu`).
//! Each falls back to burn's decomposed ops on any other backend. See `docs/performance.md`.

mod attention;
mod cross_entropy;
mod rms_norm;
mod swiglu;

pub use attention::{fused_attention_available, gqa_attention};
pub use cross_entropy::{decomposed as decomposed_masked_nll, masked_nll};
pub use rms_norm::rms_norm;
pub use swiglu::swiglu;
