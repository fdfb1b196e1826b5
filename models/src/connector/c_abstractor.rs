//! C-Abstractor (Honeybee, Cha et al. 2024, `honeybee/projectors.py::CAbstractor`; MM1's
//! connector of choice): positional embedding, RegNet stage, adaptive average pool to
//! √M×√M, second RegNet stage, MLP readout. Works on any `gh × gw` grid.

use super::regnet::Bottleneck;
use super::{map_to_tokens, tokens_to_map};
use crate::config::{CAbstractorConfig, VisionConfig};
use burn::module::{Initializer, Param};
use burn::nn::pool::{AdaptiveAvgPool2d, AdaptiveAvgPool2dConfig};
use burn::nn::{Linear, LinearConfig};
use burn::prelude::*;
use burn::tensor::activation::silu;
use mm1_kernels::linear_at_input_dtype;

#[derive(Module, Debug)]
pub struct CAbstractor {
    /// `[gh*gw, dv]`, added to the patch features (Honeybee `pos_emb`).
    pub pos_emb: Option<Param<Tensor<2>>>,
    pub stage1: Vec<Bottleneck>,
    pub pool: AdaptiveAvgPool2d,
    pub stage2: Vec<Bottleneck>,
    /// Linear → (SiLU → Linear)*: Honeybee `build_mlp(mlp_depth, hidden, d)`.
    pub readout: Vec<Linear>,
}

impl CAbstractor {
    pub fn new(cfg: &CAbstractorConfig, vision: &VisionConfig, llm_width: usize, device: &Device) -> Self {
        let (dv, hid) = (vision.width, cfg.hidden);
        let side = cfg.num_tokens.isqrt();
        let pos = Initializer::Normal { mean: 0.0, std: 0.02 };
        let readout = (0..cfg.mlp_depth)
            .map(|i| LinearConfig::new(if i == 0 { hid } else { llm_width }, llm_width).init(device))
            .collect();
        Self {
            pos_emb: cfg.pos_emb.then(|| pos.init([vision.num_patches(), dv], device)),
            stage1: (0..cfg.depth)
                .map(|i| Bottleneck::new(if i == 0 { dv } else { hid }, hid, device))
                .collect(),
            pool: AdaptiveAvgPool2dConfig::new([side, side]).init(),
            stage2: (0..cfg.depth).map(|_| Bottleneck::new(hid, hid, device)).collect(),
            readout,
        }
    }

    /// # Shapes
    /// - `x`: `[b, gh*gw, dv]` → `[b, m, d]`
    pub fn forward(&self, x: Tensor<3>, grid: [usize; 2]) -> Tensor<3> {
        let x = match &self.pos_emb {
            Some(pos) => {
                let pos = pos.val().cast(x.dtype()); // [p, dv] at the activations' dtype
                x + pos.unsqueeze_dim::<3>(0) // [b, p, dv]
            }
            None => x,
        };
        let y = tokens_to_map(x, grid); // [b, dv, gh, gw]
        let y = self.stage1.iter().fold(y, |y, blk| blk.forward(y)); // [b, hid, gh, gw]
        let y = self.pool.forward(y); // [b, hid, √m, √m]
        let y = self.stage2.iter().fold(y, |y, blk| blk.forward(y));
        let mut t = map_to_tokens(y); // [b, m, hid]
        for (i, lin) in self.readout.iter().enumerate() {
            t = if i == 0 { linear_at_input_dtype(lin, t) } else { linear_at_input_dtype(lin, silu(t)) };
        }
        t // [b, m, d]
    }
}
