//! Stalled input (issue #17): a shard whose reader makes no progress for `data.read_timeout_s` is
//! abandoned and counted as `stalled_shard`, and the loader goes on with the other shards: a
//! `pipe:` command that hangs before its first byte, and one that hangs after a whole shard.

mod common;

use std::sync::mpsc;
use std::time::Duration;

use common::{SHAPE, config, source};
use mm1_data::{DataConfig, Loader, LoaderStats, SampleKind, SkipReason};

/// Runs the loader on its own thread until `stalls` stalled shards were counted and 4 more
/// batches came out; a loader that hangs fails the test instead of hanging it.
fn run_until_stalled(cfg: DataConfig, stalls: u64) -> LoaderStats {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut loader = Loader::new(&cfg, SHAPE, 0, 1).unwrap();
        let mut after = 0;
        for _ in 0..500 {
            loader.next_batch().unwrap();
            if loader.stats().skipped.get(SkipReason::StalledShard) >= stalls {
                after += 1;
                if after == 4 {
                    break;
                }
            }
        }
        let _ = tx.send(loader.stats().clone());
    });
    rx.recv_timeout(Duration::from_secs(120)).expect("the loader hung on a stalled shard")
}

#[test]
fn hanging_pipe_shards_are_abandoned_counted_and_the_others_still_read() {
    let mut captions = source(SampleKind::Caption, 1.0);
    let first = mm1_data::shards::expand_spec(&captions.shards).unwrap()[0].clone();
    // hangs before its first byte; hangs after a complete shard
    captions.shards = format!("{}::pipe:sleep 20::pipe:cat {first}; sleep 20", captions.shards);
    let cfg = DataConfig { read_timeout_s: 0.5, max_skip_fraction: 0.5, ..config(vec![captions]) };
    let stats = run_until_stalled(cfg, 2);
    assert_eq!(stats.skipped.get(SkipReason::StalledShard), 2, "{:?}", stats.skipped);
    assert_eq!(stats.skipped.total(), 2, "nothing else was skipped: {:?}", stats.skipped);
    // more than the 19 samples the second stalled shard gave before it hung (its last one waits for EOF)
    assert!(stats.sources[0].samples > 40, "the other shards were read: {:?}", stats.sources[0]);
}

#[test]
fn a_negative_read_timeout_is_a_config_error_naming_the_key() {
    let cfg = DataConfig { read_timeout_s: -1.0, ..config(vec![source(SampleKind::Text, 1.0)]) };
    let err = Loader::new(&cfg, SHAPE, 0, 1).err().expect("refused").to_string();
    assert!(err.contains("data.read_timeout_s"), "{err}");
}
