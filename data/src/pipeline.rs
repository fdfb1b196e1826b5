//! The synchronous core of the loader: mixture draws → source streams → parallel decode/tokenise
//! → packer → batch, plus the state taken at every batch boundary.
//!
//! Resume rule: the state after a batch is the stream state *just before the oldest document not
//! yet fully emitted was drawn* (mixture RNG + every source's read head and shuffle buffer), plus
//! how much of that document was emitted (`PartialDoc`). Restoring draws that document again and
//! skips its emitted part; because packing is greedy and sequential, the batches that follow are
//! identical to the uninterrupted run.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, sync_channel};

use serde::Serialize;

use crate::assemble::assemble;
use crate::batch::Batch;
use crate::config::{DataConfig, PipelineShape, SampleKind, SourceConfig};
use crate::error::{DataError, Result};
use crate::pack::{InProgress, PackShape, Packer};
use crate::rng::Rng;
use crate::sample::{Doc, ProcessCtx, process};
use crate::shards::{ShardOpener, WdsOpener, expand_spec, split_shards};
use crate::skip::Skip;
use crate::source::{Pulled, SourceStream};
use crate::state::{LoaderState, LoaderStats, PartialDoc, SourceState, SourceTotals};
use crate::tokenizer::TextTokenizer;

pub const STATE_VERSION: u32 = 1;

#[derive(Clone)]
struct Snapshot {
    mixture_rng: u64,
    sources: Vec<SourceState>,
}

type Processed = std::result::Result<Doc, Skip>;

/// A drawn sample: already known (a shard-level skip) or being decoded on the pool.
enum Pending {
    Ready(Processed),
    Decoding(Receiver<Processed>),
}

struct Item {
    snap: Snapshot,
    source: usize,
    result: Pending,
}

pub struct Pipeline {
    cfg: DataConfig,
    shape: PipelineShape,
    names: Vec<String>,
    kinds: Vec<SampleKind>,
    weights: Vec<f64>,
    sources: Vec<SourceStream>,
    mixture_rng: Rng,
    ctx: ProcessCtx,
    pool: rayon::ThreadPool,
    chunk: usize,
    queue: VecDeque<Item>,
    carry: Option<(Snapshot, InProgress)>,
    packer: Packer,
    stats: LoaderStats,
    batches: u64,
    resume: Option<PartialDoc>,
    fingerprint: String,
    rank: usize,
    world: usize,
}

/// The config fields that change the stream (and so must match on restore).
#[derive(Serialize)]
struct Fingerprint<'a> {
    seq_len: usize,
    batch_size: usize,
    max_images_per_seq: usize,
    /// Absent when 0, so that streams saved before the key existed keep their fingerprint.
    #[serde(skip_serializing_if = "is_zero")]
    text_tokens_per_seq: usize,
    seed: u64,
    shuffle_buffer: usize,
    split_documents: bool,
    max_image_pixels: u64,
    resize: crate::config::ResizeMode,
    tokens: [&'a str; 3],
    sources: &'a [SourceConfig],
    shape: &'a PipelineShape,
    world: usize,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

pub fn fingerprint(cfg: &DataConfig, shape: &PipelineShape, world: usize) -> String {
    let f = Fingerprint {
        seq_len: cfg.seq_len,
        batch_size: cfg.batch_size,
        max_images_per_seq: cfg.max_images_per_seq,
        text_tokens_per_seq: cfg.text_tokens_per_seq,
        seed: cfg.seed,
        shuffle_buffer: cfg.shuffle_buffer,
        split_documents: cfg.split_documents,
        max_image_pixels: cfg.max_image_pixels,
        resize: cfg.resize,
        tokens: [&cfg.image_token, &cfg.end_of_chunk_token, &cfg.pad_token],
        sources: &cfg.sources,
        shape,
        world,
    };
    let json = serde_json::to_string(&f).unwrap_or_default();
    crate::assemble::keys_sha256(&[json])
}

impl Pipeline {
    pub fn new(
        cfg: &DataConfig,
        shape: PipelineShape,
        rank: usize,
        world: usize,
        opener: Arc<dyn ShardOpener>,
    ) -> Result<Self> {
        cfg.validate(&shape)?;
        let tok = Arc::new(TextTokenizer::load(cfg)?);
        let mut sources = Vec::with_capacity(cfg.sources.len());
        for (i, s) in cfg.sources.iter().enumerate() {
            let urls = expand_spec(&s.shards)?;
            let mine = split_shards(urls.len(), rank, world, 0, 1)
                .map_err(|e| DataError::Shards(format!("source {:?}: {e}", s.name)))?;
            let urls = mine.into_iter().map(|j| urls[j].clone()).collect();
            let stream = SourceStream::new(s, i, urls, cfg.seed, rank, cfg.shuffle_buffer, opener.clone());
            sources.push(stream.with_read_timeout(cfg.read_timeout()));
        }
        let workers = if cfg.workers == 0 {
            std::thread::available_parallelism().map_or(1, |n| n.get())
        } else {
            cfg.workers
        };
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(workers)
            .thread_name(|i| format!("mm1-data-decode-{i}"))
            .build()
            .map_err(|e| DataError::Pipeline(format!("cannot start {workers} decode workers: {e}")))?;
        let pack = PackShape {
            seq_len: cfg.seq_len,
            num_image_tokens: shape.num_image_tokens,
            max_images_per_seq: cfg.max_images_per_seq,
            text_per_seq: cfg.text_tokens_per_seq,
            image_id: tok.image_id,
            pad_id: tok.pad_id,
            split: cfg.split_documents,
        };
        let names: Vec<String> = cfg.sources.iter().map(|s| s.name.clone()).collect();
        let stats = LoaderStats {
            sources: names.iter().map(|n| SourceTotals { name: n.clone(), ..Default::default() }).collect(),
            ..Default::default()
        };
        Ok(Self {
            cfg: cfg.clone(),
            shape,
            kinds: cfg.sources.iter().map(|s| s.kind).collect(),
            weights: cfg.sources.iter().map(|s| s.weight).collect(),
            sources,
            mixture_rng: Rng::from_words(&[cfg.seed, rank as u64, 0x4d49_5854]),
            ctx: ProcessCtx {
                tokenizer: Some(tok),
                image_size: shape.image_size,
                resize: cfg.resize,
                max_pixels: cfg.max_image_pixels,
            },
            pool,
            chunk: (workers * 4).clamp(4, 32),
            queue: VecDeque::new(),
            carry: None,
            packer: Packer::new(pack, names.len()),
            names,
            stats,
            batches: 0,
            resume: None,
            fingerprint: fingerprint(cfg, &shape, world),
            rank,
            world,
        })
    }

    pub fn with_default_opener(
        cfg: &DataConfig,
        shape: PipelineShape,
        rank: usize,
        world: usize,
    ) -> Result<Self> {
        Self::new(cfg, shape, rank, world, Arc::new(WdsOpener))
    }

    /// Moves a fresh pipeline to `state`.
    pub fn restore(&mut self, state: LoaderState) -> Result<()> {
        let bad = |m: String| Err(DataError::State(m));
        if state.version != STATE_VERSION {
            return bad(format!(
                "state version {} but this build reads version {STATE_VERSION}",
                state.version
            ));
        }
        if (state.rank, state.world) != (self.rank, self.world) {
            return bad(format!(
                "state is for rank {} of {}, loader is rank {} of {}",
                state.rank, state.world, self.rank, self.world
            ));
        }
        if state.fingerprint != self.fingerprint {
            return bad(
                "state was saved under a different [data] config (seed, sources, seq_len, shape ...)".into(),
            );
        }
        if state.sources.len() != self.sources.len() {
            return bad(format!(
                "state has {} sources, config has {}",
                state.sources.len(),
                self.sources.len()
            ));
        }
        for (src, st) in self.sources.iter_mut().zip(state.sources) {
            src.restore(st)?;
        }
        self.mixture_rng = Rng(state.mixture_rng);
        self.stats = state.stats;
        self.batches = state.batches;
        self.resume = state.partial;
        Ok(())
    }

    fn live(&self) -> Snapshot {
        Snapshot {
            mixture_rng: self.mixture_rng.0,
            sources: self.sources.iter().map(|s| s.state().clone()).collect(),
        }
    }

    /// State at the current batch boundary (see the module docs).
    pub fn state(&self) -> LoaderState {
        let (snap, partial) = match (&self.carry, self.queue.front()) {
            (Some((snap, ip)), _) => (
                snap.clone(),
                ip.started.then(|| PartialDoc {
                    source: ip.source,
                    key: ip.doc.key.clone(),
                    units_done: ip.unit,
                    tokens_done: ip.offset,
                }),
            ),
            (None, Some(item)) => (item.snap.clone(), None),
            (None, None) => (self.live(), None),
        };
        let partial = partial.or_else(|| self.resume.clone());
        LoaderState {
            version: STATE_VERSION,
            fingerprint: self.fingerprint.clone(),
            rank: self.rank,
            world: self.world,
            rows: self.cfg.batch_size,
            batches: self.batches,
            mixture_rng: snap.mixture_rng,
            sources: snap.sources,
            partial,
            stats: self.stats.clone(),
        }
    }

    /// Keeps `chunk` samples drawn ahead of the packer, each decoding on the pool as soon as it
    /// is read, so reading, decoding and packing overlap; results are consumed in draw order.
    fn top_up(&mut self) -> Result<()> {
        while self.queue.len() < self.chunk {
            let snap = self.live();
            let source = self.mixture_rng.weighted(&self.weights);
            let result = match self.sources[source].pull()? {
                Pulled::Skip(s) => Pending::Ready(Err(s)),
                Pulled::Sample { shard, raw } => {
                    let (tx, rx) = sync_channel(1);
                    let (ctx, kind) = (self.ctx.clone(), self.kinds[source]);
                    self.pool.spawn(move || {
                        // the receiver is gone only when the pipeline was dropped
                        let _ = tx.send(process(&raw, &shard, kind, &ctx));
                    });
                    Pending::Decoding(rx)
                }
            };
            self.queue.push_back(Item { snap, source, result });
        }
        Ok(())
    }

    fn count_skip(&mut self, source: usize, skip: &Skip) -> Result<()> {
        skip.warn();
        self.stats.skipped.add(skip.reason);
        self.stats.sources[source].skipped += 1;
        self.check_skips()
    }

    fn check_skips(&self) -> Result<()> {
        let skipped = self.stats.skipped.total();
        let seen = skipped + self.stats.sources.iter().map(|s| s.good).sum::<u64>();
        let fraction = skipped as f64 / seen.max(1) as f64;
        if seen >= self.cfg.min_samples_for_skip_check && fraction > self.cfg.max_skip_fraction {
            return Err(DataError::TooManySkipped {
                skipped,
                seen,
                fraction,
                max: self.cfg.max_skip_fraction,
                reasons: self.stats.skipped.to_string(),
            });
        }
        Ok(())
    }

    /// The next document to pack (skips are counted on the way).
    fn next_doc(&mut self) -> Result<(Snapshot, InProgress)> {
        loop {
            self.top_up()?;
            let item = self.queue.pop_front().expect("topped up");
            let result = match item.result {
                Pending::Ready(r) => r,
                Pending::Decoding(rx) => rx.recv().map_err(|_| {
                    DataError::Pipeline("a decode worker died (panic while decoding?)".into())
                })?,
            };
            match result {
                Err(skip) => self.count_skip(item.source, &skip)?,
                Ok(doc) => {
                    let mut ip = InProgress::new(doc, item.source);
                    if let Some(p) = self.resume.take() {
                        if (p.source, p.key.as_str()) != (item.source, ip.doc.key.as_str()) {
                            return Err(DataError::State(format!(
                                "restored stream yields {:?} (source {}) where the state expects {:?} (source {})",
                                ip.doc.key, item.source, p.key, p.source
                            )));
                        }
                        (ip.unit, ip.offset, ip.started) = (p.units_done, p.tokens_done, true);
                    }
                    return Ok((item.snap, ip));
                }
            }
        }
    }

    /// Packs until `batch_size` rows are full and assembles them.
    pub fn next_batch(&mut self) -> Result<Batch> {
        let want = self.cfg.batch_size;
        while self.packer.rows.len() < want {
            let (snap, mut ip) = match self.carry.take() {
                Some(c) => c,
                None => self.next_doc()?,
            };
            let was_started = ip.started;
            let done = self.packer.feed(&mut ip, want);
            if ip.started && !was_started {
                self.stats.sources[ip.source].good += 1;
                self.check_skips()?;
            }
            if !done {
                self.carry = Some((snap, ip));
            }
        }
        let (rows, dt, di) = self.packer.take_rows();
        let batch =
            assemble(rows, &self.packer.shape, self.shape.image_size, &self.names, (dt, di), self.batches)?;
        self.batches += 1;
        for (acc, c) in self.stats.sources.iter_mut().zip(&batch.sources) {
            acc.samples += c.samples;
            acc.tokens += c.tokens;
            acc.images += c.images;
        }
        self.stats.dropped_tokens += dt;
        self.stats.dropped_images += di;
        self.stats.real_tokens += batch.real_tokens() as u64;
        self.stats.total_tokens += (batch.batch_size * batch.seq_len) as u64;
        Ok(batch)
    }
}
