//! Synthetic benchmark (`mm1-data synth`): shards of all three kinds + held-out eval sets.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// `[data.synth]`: what `generate` writes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SynthConfig {
    /// Output folder (shards, `eval/`, `tokenizer.json`).
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
}

impl Default for SynthConfig {
    fn default() -> Self {
        Self {
            out: PathBuf::from("data/synth-cache"),
            seed: 0,
            image_size: 448,
            shards_per_kind: 8,
            samples_per_shard: 500,
            eval_vqa: 500,
            eval_captions: 200,
            vocab_size: 2048,
        }
    }
}
