//! Synthetic benchmark data (`mm1-data synth`, `mm1_data::synth::generate`): WebDataset shards of
//! all three sample kinds, held-out VQA and captioning sets with ground truth, and a byte-level
//! BPE `tokenizer.json` trained on the generated text. Images are rendered at a native resolution
//! with coloured shapes in a 3x3 grid and a short string in an 8x8 bitmap font at several sizes,
//! so counting, colour, position and reading questions have exact answers and reading the
//! smallest text needs resolution. Half the images are instead gated scenes (`gated.rs`: stripes
//! that need resolution and their control, a coloured row whose place needs image tokens and
//! whose colour is its control), stored as PNG.
//! Deterministic: the same config gives the same bytes.
//! File formats: docs/data.md "Synthetic benchmark".

mod gated;
mod render;
mod scene;
mod tar_out;

use std::path::{Path, PathBuf};

use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::config::{SampleKind, SourceConfig};
use crate::error::{DataError, Result};
use crate::rng::Rng;
pub use gated::{GATED_TASKS, GatedScene, GatedTask, ROW_COLOURS, TINTS};
pub use render::Canvas;
pub use scene::{Qa, Scene, text_document};
pub use tar_out::write_tar;

/// `[data.synth]`: what `generate` writes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SynthConfig {
    /// Output folder (shards, `eval/`, `tokenizer.json`, `manifest.json`).
    pub out: PathBuf,
    pub seed: u64,
    /// Native side of rendered images in pixels.
    pub image_size: usize,
    /// Shards per kind and samples per shard.
    pub shards_per_kind: usize,
    pub samples_per_shard: usize,
    /// Held-out VQA questions and captioning images.
    pub eval_vqa: usize,
    pub eval_captions: usize,
    /// BPE vocabulary size of the trained `tokenizer.json`.
    pub vocab_size: usize,
    /// JPEG quality of the rendered images.
    pub jpeg_quality: u8,
}

impl Default for SynthConfig {
    fn default() -> Self {
        Self {
            out: PathBuf::from("data/synth-cache"),
            seed: 0,
            image_size: 448,
            shards_per_kind: 8,
            samples_per_shard: 256,
            eval_vqa: 400,
            eval_captions: 100,
            vocab_size: 1024,
            jpeg_quality: 90,
        }
    }
}

impl SynthConfig {
    /// A few seconds to generate: for tests and the quickstart.
    pub fn small(out: impl Into<PathBuf>, seed: u64) -> Self {
        Self {
            out: out.into(),
            seed,
            image_size: 448,
            shards_per_kind: 2,
            samples_per_shard: 24,
            eval_vqa: 32,
            eval_captions: 16,
            vocab_size: 512,
            jpeg_quality: 90,
        }
    }
}

/// Where `generate` put things.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SynthOutput {
    /// Shard specs (brace ranges) per kind.
    pub caption: String,
    pub interleaved: String,
    pub text: String,
    pub vqa: PathBuf,
    pub captions: PathBuf,
    pub tokenizer: PathBuf,
}

impl SynthOutput {
    pub fn of(cfg: &SynthConfig) -> Self {
        let spec = |kind: &str| {
            let last = cfg.shards_per_kind.saturating_sub(1);
            cfg.out.join(format!("{kind}-{{000000..{last:06}}}.tar")).display().to_string()
        };
        Self {
            caption: spec("caption"),
            interleaved: spec("interleaved"),
            text: spec("text"),
            vqa: cfg.out.join("eval/vqa.jsonl"),
            captions: cfg.out.join("eval/captions.jsonl"),
            tokenizer: cfg.out.join("tokenizer.json"),
        }
    }

    /// MM1's 45/45/10 mixture over the generated shards.
    pub fn sources(&self) -> Vec<SourceConfig> {
        let s = |name: &str, kind, shards: &str, weight| SourceConfig {
            name: name.into(),
            kind,
            shards: shards.into(),
            weight,
        };
        vec![
            s("caption", SampleKind::Caption, &self.caption, 0.45),
            s("interleaved", SampleKind::Interleaved, &self.interleaved, 0.45),
            s("text", SampleKind::Text, &self.text, 0.10),
        ]
    }
}

/// Version of the generator's output, written to `manifest.json`: bumped whenever the same config
/// gives different bytes, so that caches of an older generator are regenerated. 8: `row_index` and
/// `row_colour` (one coloured row in an 8x8 grid of grey cells) replace `grid`. 7: `stripes` and
/// `patch_colour` fill the frame (they were squares of a quarter to half the side), with film
/// grain so that no two images are equal. 6: the control
/// is `patch_colour`, a flat tinted square of its own; stripes as in 3. 5: stripes of
/// contrast 30-45 on tints 96 levels apart (the tint is what a patch shows most). 4: the control
/// `stripes_colour` (the tint of the striped patch) replaces `stripes_wide`. 3: gated scenes
/// (stripes, stripes_wide, grid; PNG) in half the images and in the VQA rotation. 2: per-sample
/// streams from the fixed `Rng::from_words` (1, unversioned: samples repeated across shards).
pub const GENERATOR_VERSION: u64 = 8;

/// True when `cfg.out` holds a finished generation of exactly this config by this generator
/// version (`manifest.json` is written last).
pub fn is_complete(cfg: &SynthConfig) -> bool {
    std::fs::read(cfg.out.join("manifest.json"))
        .ok()
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        .filter(|m| m["generator"].as_u64() == Some(GENERATOR_VERSION))
        .and_then(|m| serde_json::from_value::<SynthConfig>(m["config"].clone()).ok())
        .is_some_and(|c| c == *cfg)
}

/// Generates the benchmark unless `cfg.out` already holds it ([`is_complete`]) and returns whether
/// this call generated it. Processes or threads started together (a sweep's `--parallel`, a test
/// binary's threads) share one generation: the first to take the exclusive lock on
/// `OUT/.generate.lock` generates, the others wait for the lock and then find the manifest.
/// Without the lock each would write the same files at once, and a run that finished first could
/// read a shard that another was rewriting.
pub fn ensure(cfg: &SynthConfig) -> Result<bool> {
    if is_complete(cfg) {
        return Ok(false);
    }
    std::fs::create_dir_all(&cfg.out).map_err(|e| DataError::io(cfg.out.display().to_string(), e))?;
    let path = cfg.out.join(".generate.lock");
    let io = |e| DataError::io(path.display().to_string(), e);
    let lock = std::fs::File::create(&path).map_err(io)?;
    lock.lock().map_err(io)?; // released when `lock` is dropped
    if is_complete(cfg) {
        return Ok(false);
    }
    generate(cfg)?;
    Ok(true)
}

const TAG_CAPTION: u64 = 1;
const TAG_INTERLEAVED: u64 = 2;
const TAG_TEXT: u64 = 3;
const TAG_VQA: u64 = 4;
const TAG_CAPTIONS: u64 = 5;

type Members = Vec<(String, Vec<u8>)>;

/// A training image: a shapes-and-text scene (JPEG) or, half the time, a gated scene (PNG).
enum AnyScene {
    Plain(Scene),
    Gated(GatedScene),
}

impl AnyScene {
    fn sample(cfg: &SynthConfig, rng: &mut Rng) -> Self {
        if rng.below(2) == 0 {
            let task = GATED_TASKS[rng.below(GATED_TASKS.len())];
            AnyScene::Gated(GatedScene::sample(task, cfg.image_size, rng))
        } else {
            AnyScene::Plain(Scene::sample(rng))
        }
    }

    /// `(extension, bytes)`.
    fn image(&self, cfg: &SynthConfig) -> (&'static str, Vec<u8>) {
        match self {
            AnyScene::Plain(s) => ("jpg", s.render(cfg.image_size).encode_jpeg(cfg.jpeg_quality)),
            AnyScene::Gated(g) => ("png", g.render(cfg.image_size).encode_png()),
        }
    }

    fn captions(&self) -> Vec<String> {
        match self {
            AnyScene::Plain(s) => s.captions(),
            AnyScene::Gated(g) => g.captions(),
        }
    }

    fn questions(&self, rng: &mut Rng) -> Vec<Qa> {
        match self {
            AnyScene::Plain(s) => s.questions(rng),
            AnyScene::Gated(g) => g.questions(),
        }
    }

    fn meta(&self) -> serde_json::Value {
        match self {
            AnyScene::Plain(s) => json!({"objects": s.objects.len(), "text": s.text}),
            AnyScene::Gated(g) => json!({"task": g.task().name, "gate": g.task().gate}),
        }
    }
}

fn caption_sample(cfg: &SynthConfig, key: &str, rng: &mut Rng) -> (Members, Vec<String>) {
    let scene = AnyScene::sample(cfg, rng);
    let caption = scene.captions()[rng.below(3)].clone();
    let (ext, bytes) = scene.image(cfg);
    let members = vec![
        (format!("{key}.{ext}"), bytes),
        (format!("{key}.txt"), caption.clone().into_bytes()),
        (format!("{key}.json"), scene.meta().to_string().into_bytes()),
    ];
    (members, vec![caption])
}

/// Several images, each followed by question-answer turns about it (few-shot format).
fn interleaved_sample(cfg: &SynthConfig, key: &str, rng: &mut Rng) -> (Members, Vec<String>) {
    let mut texts: Vec<serde_json::Value> = Vec::new();
    let mut images: Vec<serde_json::Value> = Vec::new();
    let mut members = Vec::new();
    let mut corpus = Vec::new();
    if rng.below(2) == 0 {
        texts.push(json!("here are some pictures with questions and answers."));
        images.push(serde_json::Value::Null);
    }
    for i in 0..2 + rng.below(3) {
        let scene = AnyScene::sample(cfg, rng);
        let (ext, bytes) = scene.image(cfg);
        members.push((format!("{key}.{i}.{ext}"), bytes));
        texts.push(serde_json::Value::Null);
        images.push(json!(format!("{i}.{ext}")));
        let qas = scene.questions(rng);
        let turns: Vec<String> = qas
            .iter()
            .filter(|_| rng.below(3) > 0)
            .map(|q| format!("question: {} answer: {}.", q.question, q.answers[0]))
            .collect();
        let text = if turns.is_empty() { scene.captions()[0].clone() } else { turns.join(" ") };
        corpus.push(text.clone());
        texts.push(json!(text));
        images.push(serde_json::Value::Null);
    }
    let doc = json!({"texts": texts, "images": images});
    members.insert(0, (format!("{key}.json"), doc.to_string().into_bytes()));
    (members, corpus)
}

fn text_sample(key: &str, i: usize, rng: &mut Rng) -> (Members, Vec<String>) {
    let text = text_document(rng);
    let member = if i.is_multiple_of(2) {
        (format!("{key}.txt"), text.clone().into_bytes())
    } else {
        (format!("{key}.json"), json!({"text": text}).to_string().into_bytes())
    };
    (vec![member], vec![text])
}

fn write_shard(cfg: &SynthConfig, kind: SampleKind, shard: usize) -> Result<Vec<String>> {
    let (tag, name) = match kind {
        SampleKind::Caption => (TAG_CAPTION, "caption"),
        SampleKind::Interleaved => (TAG_INTERLEAVED, "interleaved"),
        SampleKind::Text => (TAG_TEXT, "text"),
    };
    let mut members = Vec::new();
    let mut corpus = Vec::new();
    for i in 0..cfg.samples_per_shard {
        let mut rng = Rng::from_words(&[cfg.seed, tag, shard as u64, i as u64]);
        let key = format!("{name}{shard:06}_{i:06}");
        let (m, c) = match kind {
            SampleKind::Caption => caption_sample(cfg, &key, &mut rng),
            SampleKind::Interleaved => interleaved_sample(cfg, &key, &mut rng),
            SampleKind::Text => text_sample(&key, i, &mut rng),
        };
        members.extend(m);
        corpus.extend(c);
    }
    write_tar(&cfg.out.join(format!("{name}-{shard:06}.tar")), &members)?;
    Ok(corpus)
}

fn write_file(path: &Path, bytes: &[u8]) -> Result<()> {
    std::fs::write(path, bytes).map_err(|e| DataError::io(path.display().to_string(), e))
}

/// The VQA set's tasks, one item each in turn: the scene tasks, then the gated tasks.
pub const VQA_ROTATION: [&str; 8] =
    ["counting", "colour", "position", "reading", "stripes", "patch_colour", "row_index", "row_colour"];

/// Held-out sets: `vqa.jsonl` (one question per image, tasks in rotation) and `captions.jsonl`.
fn write_eval(cfg: &SynthConfig) -> Result<Vec<String>> {
    let dir = cfg.out.join("eval");
    std::fs::create_dir_all(dir.join("images")).map_err(|e| DataError::io(dir.display().to_string(), e))?;
    let vqa: Vec<Result<(String, String)>> = (0..cfg.eval_vqa)
        .into_par_iter()
        .map(|i| {
            let mut rng = Rng::from_words(&[cfg.seed, TAG_VQA, i as u64]);
            let want = VQA_ROTATION[i % VQA_ROTATION.len()];
            let (qa, ext, bytes) = match GatedTask::by_name(want) {
                Some(task) => {
                    let scene = GatedScene::sample(task, cfg.image_size, &mut rng);
                    (scene.question(), "png", scene.render(cfg.image_size).encode_png())
                }
                None => {
                    let scene = Scene::sample(&mut rng);
                    let qas = scene.questions(&mut rng);
                    let qa = qas.iter().find(|q| q.task == want).unwrap_or(&qas[0]).clone();
                    (qa, "jpg", scene.render(cfg.image_size).encode_jpeg(cfg.jpeg_quality))
                }
            };
            let image = format!("images/vqa-{i:06}.{ext}");
            write_file(&dir.join(&image), &bytes)?;
            let mut line = json!({"id": format!("vqa-{i:06}"), "image": image, "task": qa.task,
                                  "question": qa.question, "answers": qa.answers});
            if let Some(gate) = qa.gate {
                line["gate"] = json!(gate);
            }
            Ok((line.to_string(), qa.question.clone()))
        })
        .collect();
    let caps: Vec<Result<(String, String)>> = (0..cfg.eval_captions)
        .into_par_iter()
        .map(|i| {
            let mut rng = Rng::from_words(&[cfg.seed, TAG_CAPTIONS, i as u64]);
            let scene = Scene::sample(&mut rng);
            let image = format!("images/cap-{i:06}.jpg");
            write_file(&dir.join(&image), &scene.render(cfg.image_size).encode_jpeg(cfg.jpeg_quality))?;
            let refs = scene.captions();
            let line = json!({"id": format!("cap-{i:06}"), "image": image, "references": refs});
            Ok((line.to_string(), refs[0].clone()))
        })
        .collect();
    let mut corpus = Vec::new();
    for (name, rows) in [("vqa.jsonl", vqa), ("captions.jsonl", caps)] {
        let mut text = String::new();
        for r in rows {
            let (line, c) = r?;
            text.push_str(&line);
            text.push('\n');
            corpus.push(c);
        }
        write_file(&dir.join(name), text.as_bytes())?;
    }
    Ok(corpus)
}

/// Writes the benchmark into `cfg.out` (shards, eval sets, tokenizer, manifest) and returns where.
pub fn generate(cfg: &SynthConfig) -> Result<SynthOutput> {
    if cfg.shards_per_kind == 0 || cfg.samples_per_shard == 0 || cfg.image_size < 24 {
        return Err(DataError::Config(format!(
            "synth: shards_per_kind ({}) and samples_per_shard ({}) must be >= 1 and image_size ({}) >= 24",
            cfg.shards_per_kind, cfg.samples_per_shard, cfg.image_size
        )));
    }
    std::fs::create_dir_all(&cfg.out).map_err(|e| DataError::io(cfg.out.display().to_string(), e))?;
    let _ = std::fs::remove_file(cfg.out.join("manifest.json"));
    let jobs: Vec<(SampleKind, usize)> =
        SampleKind::ALL.iter().flat_map(|&k| (0..cfg.shards_per_kind).map(move |s| (k, s))).collect();
    let texts: Vec<Result<Vec<String>>> = jobs.par_iter().map(|&(k, s)| write_shard(cfg, k, s)).collect();
    let mut corpus = Vec::new();
    for t in texts {
        corpus.extend(t?);
    }
    corpus.extend(write_eval(cfg)?);
    let out = SynthOutput::of(cfg);
    let d = crate::config::DataConfig::default();
    let specials = [d.image_token.as_str(), d.end_of_chunk_token.as_str(), d.pad_token.as_str()];
    crate::tokenizer::train_bpe(corpus.iter(), cfg.vocab_size, &specials, &out.tokenizer)?;
    let manifest = json!({"config": cfg, "output": out, "generator": GENERATOR_VERSION,
                          "format": "docs/data.md#synthetic-benchmark"});
    write_file(
        &cfg.out.join("manifest.json"),
        serde_json::to_string_pretty(&manifest).unwrap_or_default().as_bytes(),
    )?;
    Ok(out)
}
