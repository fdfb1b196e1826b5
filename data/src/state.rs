//! The loader's whole state, serialisable for exact resume (docs/data.md "Loader state").
//!
//! A state is taken *between* batches: restoring it and calling `next_batch` yields exactly the
//! batch the uninterrupted loader would have yielded next. It holds no sample bytes: shuffle-buffer
//! entries are shard locations that are re-read on restore.

use serde::{Deserialize, Serialize};

use crate::skip::SkipCounts;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoaderState {
    /// Format version of this struct.
    pub version: u32,
    /// SHA-256 over the config fields that change the stream (seed, sources, seq_len, shape, ...).
    pub fingerprint: String,
    /// Position of this stream among `world` streams (a rank of `world` when `data.streams` is
    /// `parallel.dp`, see `streams.rs`).
    pub rank: usize,
    pub world: usize,
    /// Rows per batch of this stream (0 in states written before it was recorded).
    #[serde(default)]
    pub rows: usize,
    /// Batches emitted so far (the next batch gets this index).
    pub batches: u64,
    /// Mixture draws (which source gives the next sample).
    pub mixture_rng: u64,
    /// One per `[[data.sources]]`, in order.
    pub sources: Vec<SourceState>,
    /// A document whose first pieces were already emitted: the next pull from `source` continues it.
    pub partial: Option<PartialDoc>,
    /// Running totals (skips per reason, realised mixture, drops).
    pub stats: LoaderStats,
}

/// Read position of one source's endless shard stream on this rank.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceState {
    pub name: String,
    /// Pass over this rank's shards; each epoch has its own shard order.
    pub epoch: u64,
    /// Position in the epoch's shard order of the shard being read.
    pub shard_pos: usize,
    /// Samples of that shard already read (grouped samples, bad ones included).
    pub sample_index: u64,
    /// Shuffle-buffer RNG.
    pub rng: u64,
    /// Samples held in the shuffle buffer, in buffer order.
    pub buffer: Vec<SampleLoc>,
    /// Samples read so far in this epoch (an epoch that reads none means no shard is readable).
    #[serde(default)]
    pub epoch_samples: u64,
}

/// Where a sample lives in a source's stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct SampleLoc {
    pub epoch: u64,
    pub shard_pos: usize,
    pub index: u64,
}

/// An interleaved/text document split across sequences, cut at a batch boundary.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartialDoc {
    pub source: usize,
    /// `shard/key` of the document, checked when it is read again on restore.
    pub key: String,
    /// Packing units of the document already emitted (text tokens and images, see `pack.rs`).
    pub units_done: usize,
    /// Tokens of the first not-yet-finished text unit already emitted.
    pub tokens_done: usize,
}

/// Running totals over the whole run (carried across resumes).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoaderStats {
    /// Per source, in `[[data.sources]]` order.
    pub sources: Vec<SourceTotals>,
    pub skipped: SkipCounts,
    pub dropped_tokens: u64,
    pub dropped_images: u64,
    /// Non-padding tokens and all tokens emitted.
    pub real_tokens: u64,
    pub total_tokens: u64,
}

/// Realised mixture: log samples, tokens *and* images, because under packing their shares differ.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceTotals {
    pub name: String,
    pub samples: u64,
    pub tokens: u64,
    pub images: u64,
    /// Good samples read (packed or not yet) and samples skipped, for the skip fraction.
    pub good: u64,
    pub skipped: u64,
}

impl LoaderStats {
    /// Share of samples, tokens and images per source: `(name, [samples, tokens, images])`.
    pub fn realised_shares(&self) -> Vec<(String, [f64; 3])> {
        let tot = |f: fn(&SourceTotals) -> u64| self.sources.iter().map(f).sum::<u64>().max(1) as f64;
        let (s, t, i) = (tot(|x| x.samples), tot(|x| x.tokens), tot(|x| x.images));
        self.sources
            .iter()
            .map(|x| (x.name.clone(), [x.samples as f64 / s, x.tokens as f64 / t, x.images as f64 / i]))
            .collect()
    }
}
