//! Vision encoder: CLIP-style ViT (Radford et al. 2021; HF `CLIPVisionTransformer`).
//!
//! `embeddings → pre_layrnorm → blocks[..depth]`; the connector gets the patch tokens of
//! HF `hidden_states[feature_layer]` with the class token dropped (LLaVA's
//! `vision_feature_layer`). HF's `post_layernorm` only touches the pooled class token,
//! which MM1 does not use, so it is not part of this module.

mod attention;
mod block;
mod embeddings;
pub mod interpolate;

pub use attention::VitAttention;
pub use block::{VitBlock, VitMlp};
pub use embeddings::VitEmbeddings;

use crate::config::VisionConfig;
use burn::nn::{LayerNorm, LayerNormConfig};
use burn::prelude::*;
use mm1_kernels::layer_norm;

#[derive(Module, Debug)]
pub struct VisionTransformer {
    pub embeddings: VitEmbeddings,
    pub pre_layrnorm: LayerNorm,
    /// Only the blocks up to `feature_layer` (later ones would never be used).
    pub layers: Vec<VitBlock>,
}

impl VisionTransformer {
    /// Build the encoder; `cfg` must have passed `validate`.
    pub fn new(cfg: &VisionConfig, device: &Device) -> Self {
        let depth = cfg.feature_depth().unwrap_or(cfg.layers);
        Self {
            embeddings: VitEmbeddings::new(cfg, device),
            pre_layrnorm: LayerNormConfig::new(cfg.width).with_epsilon(cfg.layer_norm_eps).init(device),
            layers: (0..depth).map(|_| VitBlock::new(cfg, device)).collect(),
        }
    }

    /// HF `hidden_states[len(layers)]`, class token included.
    ///
    /// # Shapes
    /// - `pixels`: `[b, 3, h, w]` → `[b, 1 + p, d]`
    pub fn forward_hidden(&self, pixels: Tensor<4>) -> Tensor<3> {
        self.layers.iter().fold(self.embed(pixels), |x, block| block.forward(x))
    }

    /// `embeddings → pre_layrnorm`: the input of the first block (HF `hidden_states[0]`).
    ///
    /// # Shapes
    /// - `pixels`: `[b, 3, h, w]` → `[b, 1 + p, d]`
    pub fn embed(&self, pixels: Tensor<4>) -> Tensor<3> {
        layer_norm(&self.pre_layrnorm, self.embeddings.forward(pixels))
    }

    /// The connector's input from the last block's output: the class token dropped.
    ///
    /// # Shapes
    /// - `hidden`: `[b, 1 + p, d]` → `[b, p, d]`
    pub fn patch_features(hidden: Tensor<3>) -> Tensor<3> {
        let [b, t, d] = hidden.dims();
        hidden.slice([0..b, 1..t, 0..d])
    }

    /// Patch features for the connector, class token dropped.
    ///
    /// # Shapes
    /// - `pixels`: `[b, 3, h, w]` → `[b, p, d]` with `p = (h/patch) * (w/patch)`
    pub fn forward(&self, pixels: Tensor<4>) -> Tensor<3> {
        Self::patch_features(self.forward_hidden(pixels))
    }
}
