//! Shared helpers of the data tests: a small synthetic dataset and a tiny loader config.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use mm1_data::synth::{SynthConfig, SynthOutput, generate};
use mm1_data::{DataConfig, PipelineShape, SampleKind, SourceConfig};

pub const SHAPE: PipelineShape = PipelineShape { image_size: 16, num_image_tokens: 4 };

/// A synthetic dataset with 64-pixel images, generated once per test binary in a temp folder.
pub fn synth() -> &'static (SynthConfig, SynthOutput) {
    static CELL: std::sync::OnceLock<(SynthConfig, SynthOutput)> = std::sync::OnceLock::new();
    CELL.get_or_init(|| {
        let dir = tempfile::tempdir().expect("tempdir").keep();
        let cfg = SynthConfig {
            image_size: 64,
            shards_per_kind: 4,
            samples_per_shard: 20,
            eval_vqa: 4,
            eval_captions: 2,
            ..SynthConfig::small(dir, 7)
        };
        let out = generate(&cfg).expect("synth generate");
        (cfg, out)
    })
}

/// A loader config over the synthetic shards: short rows so documents split and pack.
pub fn config(sources: Vec<SourceConfig>) -> DataConfig {
    DataConfig {
        seq_len: 48,
        batch_size: 3,
        max_images_per_seq: 4,
        seed: 11,
        tokenizer: synth().1.tokenizer.clone(),
        workers: 2,
        prefetch: 0,
        shuffle_buffer: 8,
        sources,
        ..Default::default()
    }
}

pub fn source(kind: SampleKind, weight: f64) -> SourceConfig {
    let out = &synth().1;
    let shards = match kind {
        SampleKind::Caption => &out.caption,
        SampleKind::Interleaved => &out.interleaved,
        SampleKind::Text => &out.text,
    };
    SourceConfig { name: kind.name().into(), kind, shards: shards.clone(), weight }
}

pub fn mixture() -> Vec<SourceConfig> {
    synth().1.sources()
}

pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name)
}
