//! The `[model]` TOML section, 1:1: `[model.vision]`, `[model.connector]`, `[model.llm]`
//! (optional `[model.llm.moe]`), `[model.freeze]` and `[model.init]`.
//!
//! Every struct is plain serde with `deny_unknown_fields` and defaults, so a TOML file only
//! names what differs from the defaults (the MM1 ablation base: ViT-L/14 at 336 px,
//! C-Abstractor with 144 tokens, the 1.2B decoder). `Mm1Config::validate` checks every
//! cross-component constraint before anything is allocated.

mod connector;
mod llm;
mod size;
mod validate;
mod vision;

pub use connector::{AttnPoolConfig, AvgPoolConfig, CAbstractorConfig, ConnectorConfig};
pub use llm::{LlmConfig, MoeConfig};
pub use size::Size2;
pub use vision::{Activation, VisionConfig};

use serde::{Deserialize, Serialize};

/// `[model]`: the whole MM1 stack.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct Mm1Config {
    /// `[model.vision]`: the image encoder.
    pub vision: VisionConfig,
    /// `[model.connector]`: the vision-language connector (`kind = ...`).
    pub connector: ConnectorConfig,
    /// `[model.llm]`: the decoder-only LLM.
    pub llm: LlmConfig,
    /// `[model.freeze]`: which components receive no gradient.
    pub freeze: FreezeConfig,
    /// `[model.init]`: pretrained weights a fresh run starts from (read by the trainer, not by
    /// [`Mm1Config::init`], which always initialises randomly).
    pub init: InitConfig,
}

/// `[model.init]`: where a fresh run's weights come from; unset components keep their seeded
/// random initialisation. Paths are relative to the working directory, as `data.tokenizer`.
/// `checkpoint`, which holds every component, excludes the others (they are not read).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct InitConfig {
    /// HF `CLIPVisionModel` or `CLIPModel` checkpoint (folder, `.safetensors` file or
    /// `model.safetensors.index.json`).
    pub vision: Option<std::path::PathBuf>,
    /// HF `LlamaForCausalLM` checkpoint (same forms).
    pub llm: Option<std::path::PathBuf>,
    /// Connector weights: a `.safetensors` file with this crate's parameter paths, bare or
    /// under `connector.` (as `mm1-train export` writes them).
    pub connector: Option<std::path::PathBuf>,
    /// An mm1 checkpoint folder, run folder (its newest checkpoint) or export file: every
    /// component (e.g. stage 2 from stage 1).
    pub checkpoint: Option<std::path::PathBuf>,
}

impl InitConfig {
    /// Whether anything is to be loaded.
    pub fn is_set(&self) -> bool {
        self.vision.is_some() || self.llm.is_some() || self.connector.is_some() || self.checkpoint.is_some()
    }
}

/// `[model.freeze]`: components whose parameters are excluded from training.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct FreezeConfig {
    pub vision: bool,
    pub connector: bool,
    pub llm: bool,
}

impl Mm1Config {
    /// Parse a TOML string holding the fields of the `[model]` section (without the header).
    pub fn from_toml_str(s: &str) -> Result<Self, crate::ModelError> {
        toml::from_str(s).map_err(|e| crate::ModelError::Config(format!("[model]: {e}")))
    }

    /// Image tokens per image that the connector produces (what the data pipeline must reserve).
    pub fn num_image_tokens(&self) -> usize {
        self.connector.num_tokens()
    }

    /// Input image size `[h, w]` in pixels.
    pub fn image_size(&self) -> [usize; 2] {
        self.vision.image_size.hw()
    }
}
