//! `mm1-train generate`: greedy or sampled decoding with a KV cache, from a checkpoint,
//! given images and a prompt. The prompt is laid out like a caption sample: each image's
//! `num_image_tokens` placeholders first, then the prompt text.

use burn::module::Module;
use burn::tensor::{Bool, Device, Int, Tensor, TensorData};
use mm1_models::{DecodeCache, Mm1Input, Mm1Model};
use rand::{Rng, SeedableRng};

use crate::step::StepError;

/// Decoding settings.
#[derive(Debug, Clone, PartialEq)]
pub struct GenerateOptions {
    pub max_new_tokens: usize,
    /// `0` decodes greedily (argmax); otherwise logits are divided by it before sampling.
    pub temperature: f64,
    /// Sample among the `top_k` most likely tokens (`0`: all).
    pub top_k: usize,
    pub seed: u64,
    /// Token ids that end generation (emitted, then stop).
    pub stop_ids: Vec<u32>,
    /// Reuse keys/values of earlier tokens (the normal path); `false` recomputes the whole
    /// sequence every token (reference path, used by the tests).
    pub kv_cache: bool,
}

impl Default for GenerateOptions {
    fn default() -> Self {
        Self { max_new_tokens: 32, temperature: 0.0, top_k: 0, seed: 0, stop_ids: Vec::new(), kv_cache: true }
    }
}

fn input(
    tokens: &[u32],
    mask: &[bool],
    start: usize,
    images: Option<Tensor<4>>,
    device: &Device,
) -> Mm1Input {
    let t = tokens.len();
    let ints = |v: Vec<i64>| Tensor::<2, Int>::from_data(TensorData::new(v, [1, t]), device);
    Mm1Input {
        tokens: ints(tokens.iter().map(|&x| x as i64).collect()),
        image_mask: Tensor::<2, Bool>::from_data(TensorData::new(mask.to_vec(), [1, t]), device),
        segment_ids: ints(vec![1; t]),
        position_ids: ints((start..start + t).map(|p| p as i64).collect()),
        images,
    }
}

/// Pick the next token from the logits of the last position (`[vocab]`).
fn pick(logits: Vec<f32>, opts: &GenerateOptions, rng: &mut rand_chacha::ChaCha8Rng) -> u32 {
    if opts.temperature <= 0.0 {
        // First maximum, as torch.argmax.
        let mut best = 0;
        for (i, &l) in logits.iter().enumerate() {
            if l > logits[best] {
                best = i;
            }
        }
        return best as u32;
    }
    let mut idx: Vec<usize> = (0..logits.len()).collect();
    idx.sort_by(|&a, &b| logits[b].total_cmp(&logits[a]));
    if opts.top_k > 0 {
        idx.truncate(opts.top_k);
    }
    let max = logits[idx[0]] as f64;
    let w: Vec<f64> = idx.iter().map(|&i| ((logits[i] as f64 - max) / opts.temperature).exp()).collect();
    let mut r = rng.random_range(0.0..w.iter().sum::<f64>());
    for (k, &wi) in w.iter().enumerate() {
        if r < wi {
            return idx[k] as u32;
        }
        r -= wi;
    }
    idx[idx.len() - 1] as u32
}

fn last_logits(logits: Tensor<3>) -> Vec<f32> {
    let [_, t, v] = logits.dims();
    logits.slice([0..1, t - 1..t, 0..v]).reshape([v]).into_data().iter::<f32>().collect()
}

/// Continue `prompt` (with `image_mask` true at image placeholders and `images` `[n, 3, h, w]`
/// in placeholder order). Returns the new token ids only.
pub fn generate_ids(
    model: &Mm1Model,
    prompt: &[u32],
    image_mask: &[bool],
    images: Option<Tensor<4>>,
    opts: &GenerateOptions,
    device: &Device,
) -> Result<Vec<u32>, StepError> {
    if prompt.is_empty() || prompt.len() != image_mask.len() {
        return Err(StepError::Batch {
            index: 0,
            msg: format!(
                "prompt has {} tokens and {} mask entries (need equal, > 0)",
                prompt.len(),
                image_mask.len()
            ),
        });
    }
    let model = model.valid();
    let device = device.clone().inner();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(opts.seed);
    let mut out = Vec::new();
    let mut seq: Vec<u32> = prompt.to_vec();
    let mut mask: Vec<bool> = image_mask.to_vec();
    // 1. prefill
    let (o, mut cache): (_, Option<DecodeCache>) = if opts.kv_cache {
        let (o, c) = model.forward_cached(input(prompt, image_mask, 0, images.clone(), &device), None)?;
        (o, Some(c))
    } else {
        (model.forward(input(prompt, image_mask, 0, images.clone(), &device))?, None)
    };
    let mut logits = last_logits(o.logits);
    // 2. one token at a time
    for _ in 0..opts.max_new_tokens {
        let next = pick(logits, opts, &mut rng);
        out.push(next);
        if opts.stop_ids.contains(&next) || out.len() == opts.max_new_tokens {
            break;
        }
        seq.push(next);
        mask.push(false);
        logits = match cache.take() {
            Some(c) => {
                let (o, c) =
                    model.forward_cached(input(&[next], &[false], seq.len() - 1, None, &device), Some(c))?;
                cache = Some(c);
                last_logits(o.logits)
            }
            None => last_logits(model.forward(input(&seq, &mask, 0, images.clone(), &device))?.logits),
        };
    }
    Ok(out)
}

/// Errors of the `generate` / `export` commands.
#[derive(Debug, thiserror::Error)]
pub enum GenerateError {
    #[error("{0}")]
    Checkpoint(#[from] crate::checkpoint::CheckpointError),
    #[error("{path}: {msg}")]
    File { path: std::path::PathBuf, msg: String },
    #[error(transparent)]
    Step(#[from] StepError),
    #[error("model: {0}")]
    Model(#[from] mm1_models::ModelError),
    #[error("data: {0}")]
    Data(#[from] mm1_data::DataError),
}

/// The model and run config of a checkpoint folder, or of the newest checkpoint of a run folder.
pub fn load_checkpoint(
    path: &std::path::Path,
    device: &Device,
) -> Result<(Mm1Model, crate::config::RunConfig), GenerateError> {
    use crate::checkpoint::{CheckpointDir, load_model_file};
    let dir = if path.join("state.json").is_file() {
        crate::checkpoint::Manifest::verify(path)
            .map_err(|msg| GenerateError::File { path: path.to_path_buf(), msg })?;
        path.to_path_buf()
    } else {
        CheckpointDir::new(path.join("checkpoints"), 0)
            .latest()?
            .ok_or_else(|| GenerateError::File {
                path: path.to_path_buf(),
                msg: "neither a checkpoint folder nor a run folder with a complete checkpoint".into(),
            })?
            .path
    };
    let cfg_path = dir.join("config.toml");
    let text = std::fs::read_to_string(&cfg_path)
        .map_err(|e| GenerateError::File { path: cfg_path.clone(), msg: e.to_string() })?;
    let cfg: crate::config::RunConfig =
        toml::from_str(&text).map_err(|e| GenerateError::File { path: cfg_path, msg: e.to_string() })?;
    let model = load_model_file(cfg.model.init(device)?, &dir.join("model.bpk"))?;
    Ok((model, cfg))
}

/// `mm1-train generate`: decode from a checkpoint and return the generated text.
pub fn generate_from_checkpoint(
    path: &std::path::Path,
    prompt: &str,
    images: &[std::path::PathBuf],
    opts: &GenerateOptions,
) -> Result<String, GenerateError> {
    let device = Device::flex();
    let (model, cfg) = load_checkpoint(path, &device)?;
    let tok = mm1_data::TextTokenizer::load(&cfg.data)?;
    let size = cfg.model.image_size()[0];
    let m = cfg.model.num_image_tokens();
    let mut pixels = Vec::new();
    for p in images {
        let bytes =
            std::fs::read(p).map_err(|e| GenerateError::File { path: p.clone(), msg: e.to_string() })?;
        let img =
            mm1_data::image::preprocess(&bytes, size, cfg.data.resize, cfg.data.max_image_pixels).map_err(
                |e| GenerateError::File { path: p.clone(), msg: format!("{:?}: {}", e.reason, e.detail) },
            )?;
        pixels.extend(img);
    }
    let mut ids = vec![tok.image_id; m * images.len()];
    let mut mask = vec![true; ids.len()];
    let text =
        tok.encode(prompt).map_err(|msg| GenerateError::File { path: cfg.data.tokenizer.clone(), msg })?;
    mask.extend(std::iter::repeat_n(false, text.len()));
    ids.extend(text);
    let images = (!images.is_empty())
        .then(|| Tensor::<4>::from_data(TensorData::new(pixels, [images.len(), 3, size, size]), &device));
    let opts = GenerateOptions { stop_ids: vec![tok.end_of_chunk_id], ..opts.clone() };
    let out = generate_ids(&model, &ids, &mask, images, &opts, &device)?;
    tok.decode(&out).map_err(|msg| GenerateError::File { path: cfg.data.tokenizer.clone(), msg })
}

/// `mm1-train export`: weights only, HF-style names, safetensors (via the models crate).
pub fn export_checkpoint(path: &std::path::Path, out: &std::path::Path) -> Result<usize, GenerateError> {
    let (model, _) = load_checkpoint(path, &Device::flex())?;
    Ok(model.export_safetensors(out)?)
}
