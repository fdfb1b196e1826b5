//! The non-tensor part of a checkpoint (`state.json`): everything besides weights and
//! optimizer moments that an exact resume needs.

use serde::{Deserialize, Serialize};

/// Written as `state.json`, last, inside the checkpoint folder.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainState {
    /// Optimizer steps completed (the next step to run is `step`).
    pub step: u64,
    /// Steps the learning-rate schedule has advanced (equal to `step` unless steps were skipped).
    pub scheduler_step: u64,
    /// The trainer's own random stream (sampling during eval/generation previews).
    pub rng: RngState,
    /// The data loader's state (`mm1_data::LoaderState`), kept as JSON so this module does not
    /// depend on its layout.
    pub loader: serde_json::Value,
    /// Running counters that logging continues from.
    pub counters: Counters,
    /// SHA-256 of the resolved config text saved next to this file (`config.toml`).
    pub config_sha256: String,
}

/// A ChaCha8 stream position: seed, stream and word position restore it exactly.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RngState {
    pub seed: [u8; 32],
    pub stream: u64,
    /// `u128` in rand_chacha; stored as two halves because JSON numbers are f64.
    pub word_pos_hi: u64,
    pub word_pos_lo: u64,
}

impl RngState {
    pub fn capture(rng: &rand_chacha::ChaCha8Rng) -> Self {
        let pos = rng.get_word_pos();
        Self {
            seed: rng.get_seed(),
            stream: rng.get_stream(),
            word_pos_hi: (pos >> 64) as u64,
            word_pos_lo: pos as u64,
        }
    }

    pub fn restore(&self) -> rand_chacha::ChaCha8Rng {
        use rand_chacha::rand_core::SeedableRng;
        let mut rng = rand_chacha::ChaCha8Rng::from_seed(self.seed);
        rng.set_stream(self.stream);
        rng.set_word_pos(((self.word_pos_hi as u128) << 64) | self.word_pos_lo as u128);
        rng
    }
}

/// Totals carried across resumes.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Counters {
    /// Steps skipped because the loss or a gradient was NaN/Inf.
    pub skipped_steps: u64,
    /// Non-finite steps in a row at the time of saving.
    pub nonfinite_in_a_row: u64,
    /// Non-padding tokens and images trained on.
    pub tokens_seen: u64,
    pub images_seen: u64,
}
