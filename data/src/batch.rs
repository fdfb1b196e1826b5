//! The packed batch handed to the trainer: flat row-major buffers, no tensors (docs/architecture.md).

use serde::{Deserialize, Serialize};

/// One batch of `b` packed sequences of `t` tokens and the `n` images they reference.
///
/// # Shapes
/// - `input_ids`, `targets`, `loss_mask`, `image_mask`, `segment_ids`, `position_ids`,
///   `source_ids`: `[b*t]` row-major
/// - `images`: `[n*3*h*w]` f32 CLIP-normalised, `h = w = image_size`, in the order of their
///   placeholders (row-major over the batch); image `i` fills the `i`-th run of `num_image_tokens`
///   placeholders.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Batch {
    /// `b`.
    pub batch_size: usize,
    /// `t`.
    pub seq_len: usize,
    /// Token ids; image placeholders carry the image token id, padding the pad id.
    pub input_ids: Vec<u32>,
    /// `targets[t] = input_ids[t+1]` inside a segment, the pad id elsewhere.
    pub targets: Vec<u32>,
    /// True where `targets` is scored: same segment, not an image placeholder, not padding.
    pub loss_mask: Vec<bool>,
    /// True at image placeholders.
    pub image_mask: Vec<bool>,
    /// 1, 2, ... per packed document piece within a row; 0 for padding. Attention stays inside a segment.
    pub segment_ids: Vec<u32>,
    /// Restart at 0 at the start of every segment (0 on padding).
    pub position_ids: Vec<u32>,
    /// Index into `sources` (`[[data.sources]]` order) of the document each token came from;
    /// [`Batch::NO_SOURCE`] on padding. Splits the training loss per source.
    pub source_ids: Vec<u32>,
    /// `n`.
    pub n_images: usize,
    /// `h = w`.
    pub image_size: usize,
    /// Placeholders per image (`m`).
    pub num_image_tokens: usize,
    /// `[n*3*h*w]`.
    pub images: Vec<f32>,
    /// What each source contributed to this batch, in `[[data.sources]]` order.
    pub sources: Vec<SourceCounts>,
    /// Tokens and images of documents in this batch that could not be packed (see docs/data.md).
    pub dropped_tokens: u64,
    pub dropped_images: u64,
    /// SHA-256 (hex) over the keys of the samples in this batch, in packing order: log it to verify a resume.
    pub keys_sha256: String,
    /// `shard/key` of every sample piece (one per segment), in packing order.
    pub keys: Vec<String>,
    /// Index of this batch in the loader's stream (0-based), counted across resumes.
    pub index: u64,
}

/// Samples, tokens (non-padding, including placeholders) and images from one source.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceCounts {
    pub name: String,
    pub samples: u64,
    pub tokens: u64,
    pub images: u64,
}

impl Batch {
    /// `source_ids` value of a padding token.
    pub const NO_SOURCE: u32 = u32::MAX;

    /// Tokens that are not padding.
    pub fn real_tokens(&self) -> usize {
        self.segment_ids.iter().filter(|&&s| s != 0).count()
    }

    /// Targets that are scored.
    pub fn loss_tokens(&self) -> usize {
        self.loss_mask.iter().filter(|&&m| m).count()
    }

    /// Scored targets per source, in `sources` order.
    pub fn loss_tokens_per_source(&self) -> Vec<usize> {
        let mut n = vec![0; self.sources.len()];
        for (&m, &s) in self.loss_mask.iter().zip(&self.source_ids) {
            if let Some(c) = n.get_mut(s as usize).filter(|_| m) {
                *c += 1;
            }
        }
        n
    }
}
