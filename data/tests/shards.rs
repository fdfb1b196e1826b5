//! Shard reading: grouping identical to Python's webdataset on shards its `TarWriter` wrote,
//! all three kinds, shard specs (brace ranges, `::`, `pipe:`), rank split.

mod common;

use std::collections::BTreeSet;

use common::{SHAPE, config, fixture, source};
use mm1_data::inspect::inspect;
use mm1_data::sample::ProcessCtx;
use mm1_data::shards::{ShardItem, ShardOpener, expand_spec, split_shards};
use mm1_data::{Loader, ResizeMode, SampleKind, WdsOpener};
use serde_json::Value;

fn expected() -> Value {
    serde_json::from_slice(&std::fs::read(fixture("wds_mixed.expected.json")).unwrap()).unwrap()
}

fn ctx() -> ProcessCtx {
    ProcessCtx { tokenizer: None, image_size: 16, resize: ResizeMode::ShortestSideCrop, max_pixels: 1 << 24 }
}

fn pool() -> rayon::ThreadPool {
    rayon::ThreadPoolBuilder::new().num_threads(2).build().unwrap()
}

#[test]
fn grouping_matches_python_webdataset() {
    let url = fixture("wds_mixed.tar").display().to_string();
    let ours: Vec<(String, Vec<String>)> = WdsOpener
        .open(&url)
        .unwrap()
        .map(|item| match item {
            ShardItem::Sample(s) => {
                let mut m: Vec<String> = s.members.iter().map(|(e, _)| e.clone()).collect();
                m.sort();
                (s.key, m)
            }
            ShardItem::Truncated(e) => panic!("fixture is not truncated: {e}"),
        })
        .collect();
    let theirs: Vec<(String, Vec<String>)> = expected()["samples"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            let m =
                s["members"].as_array().unwrap().iter().map(|x| x.as_str().unwrap().to_string()).collect();
            (s["key"].as_str().unwrap().to_string(), m)
        })
        .collect();
    assert_eq!(ours, theirs);
    // the upper-case `.JPG` member of cap/s004 is grouped as `jpg`, as Python does
    assert!(ours.iter().any(|(k, m)| k == "cap/s004" && m.contains(&"jpg".to_string())));
}

#[test]
fn inspect_infers_all_kinds_and_matches_python_keys_hash() {
    let exp = expected();
    let spec = fixture("wds_mixed.tar").display().to_string();
    let r = inspect(&spec, None, &ctx(), &WdsOpener, &pool()).unwrap();
    assert_eq!(r.samples, 12);
    assert_eq!(r.images, exp["images"].as_u64().unwrap());
    for k in ["caption", "interleaved", "text"] {
        assert_eq!(r.by_kind[k], exp["by_kind"][k].as_u64().unwrap(), "{k}");
    }
    assert_eq!(r.skipped.total(), 0);
    assert_eq!(r.keys_sha256, exp["keys_sha256"].as_str().unwrap());
}

#[test]
fn inspect_with_declared_kind_counts_the_others_as_bad() {
    // declared caption: the 3 interleaved docs have no image member / the 4 texts no image
    let spec = fixture("wds_mixed.tar").display().to_string();
    let r = inspect(&spec, Some(SampleKind::Caption), &ctx(), &WdsOpener, &pool()).unwrap();
    assert_eq!(r.samples, 5);
    assert_eq!(r.skipped.get(mm1_data::SkipReason::MissingImage), 7);
}

#[test]
fn shard_specs_expand_like_python() {
    assert_eq!(expand_spec("a-{000..002}.tar").unwrap(), ["a-000.tar", "a-001.tar", "a-002.tar"]);
    assert_eq!(expand_spec("a-{0..1}.tar::b.tar").unwrap(), ["a-0.tar", "a-1.tar", "b.tar"]);
    assert!(expand_spec("").is_err());
}

#[test]
fn pipe_spec_reads_the_same_samples() {
    let path = fixture("wds_mixed.tar").display().to_string();
    let direct = inspect(&path, None, &ctx(), &WdsOpener, &pool()).unwrap();
    let piped = inspect(&format!("pipe:cat {path}"), None, &ctx(), &WdsOpener, &pool()).unwrap();
    assert_eq!(direct, piped);
}

#[test]
fn rank_split_covers_every_shard_exactly_once() {
    for n in [4usize, 7, 16, 33] {
        for world in 1..=4usize {
            for workers in 1..=2usize {
                if n < world * workers {
                    assert!(split_shards(n, 0, world, 0, workers).is_err());
                    continue;
                }
                let mut seen = vec![0; n];
                for rank in 0..world {
                    for w in 0..workers {
                        for i in split_shards(n, rank, world, w, workers).unwrap() {
                            seen[i] += 1;
                        }
                    }
                }
                assert!(seen.iter().all(|&c| c == 1), "n={n} world={world} workers={workers}: {seen:?}");
            }
        }
    }
}

/// Keys of the first epoch a rank reads for one source (no shuffling: one sample per draw).
fn epoch_keys(kind: SampleKind, rank: usize, world: usize) -> BTreeSet<String> {
    let mut cfg = config(vec![source(kind, 1.0)]);
    cfg.shuffle_buffer = 1;
    let mut l = Loader::new(&cfg, SHAPE, rank, world).unwrap();
    let per_rank = 4 / world * 20;
    let mut keys = BTreeSet::new();
    while l.stats().sources[0].samples < per_rank as u64 {
        keys.extend(l.next_batch().unwrap().keys);
    }
    keys
}

#[test]
fn two_ranks_read_disjoint_halves_of_the_data() {
    let a = epoch_keys(SampleKind::Caption, 0, 2);
    let b = epoch_keys(SampleKind::Caption, 1, 2);
    let all = epoch_keys(SampleKind::Caption, 0, 1);
    assert!(a.is_disjoint(&b));
    assert_eq!((a.len(), b.len(), all.len()), (40, 40, 80));
    let union: BTreeSet<String> = a.union(&b).cloned().collect();
    assert_eq!(union, all);
}
