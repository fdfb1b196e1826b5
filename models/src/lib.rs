//! `mm1-models`: the MM1 model stack (McKinnon et al. 2024, "MM1: Methods, Analysis &
//! Insights from Multimodal LLM Pre-training").
//!
//! CLIP-style ViT (`vit`) → vision-language connector (`connector`: avg_pool, attn_pool,
//! C-Abstractor) → Llama-style decoder, dense or MoE (`llm`), composed in `mm1`.
//! Tensors in, tensors out: this crate knows nothing of files (except `weights`, the HF
//! import/export), ranks or the data crate. See `docs/models.md`.
//!
//! The fused ops and their host kernels (with the raw GEMM calls) live in `mm1-kernels`;
//! they are re-exported as [`ops`] for the model's callers (`mm1_models::ops::masked_nll`).

pub mod config;
mod error;
pub mod presets;

pub use config::{
    Activation, AttnPoolConfig, AvgPoolConfig, CAbstractorConfig, ConnectorConfig, FreezeConfig, InitConfig,
    LlmConfig, Mm1Config, MoeConfig, Size2, VisionConfig,
};
pub use error::ModelError;

pub mod connector;
pub mod llm;
mod mm1;
/// The fused ops: the `mm1-kernels` crate.
pub use mm1_kernels as ops;
pub mod vit;
pub mod weights;

pub use llm::{ExpertDispatch, LocalDispatch, MoeStats, RoutingPlan};
pub use mm1::{DecodeCache, Mm1Hidden, Mm1Input, Mm1Model, Mm1Output};
