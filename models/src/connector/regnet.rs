//! RegNet bottleneck block with squeeze-excite and LayerNorm2d, as timm's
//! `regnet.Bottleneck` that Honeybee's C-Abstractor stacks (`RegStage(stride=1,
//! act_layer=SiLU, norm_layer=LayerNorm2d)`, bottle_ratio 1, group size 1, se_ratio 0.25).

use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{LayerNorm, LayerNormConfig, PaddingConfig2d};
use burn::prelude::*;
use burn::tensor::activation::{sigmoid, silu};
use mm1_kernels::{conv2d, layer_norm};

/// timm `LayerNorm2d`: LayerNorm over channels of an NCHW map (eps 1e-6 as timm).
#[derive(Module, Debug)]
pub struct LayerNorm2d {
    pub norm: LayerNorm,
}

impl LayerNorm2d {
    pub fn new(channels: usize, device: &Device) -> Self {
        Self { norm: LayerNormConfig::new(channels).with_epsilon(1e-6).init(device) }
    }

    /// # Shapes
    /// - `x`: `[b, c, h, w]` → `[b, c, h, w]`
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let y = layer_norm(&self.norm, x.permute([0, 2, 3, 1])); // [b, h, w, c]
        y.permute([0, 3, 1, 2]) // [b, c, h, w]
    }
}

/// Squeeze-excite: global mean → 1×1 conv → SiLU → 1×1 conv → sigmoid gate.
#[derive(Module, Debug)]
pub struct SqueezeExcite {
    pub fc1: Conv2d,
    pub fc2: Conv2d,
}

impl SqueezeExcite {
    /// # Shapes
    /// - `x`: `[b, c, h, w]` → `[b, c, h, w]`
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let s = x.clone().mean_dim(2).mean_dim(3); // [b, c, 1, 1]
        let s = conv2d(&self.fc2, silu(conv2d(&self.fc1, s))); // [b, c, 1, 1]
        x * sigmoid(s)
    }
}

/// 1×1 conv → LN2d → SiLU → 3×3 depthwise → LN2d → SiLU → SE → 1×1 conv → LN2d,
/// plus the (projected) shortcut, then SiLU.
#[derive(Module, Debug)]
pub struct Bottleneck {
    pub conv1: Conv2d,
    pub norm1: LayerNorm2d,
    pub conv2: Conv2d,
    pub norm2: LayerNorm2d,
    pub se: SqueezeExcite,
    pub conv3: Conv2d,
    pub norm3: LayerNorm2d,
    /// 1×1 conv + LN2d when the channel count changes.
    pub downsample: Option<(Conv2d, LayerNorm2d)>,
}

fn conv(ci: usize, co: usize, k: usize, groups: usize, bias: bool, device: &Device) -> Conv2d {
    Conv2dConfig::new([ci, co], [k, k])
        .with_groups(groups)
        .with_padding(PaddingConfig2d::Explicit(k / 2, k / 2, k / 2, k / 2))
        .with_bias(bias)
        .init(device)
}

impl Bottleneck {
    pub fn new(ci: usize, co: usize, device: &Device) -> Self {
        // timm: rd_channels = round(in_chs * se_ratio).
        let se = ((ci as f64 * 0.25).round() as usize).max(1);
        Self {
            conv1: conv(ci, co, 1, 1, false, device),
            norm1: LayerNorm2d::new(co, device),
            conv2: conv(co, co, 3, co, false, device),
            norm2: LayerNorm2d::new(co, device),
            se: SqueezeExcite {
                fc1: conv(co, se, 1, 1, true, device),
                fc2: conv(se, co, 1, 1, true, device),
            },
            conv3: conv(co, co, 1, 1, false, device),
            norm3: LayerNorm2d::new(co, device),
            downsample: (ci != co).then(|| (conv(ci, co, 1, 1, false, device), LayerNorm2d::new(co, device))),
        }
    }

    /// # Shapes
    /// - `x`: `[b, ci, h, w]` → `[b, co, h, w]`
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let shortcut = match &self.downsample {
            Some((conv, norm)) => norm.forward(conv2d(conv, x.clone())),
            None => x.clone(),
        };
        let y = silu(self.norm1.forward(conv2d(&self.conv1, x)));
        let y = silu(self.norm2.forward(conv2d(&self.conv2, y)));
        let y = self.norm3.forward(conv2d(&self.conv3, self.se.forward(y)));
        silu(y + shortcut)
    }
}
