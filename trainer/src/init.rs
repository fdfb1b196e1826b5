//! `[model.init]`: a fresh run's weights from pretrained checkpoints (MM1 §3 starts from a
//! pretrained CLIP encoder and a pretrained LLM), and `mm1-train init-config`, which writes the
//! `[model.vision]` / `[model.llm]` sections from the checkpoints' `config.json`.
//!
//! Everything goes through `mm1_models::weights` (sharded safetensors, bf16/f16 on disk,
//! key renaming, MoE upcycling, vocabulary growth); this file only decides what is loaded in
//! which order, checks the settings that shapes cannot reveal, and reports.

use std::path::Path;

use burn::tensor::Device;
use mm1_models::weights::{self, LoadReport};
use mm1_models::{LlmConfig, Mm1Config, Mm1Model, Size2, VisionConfig};

use crate::run::RunError;

fn fail(key: &str, path: &Path, msg: impl std::fmt::Display) -> RunError {
    RunError::Stop(format!("[model.init] {key} = {}: {msg}", path.display()))
}

/// Load what `cfg.init` names into `model` (seeded random initialisation elsewhere):
/// `checkpoint` alone when set (it holds every component; the others are reported as not read),
/// else `vision`, `llm` and `connector`. `say` gets one report per source. Freezing and
/// parameter ids are kept.
pub fn apply(model: Mm1Model, cfg: &Mm1Config, say: &dyn Fn(&str)) -> Result<Mm1Model, RunError> {
    let init = &cfg.init;
    let mut model = model;
    let report = |key: &str, path: &Path, r: &LoadReport| {
        say(&format!("[model.init] {key} = {}: {r}", path.display()));
    };
    if let Some(p) = &init.checkpoint {
        // An mm1 checkpoint holds every component: the other sources would be overwritten.
        for (key, other) in [("vision", &init.vision), ("llm", &init.llm), ("connector", &init.connector)] {
            if let Some(o) = other {
                say(&format!(
                    "[model.init] {key} = {}: not read, checkpoint = {} holds it",
                    o.display(),
                    p.display()
                ));
            }
        }
        let (source, _) =
            crate::generate::load_checkpoint(p, &Device::flex()).map_err(|e| fail("checkpoint", p, e))?;
        let (m, r) = model.import_tensors(&source.export_tensors()).map_err(|e| fail("checkpoint", p, e))?;
        report("checkpoint", p, &r);
        return Ok(m);
    }
    if let Some(p) = &init.vision {
        if let Some(json) = config_json(p) {
            let theirs = weights::vision_from_hf(&json).map_err(|e| fail("vision", p, e))?;
            same_vision(&theirs, &cfg.vision).map_err(|e| fail("vision", p, e))?;
        }
        let (v, r) = weights::load_clip_vision(model.vision, p).map_err(|e| fail("vision", p, e))?;
        report("vision", p, &r);
        model.vision = v;
    }
    if let Some(p) = &init.llm {
        if let Some(json) = config_json(p) {
            let theirs = weights::llm_from_hf(&json).map_err(|e| fail("llm", p, e))?;
            same_llm(&theirs, &cfg.llm).map_err(|e| fail("llm", p, e))?;
        }
        let (l, r) = weights::load_llama(model.llm, p).map_err(|e| fail("llm", p, e))?;
        report("llm", p, &r);
        model.llm = l;
    }
    if let Some(p) = &init.connector {
        let (c, r) = weights::load_connector(model.connector, p).map_err(|e| fail("connector", p, e))?;
        report("connector", p, &r);
        model.connector = c;
    }
    Ok(model)
}

/// The `config.json` beside a checkpoint (in its folder, or next to a file), if there is one.
fn config_json(path: &Path) -> Option<serde_json::Value> {
    let dir = if path.is_dir() { path } else { path.parent()? };
    dir.join("config.json").is_file().then(|| weights::read_config_json(dir).ok()).flatten()
}

/// `name`: checkpoint value vs model value, when they differ.
fn check<T: PartialEq + std::fmt::Debug>(name: &str, theirs: T, ours: T) -> Result<(), String> {
    if theirs != ours {
        return Err(format!("config.json gives {name} = {theirs:?}, the run config has {ours:?}"));
    }
    Ok(())
}

/// Settings a wrong value of which would load without a shape error but compute something else.
fn same_vision(theirs: &VisionConfig, ours: &VisionConfig) -> Result<(), String> {
    let trained_at = ours.pretrained_image_size.unwrap_or(ours.image_size);
    check("image_size (model.vision.pretrained_image_size or image_size)", theirs.image_size, trained_at)?;
    check("model.vision.patch_size", theirs.patch_size, ours.patch_size)?;
    check("model.vision.activation", theirs.activation, ours.activation)?;
    check("model.vision.layer_norm_eps", theirs.layer_norm_eps, ours.layer_norm_eps)?;
    check("model.vision.heads", theirs.heads, ours.heads)
}

fn same_llm(theirs: &LlmConfig, ours: &LlmConfig) -> Result<(), String> {
    check("model.llm.heads", theirs.heads, ours.heads)?;
    check("model.llm.kv_heads", theirs.kv_heads, ours.kv_heads)?;
    check("model.llm.rope_theta", theirs.rope_theta, ours.rope_theta)?;
    check("model.llm.rms_norm_eps", theirs.rms_norm_eps, ours.rms_norm_eps)?;
    check("model.llm.tie_embeddings", theirs.tie_embeddings, ours.tie_embeddings)?;
    if ours.vocab_size < theirs.vocab_size {
        return Err(format!(
            "config.json gives vocab_size = {}, the run config's model.llm.vocab_size {} is smaller",
            theirs.vocab_size, ours.vocab_size
        ));
    }
    Ok(())
}

/// Copy `llm_dir/tokenizer.json` to `out` with those of `specials` it lacks appended as special
/// added tokens (ids after its largest). Returns the new vocabulary size and `(token, id)` added.
pub fn extend_tokenizer(
    llm_dir: &Path,
    out: &Path,
    specials: [&str; 3],
) -> Result<(usize, Vec<(String, u32)>), String> {
    let src = llm_dir.join("tokenizer.json");
    let text = std::fs::read_to_string(&src).map_err(|e| format!("{}: {e}", src.display()))?;
    let mut json: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| format!("{}: {e}", src.display()))?;
    let vocab = json["model"]["vocab"].as_object().cloned().unwrap_or_default();
    let added_now = json["added_tokens"].as_array().cloned().unwrap_or_default();
    let has = |t: &str| vocab.contains_key(t) || added_now.iter().any(|a| a["content"] == t);
    let ids = vocab.values().chain(added_now.iter().map(|a| &a["id"])).filter_map(|v| v.as_u64());
    let first = ids.max().map_or(0, |m| m + 1) as u32;
    let added: Vec<(String, u32)> =
        specials.into_iter().filter(|t| !has(t)).zip(first..).map(|(t, id)| (t.to_string(), id)).collect();
    let mut list = added_now.clone();
    for (t, id) in &added {
        list.push(serde_json::json!({"id": id, "content": t, "single_word": false, "lstrip": false,
            "rstrip": false, "normalized": false, "special": true}));
    }
    json["added_tokens"] = serde_json::Value::Array(list);
    let body = serde_json::to_string_pretty(&json).map_err(|e| e.to_string())?;
    std::fs::write(out, body).map_err(|e| format!("{}: {e}", out.display()))?;
    // The data pipeline's own loader must find the three tokens.
    let tok = mm1_data::TextTokenizer::from_file(out, specials).map_err(|e| e.to_string())?;
    Ok((tok.vocab_size(), added))
}

/// `mm1-train init-config`: the `[model.vision]`, `[model.llm]` and `[model.init]` sections of
/// the given checkpoints as TOML. With `image_size`, the encoder runs at that size and keeps the
/// checkpoint's as `pretrained_image_size` (position table interpolated). With `tokenizer_out`,
/// the LLM's `tokenizer.json` plus the missing image / end-of-chunk / pad tokens (`[data]`'s
/// defaults) is written there and becomes `data.tokenizer`; `model.llm.vocab_size` covers it
/// (the import grows the embedding and head to match). `say` reports the added tokens.
pub fn init_config_toml(
    vision: Option<&Path>,
    llm: Option<&Path>,
    image_size: Option<usize>,
    tokenizer_out: Option<&Path>,
    say: &dyn Fn(&str),
) -> Result<String, String> {
    let mut data = toml::Table::new();
    let mut model = toml::Table::new();
    let mut init = toml::Table::new();
    if let Some(p) = vision {
        let json = weights::read_config_json(p).map_err(|e| e.to_string())?;
        let mut v = weights::vision_from_hf(&json).map_err(|e| format!("{}: {e}", p.display()))?;
        if let Some(s) = image_size.filter(|&s| Size2::square(s) != v.image_size) {
            v.pretrained_image_size = Some(v.image_size);
            v.image_size = Size2::square(s);
        }
        model.insert("vision".into(), section(&v)?);
        init.insert("vision".into(), toml::Value::String(p.display().to_string()));
    }
    if let Some(p) = llm {
        let json = weights::read_config_json(p).map_err(|e| e.to_string())?;
        let mut l = weights::llm_from_hf(&json).map_err(|e| format!("{}: {e}", p.display()))?;
        if let Some(out) = tokenizer_out {
            let d = mm1_data::DataConfig::default();
            let specials = [d.image_token.as_str(), d.end_of_chunk_token.as_str(), d.pad_token.as_str()];
            let (size, added) = extend_tokenizer(p, out, specials)?;
            for (t, id) in &added {
                say(&format!("{}: added {t} as id {id}", out.display()));
            }
            if size > l.vocab_size {
                say(&format!(
                    "model.llm.vocab_size {} -> {size} (embedding and head grow at import)",
                    l.vocab_size
                ));
                l.vocab_size = size;
            }
            data.insert("tokenizer".into(), toml::Value::String(out.display().to_string()));
        }
        model.insert("llm".into(), section(&l)?);
        init.insert("llm".into(), toml::Value::String(p.display().to_string()));
    }
    model.insert("init".into(), toml::Value::Table(init));
    if tokenizer_out.is_some() && llm.is_none() {
        return Err("--tokenizer-out needs --llm DIR".into());
    }
    let mut root = toml::Table::new();
    root.insert("model".into(), toml::Value::Table(model));
    if !data.is_empty() {
        root.insert("data".into(), toml::Value::Table(data));
    }
    toml::to_string(&root).map_err(|e| e.to_string())
}

fn section<T: serde::Serialize>(v: &T) -> Result<toml::Value, String> {
    toml::Value::try_from(v).map_err(|e| e.to_string())
}

/// The LLM's own tokenizer as the run's, as LLaVA loads it from the LLM's folder: when
/// `[model.init] llm` is a folder with a `tokenizer.json`, no `[model.init] checkpoint` is set
/// and no file or `--set` gave `data.tokenizer` (an explicit one wins), that tokenizer plus the
/// missing image / end-of-chunk / pad tokens is written to `run_dir/tokenizer.json` and becomes
/// `data.tokenizer`, and `model.llm.vocab_size` grows to cover it (the import then grows the
/// embedding and head by the mean row). Every rank writes the same bytes (through a file of its
/// own, renamed into place). `None` when the rule does not apply.
pub fn adopt_llm_tokenizer(
    loaded: &crate::config::LoadedConfig,
    run_dir: &Path,
    rank: usize,
    say: &dyn Fn(&str),
) -> Result<Option<crate::config::LoadedConfig>, RunError> {
    let cfg = &loaded.config;
    let Some(llm) = cfg.model.init.llm.as_deref().filter(|p| p.join("tokenizer.json").is_file()) else {
        return Ok(None);
    };
    if cfg.model.init.checkpoint.is_some() || loaded.origin_of("data.tokenizer").is_some() {
        return Ok(None);
    }
    std::fs::create_dir_all(run_dir).map_err(|e| fail("llm", llm, format!("{}: {e}", run_dir.display())))?;
    let out = run_dir.join("tokenizer.json");
    let mine = run_dir.join(format!(".tokenizer.json.rank{rank}"));
    let d = &cfg.data;
    let specials = [d.image_token.as_str(), d.end_of_chunk_token.as_str(), d.pad_token.as_str()];
    let (size, added) = extend_tokenizer(llm, &mine, specials).map_err(|e| fail("llm", llm, e))?;
    std::fs::rename(&mine, &out).map_err(|e| fail("llm", llm, format!("{}: {e}", out.display())))?;
    let added: Vec<String> = added.iter().map(|(t, id)| format!("{t} = {id}")).collect();
    say(&format!(
        "[model.init] llm = {}: its tokenizer.json is the run's ({}; added: {}; data.tokenizer was not set)",
        llm.display(),
        out.display(),
        if added.is_empty() { "none".to_string() } else { added.join(", ") }
    ));
    let mut adopted = loaded.clone();
    adopted.config.data.tokenizer = out;
    let vocab = &mut adopted.config.model.llm.vocab_size;
    if size > *vocab {
        say(&format!(
            "model.llm.vocab_size {vocab} -> {size} to cover it (embedding and head grow at import)"
        ));
        *vocab = size;
    }
    Ok(Some(adopted))
}
