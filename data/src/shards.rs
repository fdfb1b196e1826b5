//! Shard specs and tar reading behind a small trait of ours (`ShardOpener`), so the reader can be
//! swapped. The default uses the `webdataset` crate, which groups members exactly like Python's
//! `webdataset.tariterators.group_by_keys`: key = path up to the first dot of the file name,
//! extension = the rest, lowercased; consecutive members with one key form one sample.

use crate::error::{DataError, Result};

/// One grouped sample, members keyed by lowercased extension (`jpg`, `txt`, `0.jpg`, ...).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawSample {
    pub key: String,
    pub members: Vec<(String, Vec<u8>)>,
}

impl RawSample {
    pub fn get(&self, ext: &str) -> Option<&[u8]> {
        self.members.iter().find(|(e, _)| e == ext).map(|(_, b)| b.as_slice())
    }
}

/// What reading a shard yields: samples, then possibly one error that ends the shard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ShardItem {
    Sample(RawSample),
    /// The archive broke off (truncated member, bad header): the rest of the shard is lost.
    Truncated(String),
}

pub type ShardIter = Box<dyn Iterator<Item = ShardItem> + Send>;

/// Opens one shard URL (local path, `file:`, `pipe:CMD`, ...) as a stream of grouped samples.
pub trait ShardOpener: Send + Sync {
    /// `Err` (with the reason) when the shard cannot be opened at all.
    fn open(&self, url: &str) -> std::result::Result<ShardIter, String>;
}

/// The `webdataset` crate's reader (`TarFiles` + `group_by_keys`).
#[derive(Debug, Clone, Copy, Default)]
pub struct WdsOpener;

impl ShardOpener for WdsOpener {
    fn open(&self, url: &str) -> std::result::Result<ShardIter, String> {
        // gopen would happily hand back a stream for a missing file only to fail on first read;
        // checking here names the problem as a missing shard rather than a truncated one.
        if !url.starts_with("pipe:") && !url.contains("://") {
            let path = url.strip_prefix("file:").unwrap_or(url);
            if !std::path::Path::new(path).is_file() {
                return Err(format!("no such file {path}"));
            }
        }
        let files = webdataset::shard::TarFiles::open(url).map_err(|e| e.to_string())?;
        Ok(wds_iter(files))
    }
}

/// Reads a shard held in memory (gzip or plain tar) with the same grouping as `WdsOpener`.
pub fn read_tar_bytes(bytes: Vec<u8>) -> std::result::Result<ShardIter, String> {
    let files =
        webdataset::shard::TarFiles::new(Box::new(std::io::Cursor::new(bytes))).map_err(|e| e.to_string())?;
    Ok(wds_iter(files))
}

fn wds_iter(files: webdataset::shard::TarFiles) -> ShardIter {
    let groups = webdataset::shard::group_by_keys(files);
    Box::new(WdsIter { inner: Box::new(groups), done: false })
}

struct WdsIter {
    inner: Box<dyn Iterator<Item = webdataset::Result<webdataset::Sample>> + Send>,
    done: bool,
}

impl Iterator for WdsIter {
    type Item = ShardItem;
    fn next(&mut self) -> Option<ShardItem> {
        if self.done {
            return None;
        }
        // A panic in the tar reader ends this shard like a broken archive would, never the run.
        let next = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.inner.next()));
        let next = match next {
            Ok(next) => next?,
            Err(payload) => {
                self.done = true;
                let msg = crate::skip::panic_message(payload.as_ref());
                return Some(ShardItem::Truncated(format!("tar reader panicked: {msg}")));
            }
        };
        match next {
            Ok(sample) => {
                let key = sample.key().unwrap_or_default().to_string();
                let members = sample
                    .iter()
                    .filter(|(name, _)| !webdataset::core::sample::is_meta(name))
                    .filter_map(|(name, v)| match v {
                        webdataset::Value::Bytes(b) => Some((name.clone(), b.to_vec())),
                        _ => None,
                    })
                    .collect();
                Some(ShardItem::Sample(RawSample { key, members }))
            }
            Err(e) => {
                // After an error the grouper would still hand out the half-read sample; drop it.
                self.done = true;
                Some(ShardItem::Truncated(e.to_string()))
            }
        }
    }
}

/// Expands a shard spec: `::`-joined parts, `${ENV}` substitution and brace ranges, in order
/// (the same rules as Python's `webdataset.shardlists.expand_urls`).
pub fn expand_spec(spec: &str) -> Result<Vec<String>> {
    let urls = webdataset::core::utils::expand_urls(spec)
        .map_err(|e| DataError::Shards(format!("cannot expand shard spec {spec:?}: {e}")))?;
    let urls: Vec<String> = urls.into_iter().filter(|u| !u.is_empty()).collect();
    if urls.is_empty() {
        return Err(DataError::Shards(format!("shard spec {spec:?} names no shard")));
    }
    Ok(urls)
}

/// The shard indices of `rank` among `world` ranks (each with `workers` reader workers, this one
/// being `worker`): shard `i` goes to global worker `i % (world*workers)`. Every shard is read by
/// exactly one worker of one rank; fails when there are fewer shards than workers in total.
pub fn split_shards(
    n_shards: usize,
    rank: usize,
    world: usize,
    worker: usize,
    workers: usize,
) -> Result<Vec<usize>> {
    if world == 0 || rank >= world || workers == 0 || worker >= workers {
        return Err(DataError::Config(format!(
            "rank {rank} of world {world}, worker {worker} of {workers} is not a valid position"
        )));
    }
    let slots = world * workers;
    if n_shards < slots {
        return Err(DataError::Shards(format!(
            "{n_shards} shards cannot be split over world*workers = {slots} readers: use more shards or fewer ranks"
        )));
    }
    let me = rank * workers + worker;
    Ok((0..n_shards).filter(|i| i % slots == me).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panicking_tar_reader_ends_the_shard_not_the_process() {
        let mut calls = 0;
        let inner = std::iter::from_fn(move || {
            calls += 1;
            if calls == 2 {
                panic!("reader bug at member {calls}")
            } else {
                Some(Ok(webdataset::Sample::new()))
            }
        });
        let mut it = WdsIter { inner: Box::new(inner), done: false };
        assert!(matches!(it.next(), Some(ShardItem::Sample(_))));
        match it.next() {
            Some(ShardItem::Truncated(e)) => assert!(e.contains("reader bug at member 2"), "{e}"),
            other => panic!("expected the panic as a truncated shard, got {other:?}"),
        }
        assert_eq!(it.next(), None, "the shard ends after the panic");
    }
}
