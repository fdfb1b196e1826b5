//! Stalled input: a shard whose reader makes no progress for `data.read_timeout_s` (a `pipe:`
//! command that hangs, a stuck network filesystem) is abandoned and counted as a
//! `stalled_shard` skip naming the shard, instead of hanging the job.
//!
//! With a timeout, the shard is opened and read on a thread of its own that hands the grouped
//! samples over a small bounded channel, in order (so exact resume is unchanged); the loader waits
//! on the channel with the timeout. An abandoned reader thread stays blocked in its read until
//! the read returns (the `pipe:` command exits, the filesystem answers), then finds the channel
//! closed and ends: at most one thread per stalled shard, holding at most the channel's samples.

use std::sync::Arc;
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, sync_channel};
use std::time::Duration;

use crate::shards::{ShardItem, ShardIter, ShardOpener};

/// Samples read ahead of the loader by a shard's reader thread.
const READ_AHEAD: usize = 4;

/// Why a shard could not be opened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OpenFailure {
    /// The opener refused it (missing file, failing command): the reason.
    Refused(String),
    /// Opening made no progress within the timeout.
    Stalled(String),
}

enum Msg {
    Opened,
    Refused(String),
    Item(ShardItem),
}

/// A shard being read, with or without a timeout.
pub struct TimedReader(Inner);

enum Inner {
    Direct(ShardIter),
    Threaded { rx: Receiver<Msg>, timeout: Duration },
}

impl TimedReader {
    /// Opens `url` through `opener`; with a timeout, on a reader thread.
    pub fn open(
        opener: &Arc<dyn ShardOpener>,
        url: &str,
        timeout: Option<Duration>,
    ) -> Result<Self, OpenFailure> {
        let Some(timeout) = timeout else {
            return opener.open(url).map(|it| TimedReader(Inner::Direct(it))).map_err(OpenFailure::Refused);
        };
        let (tx, rx) = sync_channel(READ_AHEAD);
        let (opener, owned_url) = (opener.clone(), url.to_string());
        std::thread::Builder::new()
            .name("mm1-data-shard-reader".into())
            .spawn(move || read_shard(opener.as_ref(), &owned_url, tx))
            .map_err(|e| OpenFailure::Refused(format!("cannot start a reader thread: {e}")))?;
        match rx.recv_timeout(timeout) {
            Ok(Msg::Opened) => Ok(TimedReader(Inner::Threaded { rx, timeout })),
            Ok(Msg::Refused(e)) => Err(OpenFailure::Refused(e)),
            Ok(Msg::Item(_)) | Err(RecvTimeoutError::Disconnected) => {
                Err(OpenFailure::Refused("the reader thread ended before opening the shard".into()))
            }
            Err(RecvTimeoutError::Timeout) => Err(OpenFailure::Stalled(stalled(timeout, "opening"))),
        }
    }

    /// The next item; `Ok(None)` at the end of the shard, `Err` (the reason) when reading made no
    /// progress within the timeout.
    pub fn next_item(&mut self) -> Result<Option<ShardItem>, String> {
        match &mut self.0 {
            Inner::Direct(it) => Ok(it.next()),
            Inner::Threaded { rx, timeout } => match rx.recv_timeout(*timeout) {
                Ok(Msg::Item(item)) => Ok(Some(item)),
                Ok(Msg::Opened | Msg::Refused(_)) | Err(RecvTimeoutError::Disconnected) => Ok(None),
                Err(RecvTimeoutError::Timeout) => Err(stalled(*timeout, "reading")),
            },
        }
    }
}

fn stalled(timeout: Duration, what: &str) -> String {
    format!(
        "{what} made no progress for {:.1} s (data.read_timeout_s): shard abandoned",
        timeout.as_secs_f64()
    )
}

/// The reader thread: open, then hand over every item until the shard ends or the loader has
/// abandoned it (the channel is closed).
fn read_shard(opener: &dyn ShardOpener, url: &str, tx: SyncSender<Msg>) {
    let items = match opener.open(url) {
        Ok(items) => items,
        Err(e) => {
            let _ = tx.send(Msg::Refused(e));
            return;
        }
    };
    if tx.send(Msg::Opened).is_err() {
        return;
    }
    for item in items {
        if tx.send(Msg::Item(item)).is_err() {
            return;
        }
    }
}
