//! Data streams (`streams.rs`): M ranks together read, every step, exactly the rows that N ranks
//! read over the same streams, and stream states saved by N ranks resume on M ranks.

mod common;

use common::{SHAPE, config, mixture};
use mm1_data::streams::{concat, owned_streams, stream_rows};
use mm1_data::{Batch, DataConfig, Loader, LoaderState, StreamSet};

/// 4 streams of 2 rows each per batch.
const STREAMS: usize = 4;
const ROWS: usize = 2;

/// The config of a rank of `world`: its batch holds its streams' rows.
fn cfg_for(world: usize) -> DataConfig {
    DataConfig { batch_size: ROWS * STREAMS / world, ..config(mixture()) }
}

fn ranks(world: usize, states: Option<&[LoaderState]>) -> Vec<StreamSet> {
    let cfg = cfg_for(world);
    (0..world)
        .map(|r| {
            let mine = states.map(|all| all[owned_streams(r, world, STREAMS).unwrap()].to_vec());
            StreamSet::new(&cfg, SHAPE, (r, world, STREAMS), mine).unwrap()
        })
        .collect()
}

/// `steps` global batches: every rank's batch, concatenated in rank order.
fn global_batches(sets: &mut [StreamSet], steps: usize) -> Vec<Batch> {
    (0..steps).map(|_| concat(sets.iter_mut().map(|s| s.next_batch().unwrap()).collect())).collect()
}

/// Every stream's state, in stream order, through JSON (as a checkpoint holds them).
fn saved(sets: &[StreamSet]) -> Vec<LoaderState> {
    let all: Vec<LoaderState> = sets.iter().flat_map(StreamSet::states).collect();
    serde_json::from_str(&serde_json::to_string(&all).unwrap()).unwrap()
}

#[test]
fn the_union_of_the_ranks_streams_is_the_same_for_1_2_and_4_ranks() {
    let one = global_batches(&mut ranks(1, None), 5);
    assert!(one.iter().all(|b| b.batch_size == ROWS * STREAMS));
    for world in [2, 4] {
        let mut sets = ranks(world, None);
        for (r, s) in sets.iter().enumerate() {
            assert_eq!(s.streams().len(), STREAMS / world, "rank {r} of {world}");
        }
        assert_eq!(global_batches(&mut sets, 5), one, "{world} ranks vs 1 rank, per step");
    }
}

#[test]
fn one_stream_per_rank_is_the_plain_loader_of_that_rank() {
    let cfg = config(mixture());
    for r in 0..2 {
        let mut plain = Loader::new(&cfg, SHAPE, r, 2).unwrap();
        let mut set = StreamSet::new(&cfg, SHAPE, (r, 2, 2), None).unwrap();
        for i in 0..4 {
            assert_eq!(set.next_batch().unwrap(), plain.next_batch().unwrap(), "rank {r}, batch {i}");
        }
        assert_eq!(set.states(), vec![plain.state()]);
    }
}

#[test]
fn stream_states_saved_by_2_ranks_resume_on_1_and_on_4_ranks() {
    let uninterrupted = global_batches(&mut ranks(1, None), 7);
    let mut two = ranks(2, None);
    assert_eq!(global_batches(&mut two, 3), uninterrupted[..3]);
    let states = saved(&two);
    assert_eq!(states.len(), STREAMS);
    for world in [1, 4] {
        let mut resumed = ranks(world, Some(&states));
        assert_eq!(global_batches(&mut resumed, 4), uninterrupted[3..], "2 ranks -> {world}");
    }
    // and back: 4 ranks' states resume on 2
    let mut four = ranks(4, Some(&states));
    global_batches(&mut four, 2);
    let mut back = ranks(2, Some(&saved(&four)));
    assert_eq!(global_batches(&mut back, 2), uninterrupted[5..]);
}

#[test]
fn impossible_splits_are_errors_naming_both_numbers_and_what_works() {
    let e = owned_streams(0, 3, 4).unwrap_err().to_string();
    assert!(e.contains("data.streams (4)") && e.contains("ranks (3)") && e.contains("1, 2, 4"), "{e}");
    let e = stream_rows(3, 1, 2).unwrap_err().to_string();
    assert!(e.contains("data.batch_size (3)") && e.contains("= 2"), "{e}");
    // a state saved with other rows per stream
    let mut two = ranks(2, None);
    global_batches(&mut two, 1);
    let states = saved(&two);
    let cfg = DataConfig { batch_size: 4, ..config(mixture()) }; // 1 row per stream on 1 rank
    let e = StreamSet::new(&cfg, SHAPE, (0, 1, STREAMS), Some(states)).err().unwrap().to_string();
    assert!(e.contains("2 rows per batch") && e.contains("gives each stream 1"), "{e}");
}
