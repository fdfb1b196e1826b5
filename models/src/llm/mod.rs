//! The LLM: a Llama-style decoder (Touvron et al. 2023; HF `LlamaForCausalLM`) with RMSNorm,
//! rotate-half RoPE, grouped-query attention, SwiGLU, and optional MoE FFNs (MM1 §3.4).

mod attention;
mod block;
mod decoder;
mod dispatch;
mod mask;
mod mlp;
mod moe;
mod rope;
pub mod routing;

pub use attention::{LayerKv, LlmAttention};
pub use block::{DecoderLayer, Ffn, LayerOutput};
pub use decoder::{DecoderHidden, DecoderOutput, LlmDecoder};
pub use dispatch::{ExpertDispatch, LocalDispatch};
pub use mask::segment_causal_mask;
pub use mlp::Mlp;
pub use moe::{MoeFfn, MoeOutput, MoeStats, aux_losses};
pub use rope::{Rope, RopeTables};
pub use routing::RoutingPlan;
