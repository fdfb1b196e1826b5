//! One source's endless stream on one rank: its shards in a fresh seeded order every epoch
//! (resampling forever), grouped samples through a seeded shuffle buffer.
//!
//! Exact resume without storing sample bytes: the state holds the read head
//! `(epoch, shard_pos, sample_index)` and the *locations* of buffered samples; `restore` re-reads
//! from the oldest buffered location up to the head (no decoding), which also leaves the shard
//! reader exactly at the head.

use std::collections::HashMap;
use std::sync::Arc;

use crate::config::SourceConfig;
use crate::error::{DataError, Result};
use crate::rng::Rng;
use crate::shards::{RawSample, ShardItem, ShardOpener};
use crate::skip::{Skip, SkipReason};
use crate::stall::{OpenFailure, TimedReader};
use crate::state::{SampleLoc, SourceState};

/// What the stream hands out next.
pub enum Pulled {
    Sample { shard: String, raw: RawSample },
    Skip(Skip),
}

/// One step of the shard reader.
enum Step {
    Sample(SampleLoc, RawSample),
    Skip(Skip),
    EndOfShard,
}

pub struct SourceStream {
    pub name: String,
    cfg_index: u64,
    seed: u64,
    rank: u64,
    urls: Vec<String>,
    buffer_cap: usize,
    opener: Arc<dyn ShardOpener>,
    st: SourceState,
    /// Payloads of `st.buffer`, same order.
    buf: Vec<(String, RawSample)>,
    reader: Option<TimedReader>,
    /// `data.read_timeout_s` (`None`: wait for a shard as long as it takes).
    read_timeout: Option<std::time::Duration>,
}

impl SourceStream {
    /// `urls` are this rank's shards (already split); `index` is the source's position in the config.
    pub fn new(
        cfg: &SourceConfig,
        index: usize,
        urls: Vec<String>,
        seed: u64,
        rank: usize,
        buffer_cap: usize,
        opener: Arc<dyn ShardOpener>,
    ) -> Self {
        let st = SourceState {
            name: cfg.name.clone(),
            epoch: 0,
            shard_pos: 0,
            sample_index: 0,
            rng: Rng::from_words(&[seed, index as u64, rank as u64, 0x5348_5546]).0,
            buffer: Vec::new(),
            epoch_samples: 0,
        };
        Self {
            name: cfg.name.clone(),
            cfg_index: index as u64,
            seed,
            rank: rank as u64,
            urls,
            buffer_cap: buffer_cap.max(1),
            opener,
            st,
            buf: Vec::new(),
            reader: None,
            read_timeout: None,
        }
    }

    /// Abandons a shard whose reader makes no progress for `timeout` (`stall.rs`).
    pub fn with_read_timeout(mut self, timeout: Option<std::time::Duration>) -> Self {
        self.read_timeout = timeout;
        self
    }

    pub fn state(&self) -> &SourceState {
        &self.st
    }

    /// Puts the stream where `st` says, re-reading the shuffle buffer's samples.
    pub fn restore(&mut self, st: SourceState) -> Result<()> {
        if st.name != self.name {
            return Err(DataError::State(format!(
                "source {:?} in state, {:?} in config",
                st.name, self.name
            )));
        }
        if st.shard_pos >= self.urls.len() {
            return Err(DataError::State(format!(
                "source {:?}: shard position {} but this rank has {} shards",
                st.name,
                st.shard_pos,
                self.urls.len()
            )));
        }
        self.reader = None;
        self.buf.clear();
        let Some(oldest) = st.buffer.iter().min().copied() else {
            self.st = st;
            return Ok(());
        };
        let head = (st.epoch, st.shard_pos, st.sample_index);
        let wanted: HashMap<SampleLoc, usize> = st.buffer.iter().enumerate().map(|(i, l)| (*l, i)).collect();
        let mut found: Vec<Option<(String, RawSample)>> = vec![None; st.buffer.len()];
        self.st = SourceState {
            epoch: oldest.epoch,
            shard_pos: oldest.shard_pos,
            sample_index: oldest.index,
            buffer: Vec::new(),
            ..st.clone()
        };
        while (self.st.epoch, self.st.shard_pos, self.st.sample_index) < head {
            if let Step::Sample(loc, raw) = self.step()?
                && let Some(&i) = wanted.get(&loc)
            {
                found[i] = Some((self.url(loc.epoch, loc.shard_pos).to_string(), raw));
            }
        }
        if (self.st.epoch, self.st.shard_pos, self.st.sample_index) != head {
            return Err(DataError::State(format!("source {:?}: re-reading overshot the read head", st.name)));
        }
        for (i, f) in found.into_iter().enumerate() {
            let item = f.ok_or_else(|| {
                DataError::State(format!(
                    "source {:?}: buffered sample {:?} not found when re-reading (shards changed?)",
                    st.name, st.buffer[i]
                ))
            })?;
            self.buf.push(item);
        }
        self.st = st;
        Ok(())
    }

    /// The next sample out of the shuffle buffer, or a skip (missing/truncated shard) to count.
    pub fn pull(&mut self) -> Result<Pulled> {
        while self.buf.len() < self.buffer_cap {
            match self.step()? {
                Step::Sample(loc, raw) => {
                    self.buf.push((self.url(loc.epoch, loc.shard_pos).to_string(), raw));
                    self.st.buffer.push(loc);
                }
                Step::Skip(s) => return Ok(Pulled::Skip(s)),
                Step::EndOfShard => {}
            }
        }
        let mut rng = Rng(self.st.rng);
        let i = rng.below(self.buf.len());
        self.st.rng = rng.0;
        self.st.buffer.swap_remove(i);
        let (shard, raw) = self.buf.swap_remove(i);
        Ok(Pulled::Sample { shard, raw })
    }

    fn order(&self, epoch: u64) -> Vec<usize> {
        let mut order: Vec<usize> = (0..self.urls.len()).collect();
        Rng::from_words(&[self.seed, self.cfg_index, self.rank, epoch, 0x4f52_4445]).shuffle(&mut order);
        order
    }

    fn url(&self, epoch: u64, shard_pos: usize) -> &str {
        &self.urls[self.order(epoch)[shard_pos]]
    }

    fn advance_shard(&mut self) -> Result<()> {
        self.reader = None;
        self.st.shard_pos += 1;
        self.st.sample_index = 0;
        if self.st.shard_pos == self.urls.len() {
            if self.st.epoch_samples == 0 {
                return Err(DataError::Shards(format!(
                    "source {:?}: none of its {} shards on rank {} yielded a sample (first: {})",
                    self.name,
                    self.urls.len(),
                    self.rank,
                    self.urls[0]
                )));
            }
            self.st.epoch += 1;
            self.st.shard_pos = 0;
            self.st.epoch_samples = 0;
        }
        Ok(())
    }

    /// Reads one item at the head: opens the shard (skipping samples already read) if needed.
    fn step(&mut self) -> Result<Step> {
        let url = self.url(self.st.epoch, self.st.shard_pos).to_string();
        let skip = |reason, detail: String| Skip { reason, shard: url.clone(), key: String::new(), detail };
        if self.reader.is_none() {
            let mut it = match TimedReader::open(&self.opener, &url, self.read_timeout) {
                Ok(it) => it,
                Err(failure) => {
                    self.advance_shard()?;
                    return Ok(Step::Skip(match failure {
                        OpenFailure::Refused(e) => skip(SkipReason::MissingShard, e),
                        OpenFailure::Stalled(e) => skip(SkipReason::StalledShard, e),
                    }));
                }
            };
            for _ in 0..self.st.sample_index {
                if !matches!(it.next_item(), Ok(Some(ShardItem::Sample(_)))) {
                    return Err(DataError::State(format!(
                        "shard {url} has fewer than {} samples on re-reading (or stalled)",
                        self.st.sample_index
                    )));
                }
            }
            self.reader = Some(it);
        }
        let next = match self.reader.as_mut() {
            Some(reader) => reader.next_item(),
            None => Ok(None),
        };
        let next = match next {
            Ok(next) => next,
            Err(stall) => {
                let at = self.st.sample_index;
                self.advance_shard()?;
                return Ok(Step::Skip(skip(
                    SkipReason::StalledShard,
                    format!("after {at} samples: {stall}"),
                )));
            }
        };
        match next {
            Some(ShardItem::Sample(raw)) => {
                let loc = SampleLoc {
                    epoch: self.st.epoch,
                    shard_pos: self.st.shard_pos,
                    index: self.st.sample_index,
                };
                self.st.sample_index += 1;
                self.st.epoch_samples += 1;
                Ok(Step::Sample(loc, raw))
            }
            Some(ShardItem::Truncated(e)) => {
                let at = self.st.sample_index;
                self.advance_shard()?;
                Ok(Step::Skip(skip(SkipReason::TruncatedShard, format!("after {at} samples: {e}"))))
            }
            None => {
                self.advance_shard()?;
                Ok(Step::EndOfShard)
            }
        }
    }
}
