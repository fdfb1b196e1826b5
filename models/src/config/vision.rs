//! `[model.vision]`: CLIP-style ViT (OpenAI CLIP / HF `CLIPVisionModel`).

use super::Size2;
use serde::{Deserialize, Serialize};

/// MLP activation of the ViT blocks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Activation {
    /// `x * sigmoid(1.702 x)`, OpenAI CLIP.
    QuickGelu,
    /// Exact (erf) GELU.
    Gelu,
}

/// `[model.vision]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct VisionConfig {
    /// Input resolution, `336` or `[h, w]`.
    pub image_size: Size2,
    /// Square patch side in pixels.
    pub patch_size: usize,
    pub width: usize,
    pub layers: usize,
    pub heads: usize,
    pub mlp_dim: usize,
    pub activation: Activation,
    pub layer_norm_eps: f64,
    /// Which encoder layer's output feeds the connector (class token dropped): `-1` is the
    /// last layer, `-2` the second-to-last (LLaVA); `0..layers` count from the first block's
    /// output as `1`, i.e. this indexes HF's `hidden_states` tuple (index 0 = embeddings).
    pub feature_layer: i64,
    /// Resolution the position embedding was trained at (defaults to `image_size`). When it
    /// differs, patch position embeddings are interpolated bicubically as HF CLIP does with
    /// `interpolate_pos_encoding=True`.
    pub pretrained_image_size: Option<Size2>,
}

impl Default for VisionConfig {
    /// CLIP ViT-L/14 at 336 px (the MM1 ablation base encoder), last-layer features.
    fn default() -> Self {
        crate::presets::clip_vit_l14_336()
    }
}

impl VisionConfig {
    /// Patch grid `[gh, gw]` at the configured resolution.
    pub fn grid(&self) -> [usize; 2] {
        [self.image_size.h / self.patch_size, self.image_size.w / self.patch_size]
    }

    /// Patch grid the stored position embedding covers.
    pub fn pretrained_grid(&self) -> [usize; 2] {
        let s = self.pretrained_image_size.unwrap_or(self.image_size);
        [s.h / self.patch_size, s.w / self.patch_size]
    }

    /// Number of patch tokens (without the class token) at the configured resolution.
    pub fn num_patches(&self) -> usize {
        let [gh, gw] = self.grid();
        gh * gw
    }

    /// How many encoder blocks must run to produce `feature_layer` (HF `hidden_states` index).
    pub fn feature_depth(&self) -> Option<usize> {
        let n = self.layers as i64;
        let idx = if self.feature_layer < 0 { n + 1 + self.feature_layer } else { self.feature_layer };
        (0..=n).contains(&idx).then_some(idx as usize)
    }
}
