//! HF `config.json` → this crate's config sections (for imports and the parity tests).

use crate::ModelError;
use crate::config::{Activation, LlmConfig, Size2, VisionConfig};
use serde_json::Value;
use std::path::Path;

/// Read a `config.json` (or the one inside a checkpoint folder).
pub fn read_config_json(path: &Path) -> Result<Value, ModelError> {
    let file = if path.is_dir() { path.join("config.json") } else { path.to_path_buf() };
    let text = std::fs::read_to_string(&file)
        .map_err(|e| ModelError::Io { path: file.display().to_string(), source: e })?;
    serde_json::from_str(&text).map_err(|e| ModelError::Weights(format!("{}: {e}", file.display())))
}

fn num(v: &Value, key: &str) -> Result<f64, ModelError> {
    v[key].as_f64().ok_or_else(|| ModelError::Weights(format!("config.json: missing number \"{key}\"")))
}

fn int(v: &Value, key: &str) -> Result<usize, ModelError> {
    num(v, key).map(|x| x as usize)
}

/// `CLIPVisionConfig` (or a `CLIPConfig`'s `vision_config`) → `[model.vision]`, running at
/// the checkpoint's own resolution with last-layer features.
pub fn vision_from_hf(json: &Value) -> Result<VisionConfig, ModelError> {
    let v = if json["vision_config"].is_object() { &json["vision_config"] } else { json };
    let activation = match v["hidden_act"].as_str().unwrap_or("quick_gelu") {
        "quick_gelu" => Activation::QuickGelu,
        "gelu" => Activation::Gelu,
        other => {
            return Err(ModelError::Weights(format!(
                "config.json: hidden_act \"{other}\" is not supported (quick_gelu, gelu)"
            )));
        }
    };
    Ok(VisionConfig {
        image_size: Size2::square(int(v, "image_size")?),
        patch_size: int(v, "patch_size")?,
        width: int(v, "hidden_size")?,
        layers: int(v, "num_hidden_layers")?,
        heads: int(v, "num_attention_heads")?,
        mlp_dim: int(v, "intermediate_size")?,
        activation,
        layer_norm_eps: v["layer_norm_eps"].as_f64().unwrap_or(1e-5),
        feature_layer: -1,
        pretrained_image_size: None,
    })
}

/// `LlamaConfig` → `[model.llm]` (transformers 4 `rope_theta` or 5 `rope_parameters`).
pub fn llm_from_hf(v: &Value) -> Result<LlmConfig, ModelError> {
    if let Some(act) = v["hidden_act"].as_str().filter(|a| *a != "silu") {
        return Err(ModelError::Weights(format!(
            "config.json: hidden_act \"{act}\" is not supported (silu)"
        )));
    }
    let heads = int(v, "num_attention_heads")?;
    let theta =
        v["rope_theta"].as_f64().or_else(|| v["rope_parameters"]["rope_theta"].as_f64()).unwrap_or(10_000.0);
    Ok(LlmConfig {
        vocab_size: int(v, "vocab_size")?,
        width: int(v, "hidden_size")?,
        layers: int(v, "num_hidden_layers")?,
        heads,
        kv_heads: v["num_key_value_heads"].as_u64().map(|k| k as usize).unwrap_or(heads),
        ffn_dim: int(v, "intermediate_size")?,
        rope_theta: theta,
        rms_norm_eps: v["rms_norm_eps"].as_f64().unwrap_or(1e-6),
        tie_embeddings: v["tie_word_embeddings"].as_bool().unwrap_or(false),
        max_seq_len: v["max_position_embeddings"].as_u64().map(|k| k as usize).unwrap_or(4096),
        moe: None,
    })
}
