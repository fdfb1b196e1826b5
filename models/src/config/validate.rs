//! Cross-field checks of `[model]`, run by `Mm1Config::init` before allocation.
//! Every message names the TOML key and both numbers.

use super::{ConnectorConfig, LlmConfig, Mm1Config, MoeConfig, VisionConfig};
use crate::ModelError;

fn fail(msg: String) -> Result<(), ModelError> {
    Err(ModelError::Config(msg))
}

fn positive(key: &str, v: usize) -> Result<(), ModelError> {
    if v == 0 {
        return fail(format!("{key} must be > 0 (got 0)"));
    }
    Ok(())
}

fn divides(key: &str, num: usize, den_key: &str, den: usize) -> Result<(), ModelError> {
    if den == 0 || !num.is_multiple_of(den) {
        return fail(format!("{key} ({num}) must be divisible by {den_key} ({den})"));
    }
    Ok(())
}

impl Mm1Config {
    /// Check every constraint within and between components.
    pub fn validate(&self) -> Result<(), ModelError> {
        self.vision.validate()?;
        self.llm.validate()?;
        let [gh, gw] = self.vision.grid();
        match &self.connector {
            ConnectorConfig::AvgPool(c) => square_pool("avg_pool", c.num_tokens, gh, gw),
            ConnectorConfig::CAbstractor(c) => {
                positive("model.connector.hidden", c.hidden)?;
                positive("model.connector.depth", c.depth)?;
                positive("model.connector.mlp_depth", c.mlp_depth)?;
                square_pool("c_abstractor", c.num_tokens, gh, gw)
            }
            ConnectorConfig::AttnPool(c) => {
                positive("model.connector.num_tokens", c.num_tokens)?;
                positive("model.connector.heads", c.heads)?;
                divides("model.vision.width", self.vision.width, "model.connector.heads", c.heads)
            }
        }
    }
}

/// M must be a perfect square whose side fits inside the `gh × gw` patch grid.
fn square_pool(kind: &str, m: usize, gh: usize, gw: usize) -> Result<(), ModelError> {
    positive("model.connector.num_tokens", m)?;
    let side = m.isqrt();
    if side * side != m {
        return fail(format!(
            "{kind}: model.connector.num_tokens ({m}) must be a perfect square (nearest: {} or {})",
            side * side,
            (side + 1) * (side + 1)
        ));
    }
    if side > gh || side > gw {
        return fail(format!(
            "{kind}: pool grid {side}x{side} (num_tokens {m}) is larger than the patch grid {gh}x{gw}"
        ));
    }
    Ok(())
}

impl VisionConfig {
    pub fn validate(&self) -> Result<(), ModelError> {
        positive("model.vision.patch_size", self.patch_size)?;
        positive("model.vision.width", self.width)?;
        positive("model.vision.heads", self.heads)?;
        positive("model.vision.mlp_dim", self.mlp_dim)?;
        positive("model.vision.layers", self.layers)?;
        let p = self.patch_size;
        let sizes =
            [("image_size", Some(self.image_size)), ("pretrained_image_size", self.pretrained_image_size)];
        for (key, size) in sizes {
            let Some(s) = size else { continue };
            for (side, v) in [("height", s.h), ("width", s.w)] {
                if v < p || v % p != 0 {
                    return fail(format!(
                        "model.vision.{key} {side} ({v}) must be a positive multiple of model.vision.patch_size ({p})"
                    ));
                }
            }
        }
        divides("model.vision.width", self.width, "model.vision.heads", self.heads)?;
        if self.feature_depth().is_none() {
            return fail(format!(
                "model.vision.feature_layer ({}) is outside -{}..={} for {} layers",
                self.feature_layer,
                self.layers + 1,
                self.layers,
                self.layers
            ));
        }
        Ok(())
    }
}

impl LlmConfig {
    pub fn validate(&self) -> Result<(), ModelError> {
        positive("model.llm.vocab_size", self.vocab_size)?;
        positive("model.llm.width", self.width)?;
        positive("model.llm.layers", self.layers)?;
        positive("model.llm.heads", self.heads)?;
        positive("model.llm.kv_heads", self.kv_heads)?;
        positive("model.llm.ffn_dim", self.ffn_dim)?;
        positive("model.llm.max_seq_len", self.max_seq_len)?;
        divides("model.llm.width", self.width, "model.llm.heads", self.heads)?;
        divides("model.llm.heads", self.heads, "model.llm.kv_heads", self.kv_heads)?;
        if !self.head_dim().is_multiple_of(2) {
            return fail(format!(
                "rotary embedding needs an even head dim: model.llm.width ({}) / model.llm.heads ({}) = {}",
                self.width,
                self.heads,
                self.head_dim()
            ));
        }
        if !(self.rope_theta > 0.0 && self.rms_norm_eps > 0.0) {
            return fail(format!(
                "model.llm.rope_theta ({}) and model.llm.rms_norm_eps ({}) must be > 0",
                self.rope_theta, self.rms_norm_eps
            ));
        }
        match &self.moe {
            Some(moe) => moe.validate(self.layers),
            None => Ok(()),
        }
    }
}

impl MoeConfig {
    pub fn validate(&self, layers: usize) -> Result<(), ModelError> {
        positive("model.llm.moe.num_experts", self.num_experts)?;
        positive("model.llm.moe.top_k", self.top_k)?;
        positive("model.llm.moe.every", self.every)?;
        if self.top_k > self.num_experts {
            return fail(format!(
                "model.llm.moe.top_k ({}) exceeds model.llm.moe.num_experts ({})",
                self.top_k, self.num_experts
            ));
        }
        if self.every > layers {
            return fail(format!(
                "model.llm.moe.every ({}) exceeds model.llm.layers ({layers}): no layer would be MoE",
                self.every
            ));
        }
        if !(self.capacity_factor >= 0.0 && self.capacity_factor.is_finite()) {
            return fail(format!(
                "model.llm.moe.capacity_factor ({}) must be >= 0 (0 = unlimited)",
                self.capacity_factor
            ));
        }
        Ok(())
    }
}
