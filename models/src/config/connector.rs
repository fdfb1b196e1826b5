//! `[model.connector]`: the vision-language connector, a tagged enum (`kind = "..."`).

use serde::{Deserialize, Serialize};

/// `[model.connector]`, chosen by `kind`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ConnectorConfig {
    /// Adaptive average pooling to √M×√M, then a linear projection.
    AvgPool(AvgPoolConfig),
    /// M learned queries cross-attending to the patch features, then a projection.
    AttnPool(AttnPoolConfig),
    /// Honeybee C-Abstractor (RegNet stages around an adaptive pool, MLP readout).
    CAbstractor(CAbstractorConfig),
}

impl Default for ConnectorConfig {
    /// MM1's choice: C-Abstractor with 144 tokens.
    fn default() -> Self {
        Self::CAbstractor(CAbstractorConfig::default())
    }
}

impl ConnectorConfig {
    /// Image tokens per image (M).
    pub fn num_tokens(&self) -> usize {
        match self {
            Self::AvgPool(c) => c.num_tokens,
            Self::AttnPool(c) => c.num_tokens,
            Self::CAbstractor(c) => c.num_tokens,
        }
    }

    /// The `kind` tag as written in TOML.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::AvgPool(_) => "avg_pool",
            Self::AttnPool(_) => "attn_pool",
            Self::CAbstractor(_) => "c_abstractor",
        }
    }
}

/// `kind = "avg_pool"`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AvgPoolConfig {
    /// Image tokens M; must be a perfect square no larger than the patch grid.
    pub num_tokens: usize,
}

impl Default for AvgPoolConfig {
    fn default() -> Self {
        Self { num_tokens: 144 }
    }
}

/// `kind = "attn_pool"`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AttnPoolConfig {
    /// Image tokens M (number of learned queries).
    pub num_tokens: usize,
    /// Attention heads; must divide the vision width.
    pub heads: usize,
}

impl Default for AttnPoolConfig {
    fn default() -> Self {
        Self { num_tokens: 144, heads: 8 }
    }
}

/// `kind = "c_abstractor"` (Honeybee, Cha et al. 2024; MM1 §3.2).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CAbstractorConfig {
    /// Image tokens M; must be a perfect square no larger than the patch grid.
    pub num_tokens: usize,
    /// Channels of the RegNet stages.
    pub hidden: usize,
    /// RegNet bottleneck blocks per stage (MM1: 3).
    pub depth: usize,
    /// Linear layers in the readout MLP (2: Linear → SiLU → Linear).
    pub mlp_depth: usize,
    /// Add a learned positional embedding to the patch features first (Honeybee default).
    pub pos_emb: bool,
}

impl Default for CAbstractorConfig {
    fn default() -> Self {
        Self { num_tokens: 144, hidden: 1024, depth: 3, mlp_depth: 2, pos_emb: true }
    }
}
