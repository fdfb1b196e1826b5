//! Mixing: realised share of samples per source within tolerance of the weights, determinism
//! given the seed, and per-source counts in samples, tokens and images.

mod common;

use common::{SHAPE, config, mixture};
use mm1_data::Loader;

#[test]
fn realised_sample_shares_follow_the_weights() {
    let mut cfg = config(mixture()); // 45 / 45 / 10
    cfg.seq_len = 96;
    cfg.batch_size = 8;
    let mut l = Loader::new(&cfg, SHAPE, 0, 1).unwrap();
    let mut per_batch_sum = [0u64; 3];
    for _ in 0..48 {
        let b = l.next_batch().unwrap();
        for (acc, s) in per_batch_sum.iter_mut().zip(&b.sources) {
            *acc += s.samples;
        }
    }
    let stats = l.stats();
    let total: u64 = stats.sources.iter().map(|s| s.samples).sum();
    assert!(total > 400, "{total} samples");
    for (i, (s, w)) in stats.sources.iter().zip([0.45, 0.45, 0.10]).enumerate() {
        assert_eq!(s.samples, per_batch_sum[i], "stats are the sum of the batches");
        let share = s.samples as f64 / total as f64;
        // binomial sd at n~500 is ~0.022; 4 sd
        assert!((share - w).abs() < 0.09, "{}: share {share:.3} vs weight {w} ({total} samples)", s.name);
    }
    // under packing the token and image shares differ from the sample shares (MM1 logs all three)
    let shares = stats.realised_shares();
    let text = &shares[2].1;
    assert_eq!(text[2], 0.0, "text-only source has no images");
    assert!(shares[1].1[2] > shares[0].1[2], "interleaved docs carry more images per sample than captions");
}

#[test]
fn same_seed_same_batches_other_seed_other_batches() {
    let cfg = config(mixture());
    let hashes = |cfg: &mm1_data::DataConfig| {
        let mut l = Loader::new(cfg, SHAPE, 0, 1).unwrap();
        (0..5).map(|_| l.next_batch().unwrap().keys_sha256).collect::<Vec<_>>()
    };
    assert_eq!(hashes(&cfg), hashes(&cfg));
    let mut other = cfg.clone();
    other.seed += 1;
    assert_ne!(hashes(&cfg), hashes(&other));
}

#[test]
fn zero_weight_source_is_never_drawn() {
    let mut sources = mixture();
    sources[1].weight = 0.0;
    let mut l = Loader::new(&config(sources), SHAPE, 0, 1).unwrap();
    for _ in 0..10 {
        assert_eq!(l.next_batch().unwrap().sources[1].samples, 0);
    }
}
