//! A rank's share of the data streams, so that the loader state does not depend on the number
//! of ranks (elastic resume, docs/distributed.md; the idea is Megatron-Energon's
//! world-size-independent loader state).
//!
//! The samples are drawn from `S` streams; stream `s` is a [`Loader`] at position `s` of `S`
//! (seeded and shard-split by `s`, never by rank). With `M` ranks (`M` divides `S`), rank `r`
//! owns the contiguous streams `r·S/M .. (r+1)·S/M`, and its batch is their batches
//! concatenated in stream order, each of `batch_size·M/S` rows. So every step the `M` ranks
//! together read the same rows, whatever `M` is, and the `S` stream states can be handed out
//! again to another number of ranks. With `S = M` a rank owns one stream: exactly the loader of
//! a rank of `M`.

use std::ops::Range;

use crate::batch::{Batch, SourceCounts};
use crate::config::{DataConfig, PipelineShape};
use crate::error::{DataError, Result};
use crate::loader::Loader;
use crate::state::{LoaderState, LoaderStats};

/// The streams rank `rank` of `world` owns out of `streams` (`world` must divide `streams`).
pub fn owned_streams(rank: usize, world: usize, streams: usize) -> Result<Range<usize>> {
    if world == 0 || rank >= world {
        return Err(DataError::Config(format!("rank {rank} of world {world} is not a valid position")));
    }
    if streams == 0 || !streams.is_multiple_of(world) {
        let fits: Vec<String> =
            (1..=streams).filter(|d| streams.is_multiple_of(*d)).map(|d| d.to_string()).collect();
        return Err(DataError::Config(format!(
            "data.streams ({streams}) is not a multiple of the number of ranks ({world}): each rank reads \
             whole streams; with {streams} streams the ranks can be {} (or set data.streams to a multiple of {world})",
            fits.join(", ")
        )));
    }
    let per = streams / world;
    Ok(rank * per..(rank + 1) * per)
}

/// Rows each stream adds to a rank's batch of `batch_size` rows: `batch_size / (streams / world)`.
pub fn stream_rows(batch_size: usize, world: usize, streams: usize) -> Result<usize> {
    let per = owned_streams(0, world, streams)?.len();
    if batch_size == 0 || !batch_size.is_multiple_of(per) {
        return Err(DataError::Config(format!(
            "data.batch_size ({batch_size}) must be a multiple of the streams per rank \
             (data.streams / ranks = {streams} / {world} = {per}): each stream adds the same number of rows"
        )));
    }
    Ok(batch_size / per)
}

/// The loaders of one rank's streams.
pub struct StreamSet {
    streams: Range<usize>,
    total: usize,
    loaders: Vec<Loader>,
    stats: LoaderStats,
}

impl StreamSet {
    /// Rank `rank` of `world` over `streams` streams, from the start or (`states`: one per owned
    /// stream, in order, as [`states`](Self::states) returns them) where they left off.
    pub fn new(
        cfg: &DataConfig,
        shape: PipelineShape,
        (rank, world, streams): (usize, usize, usize),
        states: Option<Vec<LoaderState>>,
    ) -> Result<Self> {
        let mine = owned_streams(rank, world, streams)?;
        let rows = stream_rows(cfg.batch_size, world, streams)?;
        let stream_cfg = DataConfig { batch_size: rows, ..cfg.clone() };
        let mut states = states.map(|v| v.into_iter());
        let mut loaders = Vec::with_capacity(mine.len());
        for s in mine.clone() {
            let loader = match states.as_mut() {
                None => Loader::new(&stream_cfg, shape, s, streams)?,
                Some(it) => {
                    let st = it.next().ok_or_else(|| {
                        DataError::State(format!("no saved state for data stream {s} of {streams}"))
                    })?;
                    check_rows(&st, rows, s)?;
                    Loader::restore(&stream_cfg, shape, s, streams, st)?
                }
            };
            loaders.push(loader);
        }
        let mut set = Self { streams: mine, total: streams, loaders, stats: LoaderStats::default() };
        set.stats = set.sum_stats();
        Ok(set)
    }

    /// The streams this rank reads.
    pub fn streams(&self) -> Range<usize> {
        self.streams.clone()
    }

    /// `S`, the number of streams of the whole run.
    pub fn total(&self) -> usize {
        self.total
    }

    /// The next batch: one batch of every owned stream, rows in stream order.
    pub fn next_batch(&mut self) -> Result<Batch> {
        let parts = self.loaders.iter_mut().map(|l| l.next_batch()).collect::<Result<Vec<_>>>()?;
        self.stats = self.sum_stats();
        Ok(concat(parts))
    }

    /// The owned streams' states after the last batch returned, in stream order.
    pub fn states(&self) -> Vec<LoaderState> {
        self.loaders.iter().map(Loader::state).collect()
    }

    /// Running totals of the owned streams together.
    pub fn stats(&self) -> &LoaderStats {
        &self.stats
    }

    fn sum_stats(&self) -> LoaderStats {
        let mut all = self.loaders.iter().map(Loader::stats);
        let mut sum = all.next().cloned().unwrap_or_default();
        for s in all {
            for (a, b) in sum.sources.iter_mut().zip(&s.sources) {
                (a.samples, a.tokens, a.images) =
                    (a.samples + b.samples, a.tokens + b.tokens, a.images + b.images);
                (a.good, a.skipped) = (a.good + b.good, a.skipped + b.skipped);
            }
            for (k, v) in &s.skipped.0 {
                *sum.skipped.0.entry(k.clone()).or_default() += v;
            }
            sum.dropped_tokens += s.dropped_tokens;
            sum.dropped_images += s.dropped_images;
            sum.real_tokens += s.real_tokens;
            sum.total_tokens += s.total_tokens;
        }
        sum
    }
}

/// A saved stream state records its rows per batch (states written before it did, `rows = 0`,
/// are checked by the fingerprint alone).
fn check_rows(state: &LoaderState, rows: usize, stream: usize) -> Result<()> {
    if state.rows != 0 && state.rows != rows {
        return Err(DataError::State(format!(
            "data stream {stream} was saved with {} rows per batch, this run gives each stream {rows} \
             (data.batch_size × ranks / data.streams): set data.batch_size so that the rows per stream \
             stay {} (the same tokens per step)",
            state.rows, state.rows
        )));
    }
    Ok(())
}

/// `parts` as one batch: rows (and their images) in order. One part is returned as it is.
pub fn concat(mut parts: Vec<Batch>) -> Batch {
    if parts.len() == 1 {
        return parts.pop().expect("one part");
    }
    let mut rest = parts.into_iter();
    let mut all = rest.next().expect("at least one stream");
    for b in rest {
        all.batch_size += b.batch_size;
        all.input_ids.extend(b.input_ids);
        all.targets.extend(b.targets);
        all.loss_mask.extend(b.loss_mask);
        all.image_mask.extend(b.image_mask);
        all.segment_ids.extend(b.segment_ids);
        all.position_ids.extend(b.position_ids);
        all.source_ids.extend(b.source_ids);
        all.n_images += b.n_images;
        all.images.extend(b.images);
        for (a, c) in all.sources.iter_mut().zip(&b.sources) {
            *a = SourceCounts {
                name: a.name.clone(),
                samples: a.samples + c.samples,
                tokens: a.tokens + c.tokens,
                images: a.images + c.images,
            };
        }
        all.dropped_tokens += b.dropped_tokens;
        all.dropped_images += b.dropped_images;
        all.keys.extend(b.keys);
    }
    all.keys_sha256 = crate::assemble::keys_sha256(&all.keys);
    all
}
