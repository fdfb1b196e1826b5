//! `[data]` TOML section and `[[data.sources]]` (mirrors the TOML 1:1).
//!
//! ```toml
//! [data]
//! seq_len = 2048
//! batch_size = 8
//! max_images_per_seq = 16
//! tokenizer = "data/synth-cache/tokenizer.json"
//!
//! [[data.sources]]
//! name = "caption"
//! kind = "caption"
//! shards = "data/synth-cache/caption-{000000..000007}.tar"
//! weight = 0.45
//! ```

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::error::DataError;

/// The `[data]` section. Every field has a default so a config only names what it changes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DataConfig {
    /// Tokens per packed sequence (`t`).
    pub seq_len: usize,
    /// Sequences per batch on this rank (`b`).
    pub batch_size: usize,
    /// Data streams the samples are drawn from, each seeded and shard-split by its own index
    /// (0 = one per rank, i.e. `parallel.dp`); a rank reads `streams / dp` of them. Keeping it
    /// fixed lets a checkpoint resume on another number of ranks (docs/distributed.md).
    pub streams: usize,
    /// Most images one packed sequence may hold (MM1 uses 16 for interleaved data).
    pub max_images_per_seq: usize,
    /// Most text tokens one packed sequence may hold (0 = only `seq_len` limits them). With
    /// `seq_len = text_tokens_per_seq + max_images_per_seq × image tokens`, rows hold the same
    /// documents whatever the image-token count: what an image-token ablation needs to keep the
    /// text equal (docs/ablations.md).
    pub text_tokens_per_seq: usize,
    /// Seed of shard order, shuffle buffers and mixture draws.
    pub seed: u64,
    /// Path of a HF `tokenizer.json` (`mm1-data tokenizer train` writes one).
    pub tokenizer: PathBuf,
    /// Special tokens; they must exist in the tokenizer's vocabulary.
    pub image_token: String,
    /// Ends every text chunk and every document (OpenFlamingo/OBELICS `<|endofchunk|>`).
    pub end_of_chunk_token: String,
    /// Fills the tail of a sequence that no sample fits into.
    pub pad_token: String,
    /// Threads that decode images and tokenise text (0 = number of CPUs).
    pub workers: usize,
    /// Finished batches held ready ahead of the trainer.
    pub prefetch: usize,
    /// Samples per source held in the shuffle buffer (1 = no shuffling).
    pub shuffle_buffer: usize,
    /// Loader stops with an error when skipped / (good + skipped) exceeds this (after `min_samples_for_skip_check`).
    pub max_skip_fraction: f64,
    /// The skip fraction is only judged once this many samples were read.
    pub min_samples_for_skip_check: u64,
    /// Images with more pixels (w*h, read from the header before decoding) are skipped: decompression bombs.
    pub max_image_pixels: u64,
    /// A shard whose reader makes no progress for this many seconds (a hanging `pipe:` command, a
    /// stuck filesystem) is abandoned and counted as `stalled_shard`; 0 waits forever.
    pub read_timeout_s: f64,
    /// How an image is brought to `image_size x image_size`.
    pub resize: ResizeMode,
    /// Interleaved documents longer than a sequence continue in the next sequence; when false
    /// they are truncated to one sequence (the dropped tokens and images are counted).
    pub split_documents: bool,
    /// Synthetic benchmark generated when the source shards are missing (trainer quickstart).
    pub synth: Option<crate::synth::SynthConfig>,
    /// Held-out evaluation sets (files written by `mm1-data synth`, format in docs/data.md).
    pub eval: EvalDataConfig,
    /// The mixture: one entry per `[[data.sources]]`.
    pub sources: Vec<SourceConfig>,
}

impl Default for DataConfig {
    fn default() -> Self {
        Self {
            seq_len: 2048,
            batch_size: 8,
            streams: 0,
            max_images_per_seq: 16,
            text_tokens_per_seq: 0,
            seed: 0,
            tokenizer: PathBuf::from("tokenizer.json"),
            image_token: "<image>".into(),
            end_of_chunk_token: "<|endofchunk|>".into(),
            pad_token: "<pad>".into(),
            workers: 0,
            prefetch: 4,
            shuffle_buffer: 256,
            max_skip_fraction: 0.05,
            min_samples_for_skip_check: 200,
            max_image_pixels: 64 * 1024 * 1024,
            read_timeout_s: 300.0,
            resize: ResizeMode::ShortestSideCrop,
            split_documents: true,
            synth: None,
            eval: EvalDataConfig::default(),
            sources: Vec::new(),
        }
    }
}

/// One `[[data.sources]]` entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceConfig {
    /// Name used in logs and per-source counts.
    pub name: String,
    /// What a sample of this source holds.
    pub kind: SampleKind,
    /// Shard spec: brace ranges `a-{000..009}.tar`, several specs joined by `::`, `pipe:CMD`.
    pub shards: String,
    /// Mixture weight (normalised over all sources; MM1 uses 45/45/10).
    #[serde(default = "one")]
    pub weight: f64,
}

fn one() -> f64 {
    1.0
}

/// Sample kinds (see docs/data.md for the members each one needs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SampleKind {
    /// Image member (`jpg`/`jpeg`/`png`/`webp`) + `txt` caption; optional `json` metadata.
    Caption,
    /// OBELICS `json` with equal-length `texts` / `images` lists.
    Interleaved,
    /// `txt`, or `json` with a `text` field.
    Text,
}

impl SampleKind {
    pub const ALL: [SampleKind; 3] = [SampleKind::Caption, SampleKind::Interleaved, SampleKind::Text];

    pub fn name(self) -> &'static str {
        match self {
            SampleKind::Caption => "caption",
            SampleKind::Interleaved => "interleaved",
            SampleKind::Text => "text",
        }
    }
}

impl std::str::FromStr for SampleKind {
    type Err = DataError;
    fn from_str(s: &str) -> Result<Self, DataError> {
        match s {
            "caption" => Ok(SampleKind::Caption),
            "interleaved" => Ok(SampleKind::Interleaved),
            "text" => Ok(SampleKind::Text),
            other => Err(DataError::Config(format!(
                "unknown sample kind {other:?} (expected caption, interleaved or text)"
            ))),
        }
    }
}

/// How an image becomes square.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResizeMode {
    /// Resize the shortest side to `image_size`, then centre crop (CLIP / MM1 preprocessing).
    ShortestSideCrop,
    /// Resize both sides to `image_size`, ignoring the aspect ratio.
    Squash,
}

/// `[data.eval]`: the evaluation data sets (few-shot VQA and captions, held-out loss shards);
/// the trainer's `[eval]` (`EvalConfig`) says when and how they are scored.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EvalDataConfig {
    /// VQA set: `vqa.jsonl` + images (format in docs/data.md).
    pub vqa: Option<PathBuf>,
    /// Captioning set: `captions.jsonl` + images.
    pub captions: Option<PathBuf>,
    /// Held-out shards scored for validation loss, read with the same loader (`kind`, `shards` as a source).
    pub sources: Vec<SourceConfig>,
}

/// What the model decides and the data pipeline must follow (passed in by the trainer).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PipelineShape {
    /// Square image side in pixels (`h = w`).
    pub image_size: usize,
    /// Placeholder tokens one image expands to (`m`, the connector's output tokens).
    pub num_image_tokens: usize,
}

impl DataConfig {
    /// Checks the section against itself and the model's shape; both numbers in every message.
    /// `read_timeout_s` as a duration, `None` for 0 (no timeout).
    pub fn read_timeout(&self) -> Option<std::time::Duration> {
        (self.read_timeout_s > 0.0).then(|| std::time::Duration::from_secs_f64(self.read_timeout_s))
    }

    pub fn validate(&self, shape: &PipelineShape) -> Result<(), DataError> {
        let err = |m: String| Err(DataError::Config(m));
        if self.seq_len < 2 {
            return err(format!("data.seq_len ({}) must be at least 2", self.seq_len));
        }
        if self.batch_size == 0 {
            return err("data.batch_size must be at least 1".into());
        }
        if shape.image_size == 0 {
            return err("image_size must be at least 1".into());
        }
        if self.sources.is_empty() {
            return err("data.sources is empty: add at least one [[data.sources]]".into());
        }
        let images_used = self.sources.iter().any(|s| s.kind != SampleKind::Text);
        if images_used && shape.num_image_tokens + 1 > self.seq_len {
            return err(format!(
                "one image needs num_image_tokens + 1 ({}) tokens but data.seq_len is {}",
                shape.num_image_tokens + 1,
                self.seq_len
            ));
        }
        if self.text_tokens_per_seq > self.seq_len {
            return err(format!(
                "data.text_tokens_per_seq ({}) exceeds data.seq_len ({}); 0 leaves only seq_len",
                self.text_tokens_per_seq, self.seq_len
            ));
        }
        if images_used && self.max_images_per_seq == 0 {
            return err("data.max_images_per_seq is 0 but a source holds images".into());
        }
        if !(self.read_timeout_s.is_finite() && self.read_timeout_s >= 0.0) {
            return err(format!(
                "data.read_timeout_s ({}) must be >= 0 (0 waits forever)",
                self.read_timeout_s
            ));
        }
        if !(0.0..=1.0).contains(&self.max_skip_fraction) {
            return err(format!("data.max_skip_fraction ({}) must be in [0, 1]", self.max_skip_fraction));
        }
        for s in &self.sources {
            if !(s.weight.is_finite() && s.weight >= 0.0) {
                return err(format!("data.sources {:?}: weight ({}) must be >= 0", s.name, s.weight));
            }
        }
        if self.sources.iter().map(|s| s.weight).sum::<f64>() <= 0.0 {
            return err("data.sources: weights sum to 0".into());
        }
        let mut names: Vec<&str> = self.sources.iter().map(|s| s.name.as_str()).collect();
        names.sort_unstable();
        if let Some(w) = names.windows(2).find(|w| w[0] == w[1]) {
            return err(format!("data.sources: name {:?} appears twice", w[0]));
        }
        Ok(())
    }
}
