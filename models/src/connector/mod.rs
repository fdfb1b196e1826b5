//! Vision-language connectors (MM1 §3.2): patch features `[b, p, dv]` on a `gh × gw` grid
//! → `num_tokens` image tokens of the LLM width. MM1 finds the number of tokens and the
//! resolution matter far more than the connector type; all three are here for ablations.

mod attn_pool;
mod avg_pool;
mod c_abstractor;
mod regnet;

pub use attn_pool::AttnPool;
pub use avg_pool::AvgPool;
pub use c_abstractor::CAbstractor;
pub use regnet::{Bottleneck, LayerNorm2d, SqueezeExcite};

use crate::config::{ConnectorConfig, VisionConfig};
use burn::prelude::*;

/// The configured connector (`kind` matched once, here).
// One value per model, built once: variant size does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Module, Debug)]
pub enum Connector {
    AvgPool(AvgPool),
    AttnPool(AttnPool),
    CAbstractor(CAbstractor),
}

impl Connector {
    /// Build from `[model.connector]`; `vision` gives the input width and grid.
    pub fn new(cfg: &ConnectorConfig, vision: &VisionConfig, llm_width: usize, device: &Device) -> Self {
        match cfg {
            ConnectorConfig::AvgPool(c) => Self::AvgPool(AvgPool::new(c, vision.width, llm_width, device)),
            ConnectorConfig::AttnPool(c) => Self::AttnPool(AttnPool::new(c, vision.width, llm_width, device)),
            ConnectorConfig::CAbstractor(c) => {
                Self::CAbstractor(CAbstractor::new(c, vision, llm_width, device))
            }
        }
    }

    /// At `x`'s dtype (`bf16` under mixed precision: the parameters cast at use, the norms
    /// computed in `f32`).
    ///
    /// # Shapes
    /// - `x`: `[b, gh*gw, dv]` (row-major grid) → `[b, m, d]`
    pub fn forward(&self, x: Tensor<3>, grid: [usize; 2]) -> Tensor<3> {
        match self {
            Self::AvgPool(c) => c.forward(x, grid),
            Self::AttnPool(c) => c.forward(x),
            Self::CAbstractor(c) => c.forward(x, grid),
        }
    }
}

/// `[b, gh*gw, c]` tokens → `[b, c, gh, gw]` feature map.
pub(crate) fn tokens_to_map(x: Tensor<3>, [gh, gw]: [usize; 2]) -> Tensor<4> {
    let [b, p, c] = x.dims();
    assert_eq!(p, gh * gw, "patch tokens ({p}) != grid {gh}x{gw}");
    x.swap_dims(1, 2).reshape([b, c, gh, gw]) // [b, c, gh, gw]
}

/// `[b, c, h, w]` feature map → `[b, h*w, c]` tokens (row-major).
pub(crate) fn map_to_tokens(x: Tensor<4>) -> Tensor<3> {
    let [b, c, h, w] = x.dims();
    x.reshape([b, c, h * w]).swap_dims(1, 2) // [b, h*w, c]
}
