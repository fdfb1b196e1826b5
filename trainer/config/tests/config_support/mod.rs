//! Shared helpers of the `config_*` tests: a folder of TOML files and a small valid run.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

/// A valid run on the tiny stack (every section written, so tests can change one key).
pub const TINY_RUN: &str = r#"
[model.vision]
image_size = 32
patch_size = 8
width = 32
layers = 2
heads = 2
mlp_dim = 64

[model.connector]
kind = "c_abstractor"
num_tokens = 4
hidden = 32
depth = 1

[model.llm]
vocab_size = 512
width = 32
layers = 2
heads = 4
kv_heads = 2
ffn_dim = 64
max_seq_len = 128

[data]
seq_len = 64
batch_size = 2
max_images_per_seq = 4

[[data.sources]]
name = "caption"
kind = "caption"
shards = "shards/caption-{000000..000001}.tar"
weight = 0.5

[[data.sources]]
name = "text"
kind = "text"
shards = "shards/text-{000000..000001}.tar"
weight = 0.5

[optim]
lr = 0.001

[schedule]
warmup_steps = 2

[train]
steps = 10

[log]
every = 1
"#;

/// A temporary folder of config files.
pub struct Files {
    pub dir: tempfile::TempDir,
}

impl Files {
    pub fn new() -> Self {
        Self { dir: tempfile::tempdir().expect("tempdir") }
    }

    /// Writes `rel` (creating folders) and returns its full path.
    pub fn write(&self, rel: &str, text: &str) -> PathBuf {
        let path = self.dir.path().join(rel);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(&path, text).expect("write");
        path
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    pub fn root(&self) -> &Path {
        self.dir.path()
    }
}

/// The error message of a load that must fail.
pub fn load_err(sources: &mm1_config::ConfigSources) -> String {
    match sources.load() {
        Ok(_) => panic!("expected {sources:?} to fail"),
        Err(e) => e.to_string(),
    }
}

/// Panics unless `msg` contains every needle (prints the message on failure).
pub fn assert_mentions(msg: &str, needles: &[&str]) {
    for n in needles {
        assert!(msg.contains(n), "message does not mention {n:?}:\n{msg}");
    }
}
