//! `mm1-train export --format hf`: a checkpoint as folders that transformers' `from_pretrained`
//! loads as they are (LLaVA's "save the towers back" step):
//!
//! - `vision/`: `config.json` + `model.safetensors` of a `CLIPVisionModel` with the blocks this
//!   model holds (`num_hidden_layers` = the blocks up to `feature_layer`, so its
//!   `last_hidden_state` is the connector's input, class token included). HF's
//!   `post_layernorm` only feeds the pooled output, which MM1 never trains: it is not written,
//!   and transformers reports it as newly initialised.
//! - `llm/`: `config.json` + `model.safetensors` (+ the run's `tokenizer.json`) of a
//!   `LlamaForCausalLM`. A mixture-of-experts decoder has no such form and is refused.
//! - `connector.safetensors` (this crate's names) and `mm1-config.toml` (the run's config), so
//!   that nothing of the checkpoint is lost.
//!
//! Weights are written in f32 (the training's master weights); `config.json` says so.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use mm1_models::config::{Activation, LlmConfig, VisionConfig};
use mm1_models::weights::{HostTensor, write_safetensors};
use serde_json::{Value, json};

use crate::generate::{GenerateError, load_checkpoint};

/// What [`export_hf`] wrote.
#[derive(Debug, Clone, PartialEq)]
pub struct HfExport {
    pub vision_tensors: usize,
    pub llm_tensors: usize,
    pub connector_tensors: usize,
    /// The run's tokenizer, copied into `llm/` (`None` when its file was not found).
    pub tokenizer: Option<PathBuf>,
}

/// Write the checkpoint at `checkpoint` (a checkpoint folder or a run folder) under `out`.
pub fn export_hf(checkpoint: &Path, out: &Path) -> Result<HfExport, GenerateError> {
    let (model, cfg) = load_checkpoint(checkpoint, &burn::tensor::Device::flex())?;
    let refuse = |msg: String| GenerateError::File { path: checkpoint.to_path_buf(), msg };
    if cfg.model.llm.moe.is_some() {
        return Err(refuse(
            "model.llm.moe is set: a mixture-of-experts decoder has no LlamaForCausalLM form; \
             export it with --format mm1"
                .into(),
        ));
    }
    let vision_json = clip_vision_config(&cfg.model.vision, model.vision.layers.len()).map_err(refuse)?;
    let (vision, llm, connector) = split(model.export_tensors());

    let write = |dir: &str, config: Option<&Value>, file: &str, tensors: &BTreeMap<String, HostTensor>| {
        let dir = out.join(dir);
        std::fs::create_dir_all(&dir)
            .map_err(|e| GenerateError::File { path: dir.clone(), msg: e.to_string() })?;
        if let Some(config) = config {
            let text = serde_json::to_string_pretty(config).expect("a JSON value prints") + "\n";
            let path = dir.join("config.json");
            std::fs::write(&path, text).map_err(|e| GenerateError::File { path, msg: e.to_string() })?;
        }
        write_safetensors(&dir.join(file), tensors).map_err(GenerateError::from)
    };
    write("vision", Some(&vision_json), "model.safetensors", &vision)?;
    write("llm", Some(&llama_config(&cfg.model.llm)), "model.safetensors", &llm)?;
    write(".", None, "connector.safetensors", &connector)?;
    let config = out.join("mm1-config.toml");
    let text = cfg.to_resolved_toml().map_err(|e| refuse(e.to_string()))?;
    std::fs::write(&config, text).map_err(|e| GenerateError::File { path: config, msg: e.to_string() })?;
    let tokenizer = cfg.data.tokenizer.is_file().then(|| cfg.data.tokenizer.clone());
    if let Some(t) = &tokenizer {
        copy(t, &out.join("llm/tokenizer.json"))?;
    }
    Ok(HfExport {
        vision_tensors: vision.len(),
        llm_tensors: llm.len(),
        connector_tensors: connector.len(),
        tokenizer,
    })
}

type Tensors = BTreeMap<String, HostTensor>;

/// `export_tensors`' one map → (vision without its `vision_model.` prefix: CLIPVisionModel's
/// own keys keep it, so it stays), LLM, connector (prefix dropped).
fn split(all: Tensors) -> (Tensors, Tensors, Tensors) {
    let (mut vision, mut llm, mut connector) = (Tensors::new(), Tensors::new(), Tensors::new());
    for (k, t) in all {
        if k.starts_with("vision_model.") {
            vision.insert(k, t);
        } else if let Some(rest) = k.strip_prefix("connector.") {
            connector.insert(rest.to_string(), t);
        } else {
            llm.insert(k, t);
        }
    }
    (vision, llm, connector)
}

/// `CLIPVisionConfig` of the encoder as this model holds it (`blocks` of them).
fn clip_vision_config(v: &VisionConfig, blocks: usize) -> Result<Value, String> {
    if v.image_size.h != v.image_size.w {
        return Err(format!(
            "model.vision.image_size {}x{} is not square: CLIPVisionConfig has one image_size",
            v.image_size.h, v.image_size.w
        ));
    }
    let act = match v.activation {
        Activation::QuickGelu => "quick_gelu",
        Activation::Gelu => "gelu",
    };
    Ok(json!({
        "architectures": ["CLIPVisionModel"],
        "model_type": "clip_vision_model",
        "dtype": "float32",
        "hidden_size": v.width,
        "intermediate_size": v.mlp_dim,
        "num_hidden_layers": blocks,
        "num_attention_heads": v.heads,
        "num_channels": 3,
        "image_size": v.image_size.h,
        "patch_size": v.patch_size,
        "hidden_act": act,
        "layer_norm_eps": v.layer_norm_eps,
        "attention_dropout": 0.0,
    }))
}

/// `LlamaConfig` of a dense decoder; RoPE's base both as transformers 5 (`rope_parameters`)
/// and 4 (`rope_theta`) read it.
fn llama_config(l: &LlmConfig) -> Value {
    json!({
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "dtype": "float32",
        "vocab_size": l.vocab_size,
        "hidden_size": l.width,
        "intermediate_size": l.ffn_dim,
        "num_hidden_layers": l.layers,
        "num_attention_heads": l.heads,
        "num_key_value_heads": l.kv_heads,
        "head_dim": l.head_dim(),
        "hidden_act": "silu",
        "max_position_embeddings": l.max_seq_len,
        "rms_norm_eps": l.rms_norm_eps,
        "rope_theta": l.rope_theta,
        "rope_parameters": { "rope_type": "default", "rope_theta": l.rope_theta },
        "tie_word_embeddings": l.tie_embeddings,
        "attention_bias": false,
        "mlp_bias": false,
    })
}

fn copy(from: &Path, to: &Path) -> Result<(), GenerateError> {
    std::fs::copy(from, to).map(|_| ()).map_err(|e| GenerateError::File {
        path: from.to_path_buf(),
        msg: format!("copy to {}: {e}", to.display()),
    })
}
