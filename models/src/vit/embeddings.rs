//! Patch embedding + class token + learned position embedding (HF `CLIPVisionEmbeddings`).
//!
//! The position table covers the grid it was trained at (`pretrained_image_size`); at any
//! other grid the patch part is resized bicubically like `interpolate_pos_encoding=True`.

use super::interpolate::resize_grid;
use crate::config::VisionConfig;
use burn::module::{Initializer, Param};
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::prelude::*;
use burn::tensor::FloatDType;

#[derive(Module, Debug)]
pub struct VitEmbeddings {
    /// `[d, 3, patch, patch]`, no bias (as CLIP).
    pub patch_embedding: Conv2d,
    /// `[d]`
    pub class_embedding: Param<Tensor<1>>,
    /// `[1 + gh0*gw0, d]` at the pretrained grid.
    pub position_embedding: Param<Tensor<2>>,
    /// Pretrained patch grid `[gh0, gw0]` the position table covers.
    pub pos_grid: [usize; 2],
    pub patch_size: usize,
    /// Dtype of the tokens this module hands the blocks (`bf16` under mixed precision; the
    /// parameters stay `f32`, see [`crate::Mm1Model::with_compute_dtype`]).
    #[module(skip)]
    pub compute_dtype: FloatDType,
}

impl VitEmbeddings {
    pub fn new(cfg: &VisionConfig, device: &Device) -> Self {
        let [gh, gw] = cfg.pretrained_grid();
        let p = cfg.patch_size;
        let normal = Initializer::Normal { mean: 0.0, std: 0.02 };
        Self {
            patch_embedding: Conv2dConfig::new([3, cfg.width], [p, p])
                .with_stride([p, p])
                .with_bias(false)
                .init(device),
            class_embedding: normal.init([cfg.width], device),
            position_embedding: normal.init([1 + gh * gw, cfg.width], device),
            pos_grid: [gh, gw],
            patch_size: p,
            compute_dtype: FloatDType::F32,
        }
    }

    /// Position embeddings for a `[gh, gw]` patch grid, class position first.
    ///
    /// # Shapes
    /// - output: `[1 + gh*gw, d]`
    pub fn positions(&self, grid: [usize; 2]) -> Tensor<2> {
        let table = self.position_embedding.val(); // [1 + n0, d]
        if grid == self.pos_grid {
            return table;
        }
        let [n, d] = table.dims();
        let cls = table.clone().slice([0..1, 0..d]); // [1, d]
        let patches = table.slice([1..n, 0..d]); // [n0, d]
        Tensor::cat(vec![cls, resize_grid(patches, self.pos_grid, grid)], 0)
    }

    /// Computed in `f32` (the patch convolution and the position table's resize) and returned in
    /// the compute dtype, which every later module of the tower follows.
    ///
    /// # Shapes
    /// - `pixels`: `[b, 3, h, w]` → `[b, 1 + (h/patch)*(w/patch), d]`
    pub fn forward(&self, pixels: Tensor<4>) -> Tensor<3> {
        let x = self.patch_embedding.forward(pixels.cast(FloatDType::F32)); // [b, d, gh, gw]
        let [b, d, gh, gw] = x.dims();
        let x = x.reshape([b, d, gh * gw]).swap_dims(1, 2); // [b, p, d]
        let cls = self.class_embedding.val().reshape([1, 1, d]).repeat_dim(0, b); // [b, 1, d]
        let pos = self.positions([gh, gw]).unsqueeze_dim::<3>(0); // [1, 1+p, d]
        (Tensor::cat(vec![cls, x], 1) + pos).cast(self.compute_dtype)
    }
}
