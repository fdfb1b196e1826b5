//! The loader's seeded streams are independent: every (seed, source, rank, epoch) reads its shards
//! in its own order (`SourceStream::order` through `Rng::from_words`; issue #15, item 1). Before the
//! fix, 96 such streams held only 12 distinct orders.

use std::collections::HashMap;
use std::sync::Arc;

use mm1_data::source::{Pulled, SourceStream};
use mm1_data::{RawSample, SampleKind, ShardItem, ShardOpener, SourceConfig};

const SHARDS: usize = 16;

/// Shard `URL` holds one sample, keyed by the URL.
struct OneSamplePerShard;

impl ShardOpener for OneSamplePerShard {
    fn open(&self, url: &str) -> Result<mm1_data::shards::ShardIter, String> {
        let s = RawSample { key: url.to_string(), members: vec![("txt".into(), url.as_bytes().to_vec())] };
        Ok(Box::new(std::iter::once(ShardItem::Sample(s))))
    }
}

/// The shard order of each of `epochs` epochs as the stream reads them: with a one-sample shuffle
/// buffer, samples come out in read order, one per shard.
fn orders(seed: u64, source: usize, rank: usize, epochs: usize) -> Vec<Vec<usize>> {
    let urls: Vec<String> = (0..SHARDS).map(|i| format!("{i}")).collect();
    let cfg = SourceConfig {
        name: format!("s{source}"),
        kind: SampleKind::Text,
        shards: String::new(),
        weight: 1.0,
    };
    let mut s = SourceStream::new(&cfg, source, urls, seed, rank, 1, Arc::new(OneSamplePerShard));
    (0..epochs)
        .map(|_| {
            (0..SHARDS)
                .map(|_| match s.pull().unwrap() {
                    Pulled::Sample { shard, .. } => shard.parse().unwrap(),
                    Pulled::Skip(k) => panic!("skip {k:?}"),
                })
                .collect()
        })
        .collect()
}

#[test]
fn shard_orders_differ_across_seed_source_rank_and_epoch() {
    let mut seen: HashMap<Vec<usize>, (u64, usize, usize, usize)> = HashMap::new();
    let mut first_shards = std::collections::BTreeSet::new();
    for seed in [0, 1] {
        for source in 0..3 {
            for rank in 0..4 {
                let got = orders(seed, source, rank, 4);
                assert_eq!(got, orders(seed, source, rank, 4), "same words, same orders");
                for (epoch, order) in got.into_iter().enumerate() {
                    let mut sorted = order.clone();
                    sorted.sort_unstable();
                    assert_eq!(sorted, (0..SHARDS).collect::<Vec<_>>(), "an epoch reads every shard once");
                    first_shards.insert(order[0]);
                    let at = (seed, source, rank, epoch);
                    if let Some(other) = seen.insert(order.clone(), at) {
                        panic!(
                            "(seed, source, rank, epoch) {at:?} and {other:?} read the shards in the same order \
                             {order:?} ({} distinct orders so far)",
                            seen.len()
                        );
                    }
                }
            }
        }
    }
    assert_eq!(seen.len(), 2 * 3 * 4 * 4);
    // 96 uniform orders start with at least 12 of the 16 shards except with probability < 1e-11.
    assert!(first_shards.len() >= 12, "orders start with only {} distinct shards", first_shards.len());
}
