//! Exact resume: a loader restored from a saved state emits exactly the batches the
//! uninterrupted loader emits, for every sample kind and the mixture, with packing.

mod common;

use common::{SHAPE, config, mixture, source};
use mm1_data::{DataConfig, Loader, LoaderState, SampleKind};

fn run(cfg: &DataConfig, n: usize) -> Vec<mm1_data::Batch> {
    let mut l = Loader::new(cfg, SHAPE, 0, 1).expect("loader");
    (0..n).map(|_| l.next_batch().expect("batch")).collect()
}

/// Runs `cut` batches, saves the state through JSON, restores, and compares the rest.
fn check_resume(cfg: &DataConfig, total: usize, cut: usize) -> LoaderState {
    let reference = run(cfg, total);
    let mut a = Loader::new(cfg, SHAPE, 0, 1).unwrap();
    for b in &reference[..cut] {
        assert_eq!(&a.next_batch().unwrap(), b);
    }
    let state = a.state();
    let json = serde_json::to_string(&state).unwrap();
    let state2: LoaderState = serde_json::from_str(&json).unwrap();
    assert_eq!(state, state2);
    let mut r = Loader::restore(cfg, SHAPE, 0, 1, state2).unwrap();
    for (i, want) in reference[cut..].iter().enumerate() {
        let got = r.next_batch().unwrap();
        assert_eq!(got.keys_sha256, want.keys_sha256, "batch {} after resume: keys differ", cut + i);
        assert_eq!(&got, want, "batch {} after resume differs", cut + i);
    }
    // the restored loader ends in exactly the state of the uninterrupted one
    assert_eq!(r.state(), end_state(cfg, total));
    state
}

fn end_state(cfg: &DataConfig, n: usize) -> LoaderState {
    let mut l = Loader::new(cfg, SHAPE, 0, 1).unwrap();
    for _ in 0..n {
        l.next_batch().unwrap();
    }
    l.state()
}

#[test]
fn resume_caption_exact() {
    let cfg = config(vec![source(SampleKind::Caption, 1.0)]);
    check_resume(&cfg, 8, 3);
}

#[test]
fn resume_interleaved_mid_document() {
    let cfg = config(vec![source(SampleKind::Interleaved, 1.0)]);
    // cut at several points: at least one of them lands inside a document split across rows
    let partial = (1..6).filter(|&cut| check_resume(&cfg, 7, cut).partial.is_some()).count();
    assert!(partial > 0, "no cut point fell inside a split interleaved document");
}

#[test]
fn resume_text_mid_document() {
    let cfg = config(vec![source(SampleKind::Text, 1.0)]);
    let st = check_resume(&cfg, 6, 2);
    assert!(st.partial.is_some(), "text documents are longer than a row, the cut should be inside one");
}

#[test]
fn resume_mixture_across_epochs_with_prefetch() {
    // 4 shards x 20 samples per source; 30 batches go through several epochs of each source.
    let mut cfg = config(mixture());
    cfg.prefetch = 3;
    check_resume(&cfg, 30, 17);
}

#[test]
fn prefetch_thread_equals_inline() {
    let mut cfg = config(mixture());
    let inline = run(&cfg, 6);
    cfg.prefetch = 2;
    cfg.workers = 1;
    assert_eq!(run(&cfg, 6), inline);
}

#[test]
fn state_from_another_config_is_rejected() {
    let cfg = config(mixture());
    let mut l = Loader::new(&cfg, SHAPE, 0, 1).unwrap();
    l.next_batch().unwrap();
    let state = l.state();
    let mut other = cfg.clone();
    other.seed += 1;
    let err = Loader::restore(&other, SHAPE, 0, 1, state.clone()).err().expect("must fail");
    assert!(err.to_string().contains("different [data] config"), "{err}");
    let err = Loader::restore(&cfg, SHAPE, 0, 2, state).err().expect("must fail");
    assert!(err.to_string().contains("rank 0 of 1"), "{err}");
}
