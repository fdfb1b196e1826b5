//! Foreign weights, mapped in one place (torchtitan's `state_dict_adapter`): import of HF
//! `CLIPVisionModel` and `LlamaForCausalLM` safetensors checkpoints (single or sharded;
//! bf16/f16/f32 cast to f32), and export of a whole `Mm1Model` as HF-style safetensors.

mod apply;
mod hf_config;
mod io;
pub mod keymap;

pub use hf_config::{llm_from_hf, read_config_json, vision_from_hf};
pub use io::{HostTensor, f16_to_f32, read_safetensors, write_safetensors};

use crate::ModelError;
use crate::llm::LlmDecoder;
use crate::mm1::Mm1Model;
use crate::vit::VisionTransformer;
use apply::Loader;
use burn::module::Module;
use keymap::Rule;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// What an import did. Missing parameters keep their initial values.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LoadReport {
    /// `(our path, checkpoint key)` of every parameter loaded.
    pub loaded: Vec<(String, String)>,
    /// Our parameters the checkpoint has no tensor for.
    pub missing: Vec<String>,
    /// Checkpoint keys nothing used (excluding `ignored`).
    pub unused: Vec<String>,
    /// Checkpoint keys known to carry nothing this model uses (`post_layernorm`, text tower...).
    pub ignored: Vec<String>,
    /// `(checkpoint rows, model rows)` when the token embedding and head were grown to the
    /// model's `vocab_size` (new rows = mean of the checkpoint's rows).
    pub grown_vocab: Option<(usize, usize)>,
}

impl std::fmt::Display for LoadReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "loaded {} tensors, {} missing, {} unused, {} ignored",
            self.loaded.len(),
            self.missing.len(),
            self.unused.len(),
            self.ignored.len()
        )?;
        if let Some((from, to)) = self.grown_vocab {
            write!(f, "\n  vocabulary grown from {from} to {to} rows (new rows = mean of the old ones)")?;
        }
        if !self.missing.is_empty() {
            write!(f, "\n  missing: {}", self.missing.join(", "))?;
        }
        if !self.unused.is_empty() {
            write!(f, "\n  unused: {}", self.unused.join(", "))?;
        }
        Ok(())
    }
}

/// Load `tensors` (HF keys, `prefix` stripped) into `module` with a renaming table.
/// Parameters of MoE experts with no tensor of their own take the dense FFN's
/// (`mlp.experts.E.x` → `mlp.x`): sparse upcycling from a dense checkpoint.
pub fn load_into<M: Module>(
    module: M,
    tensors: &BTreeMap<String, HostTensor>,
    rules: &[Rule],
    prefix: &str,
) -> Result<(M, LoadReport), ModelError> {
    let mut by_ours: BTreeMap<String, (String, HostTensor)> = BTreeMap::new();
    let mut report = LoadReport::default();
    for (key, t) in tensors {
        let short = key.strip_prefix(prefix).unwrap_or(key);
        // An empty table means our own paths (the connector).
        let mapped =
            if rules.is_empty() { Some((short.to_string(), false)) } else { keymap::to_ours(rules, short) };
        match mapped {
            Some((ours, transpose)) => {
                by_ours.insert(ours, (key.clone(), if transpose { transposed(t, key)? } else { t.clone() }));
            }
            None if keymap::ignorable(key) => report.ignored.push(key.clone()),
            None => report.unused.push(key.clone()),
        }
    }
    let lookup = |ours: &str| {
        by_ours.get(ours).or_else(|| by_ours.get(&dense_of_expert(ours)?)).map(|(k, t)| (k.clone(), t))
    };
    let mut loader = Loader::new(lookup);
    let module = module.map(&mut loader);
    if let Some(e) = loader.error {
        return Err(ModelError::Weights(e));
    }
    let used: BTreeSet<&String> = loader.loaded.iter().map(|(_, k)| k).collect();
    report.unused.extend(by_ours.values().map(|(k, _)| k).filter(|k| !used.contains(k)).cloned());
    report.unused.sort();
    report.loaded = loader.loaded;
    report.missing = loader.missing;
    Ok((module, report))
}

/// `layers.3.mlp.Moe.experts.7.up_proj.weight` → `layers.3.mlp.Dense.up_proj.weight`.
fn dense_of_expert(ours: &str) -> Option<String> {
    let (head, tail) = ours.split_once(".mlp.Moe.experts.")?;
    let (_, rest) = tail.split_once('.')?;
    Some(format!("{head}.mlp.Dense.{rest}"))
}

fn transposed(t: &HostTensor, key: &str) -> Result<HostTensor, ModelError> {
    let [r, c] = t.shape[..] else {
        return Err(ModelError::Weights(format!(
            "{key}: expected a 2-D linear weight, got shape {:?}",
            t.shape
        )));
    };
    let mut data = vec![0.0; r * c];
    for i in 0..r {
        for j in 0..c {
            data[j * r + i] = t.data[i * c + j];
        }
    }
    Ok(HostTensor { shape: vec![c, r], data })
}

/// Load a HF `CLIPVisionModel` (or full `CLIPModel`) checkpoint into the vision tower.
pub fn load_clip_vision(
    vit: VisionTransformer,
    path: &Path,
) -> Result<(VisionTransformer, LoadReport), ModelError> {
    let tensors = read_safetensors(path)?;
    load_into(vit, &tensors, keymap::CLIP_VISION, "vision_model.")
}

/// Load a HF `LlamaForCausalLM` checkpoint into the decoder (a tied checkpoint into an
/// untied model leaves `lm_head` missing: tie the config instead). A model whose
/// `vocab_size` exceeds the checkpoint's (tokens added to its tokenizer) gets the checkpoint's
/// rows followed by their mean in the embedding and the head, as LLaVA initialises added tokens.
pub fn load_llama(llm: LlmDecoder, path: &Path) -> Result<(LlmDecoder, LoadReport), ModelError> {
    let mut tensors = read_safetensors(path)?;
    let want = llm.embed_tokens.weight.lazy_shape().dims::<2>()[0];
    let mut grown = None;
    for key in ["model.embed_tokens.weight", "lm_head.weight"] {
        if let Some(t) = tensors.get_mut(key) {
            grown = grow_rows(t, want, key)?.or(grown);
        }
    }
    let (llm, mut report) = load_into(llm, &tensors, keymap::LLAMA, "")?;
    report.grown_vocab = grown;
    Ok((llm, report))
}

/// Append rows equal to the mean of `t`'s rows until it has `rows` (`[v, d]`, v <= rows).
/// Fewer rows than the checkpoint is left to the shape check, which names both shapes.
fn grow_rows(t: &mut HostTensor, rows: usize, key: &str) -> Result<Option<(usize, usize)>, ModelError> {
    let [v, d] = t.shape[..] else {
        return Err(ModelError::Weights(format!("{key}: expected [vocab, width], got shape {:?}", t.shape)));
    };
    if v == 0 || v >= rows {
        return Ok(None);
    }
    let mut mean = vec![0.0f64; d];
    for row in t.data.chunks_exact(d) {
        mean.iter_mut().zip(row).for_each(|(m, x)| *m += *x as f64);
    }
    let mean: Vec<f32> = mean.iter().map(|m| (m / v as f64) as f32).collect();
    for _ in v..rows {
        t.data.extend_from_slice(&mean);
    }
    t.shape[0] = rows;
    Ok(Some((v, rows)))
}

/// Load connector weights: keys under `connector.` (an `mm1-train export` file) or, when the
/// file has none, bare parameter paths of this crate.
pub fn load_connector(
    connector: crate::connector::Connector,
    path: &Path,
) -> Result<(crate::connector::Connector, LoadReport), ModelError> {
    let tensors = read_safetensors(path)?;
    let prefixed = tensors.keys().any(|k| k.starts_with("connector."));
    let own: BTreeMap<String, HostTensor> = if prefixed {
        tensors.into_iter().filter(|(k, _)| k.starts_with("connector.")).collect()
    } else {
        tensors
    };
    load_into(connector, &own, &[], "connector.")
}

impl Mm1Model {
    /// Import HF weights into the vision tower and/or the LLM; freezing is preserved.
    pub fn load_hf(
        mut self,
        clip_vision: Option<&Path>,
        llama: Option<&Path>,
    ) -> Result<(Self, Vec<LoadReport>), ModelError> {
        let mut reports = Vec::new();
        if let Some(p) = clip_vision {
            let (v, r) = load_clip_vision(self.vision, p)?;
            self.vision = v;
            reports.push(r);
        }
        if let Some(p) = llama {
            let (l, r) = load_llama(self.llm, p)?;
            self.llm = l;
            reports.push(r);
        }
        Ok((self, reports))
    }

    /// All weights as HF-style tensors: `vision_model.*` (CLIP keys), `model.*`/`lm_head.*`
    /// (Llama keys; MoE as `mlp.router`/`mlp.experts.E.*`), `connector.*` (our paths).
    pub fn export_tensors(&self) -> BTreeMap<String, HostTensor> {
        let mut out = BTreeMap::new();
        let parts = [
            (apply::collect(&self.vision), keymap::CLIP_VISION, "vision_model."),
            (apply::collect(&self.llm), keymap::LLAMA, ""),
        ];
        for (tensors, rules, prefix) in parts {
            for (ours, t) in tensors {
                match keymap::to_hf(rules, &ours) {
                    Some((hf, true)) => {
                        out.insert(format!("{prefix}{hf}"), transposed(&t, &ours).unwrap_or(t))
                    }
                    Some((hf, false)) => out.insert(format!("{prefix}{hf}"), t),
                    None => out.insert(format!("{prefix}{ours}"), t),
                };
            }
        }
        for (ours, t) in apply::collect(&self.connector) {
            out.insert(format!("connector.{ours}"), t);
        }
        out
    }

    /// Write [`Mm1Model::export_tensors`] as one f32 safetensors file.
    pub fn export_safetensors(&self, path: &Path) -> Result<usize, ModelError> {
        let tensors = self.export_tensors();
        write_safetensors(path, &tensors)?;
        Ok(tensors.len())
    }

    /// Load a file written by [`Mm1Model::export_safetensors`] back (all components).
    pub fn import_safetensors(self, path: &Path) -> Result<(Self, LoadReport), ModelError> {
        self.import_tensors(&read_safetensors(path)?)
    }

    /// Load [`Mm1Model::export_tensors`]' output (of this or another model of the same shapes).
    pub fn import_tensors(
        mut self,
        tensors: &BTreeMap<String, HostTensor>,
    ) -> Result<(Self, LoadReport), ModelError> {
        let (v, rv) = load_into(self.vision, tensors, keymap::CLIP_VISION, "vision_model.")?;
        let (l, rl) = load_into(self.llm, tensors, keymap::LLAMA, "")?;
        let conn: BTreeMap<String, HostTensor> = tensors
            .iter()
            .filter_map(|(k, t)| Some((k.strip_prefix("connector.")?.to_string(), t.clone())))
            .collect();
        let (c, rc) = load_into(self.connector, &conn, &[], "")?;
        (self.vision, self.llm, self.connector) = (v, l, c);
        let loaded = [rv.loaded, rl.loaded, rc.loaded].concat();
        let missing = [rv.missing, rl.missing, rc.missing].concat();
        let keys: BTreeSet<&String> = loaded.iter().map(|(_, k)| k).collect();
        let unused =
            tensors.keys().filter(|k| !keys.contains(k) && !k.starts_with("connector.")).cloned().collect();
        Ok((self, LoadReport { loaded, missing, unused, ..Default::default() }))
    }
}
