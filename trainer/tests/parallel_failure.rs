//! Failure handling on 2 MPI ranks: a hung rank and a crashed rank end the job with a clear
//! error naming the rank (and, for the hang, the step). A hung rank is aborted while it still
//! hangs: it never gets to print [`WOKE`]. How fast that happens is not asserted here (tests do
//! not assert wall time); the check-in timeout is `TIMEOUT_S` of the workers below.

mod parallel_support;

use parallel_support::*;

/// Printed by a hung rank if it ever wakes from its 60 s sleep (it must be aborted before).
const WOKE: &str = "hung rank woke up";
/// Printed by a rank that completed all five steps.
const ALL_STEPS_DONE: &str = "all 5 steps done";

#[test]
#[cfg_attr(not(feature = "mpi"), ignore = "needs the `mpi` feature: cargo test --features mm1-trainer/mpi")]
fn a_hung_rank_is_named_with_its_step_and_the_job_aborts() {
    let out = run_workers("workers::worker_hang", 2, &[]);
    let text = out.output();
    assert!(!out.success, "the job should fail\n{text}");
    assert!(
        text.contains("rank(s) 1 did not arrive") && text.contains("step 3"),
        "rank 0 should name rank 1 and step 3:\n{text}"
    );
    // Rank 1 sleeps 60 s: the job must be aborted before it wakes, not wait for it.
    assert!(!text.contains(WOKE), "the job waited for the hung rank instead of aborting it:\n{text}");
}

#[test]
#[cfg_attr(not(feature = "mpi"), ignore = "needs the `mpi` feature: cargo test --features mm1-trainer/mpi")]
fn a_hung_rank_0_is_reported_by_the_others() {
    let out = run_workers("workers::worker_hang_root", 2, &[]);
    let text = out.output();
    assert!(!out.success, "the job should fail\n{text}");
    assert!(
        text.contains("rank 1 at step 3") && text.contains("rank 0 did not confirm"),
        "rank 1 should report that rank 0 is missing at step 3:\n{text}"
    );
    assert!(!text.contains(WOKE), "the job waited for the hung rank 0 instead of aborting it:\n{text}");
}

#[test]
#[cfg_attr(not(feature = "mpi"), ignore = "needs the `mpi` feature: cargo test --features mm1-trainer/mpi")]
fn a_crashed_rank_ends_the_job() {
    let out = run_workers("workers::worker_crash", 2, &[]);
    let text = out.output();
    assert!(!out.success, "the job should fail\n{text}");
    assert!(text.contains("rank 1"), "the launcher should name rank 1:\n{text}");
    // rank 0 never completes its five steps without rank 1
    assert!(!text.contains(ALL_STEPS_DONE), "a rank finished all steps without rank 1:\n{text}");
}

#[cfg(feature = "mpi")]
mod workers {
    use mm1_trainer::parallel::{Collective, FailureConfig, MpiCollective, ReduceOp};

    use super::{ALL_STEPS_DONE, WOKE};

    /// Check-in timeout of these workers.
    const TIMEOUT_S: f64 = 5.0;

    /// Five "steps" of one all-reduce each; `fail` runs on rank `who` at step 3.
    fn steps(who: usize, fail: impl Fn()) {
        let c = MpiCollective::init(FailureConfig { collective_timeout_s: TIMEOUT_S }).expect("MPI init");
        for step in 1..=5u64 {
            c.set_step(step);
            if step == 3 && c.rank() == who {
                fail();
            }
            let s = c.all_reduce(vec![1.0], ReduceOp::Sum).unwrap();
            assert_eq!(s, vec![2.0]);
        }
        println!("rank {}: {ALL_STEPS_DONE}", c.rank());
    }

    /// Hang for 60 s, then say so (the test asserts this line never appears).
    fn hang() {
        std::thread::sleep(std::time::Duration::from_secs(60));
        println!("{WOKE}");
    }

    #[test]
    #[ignore = "run on 2 ranks by a_hung_rank_is_named_with_its_step_and_the_job_aborts"]
    fn worker_hang() {
        steps(1, hang);
    }

    #[test]
    #[ignore = "run on 2 ranks by a_hung_rank_0_is_reported_by_the_others"]
    fn worker_hang_root() {
        steps(0, hang);
    }

    #[test]
    #[ignore = "run on 2 ranks by a_crashed_rank_ends_the_job"]
    fn worker_crash() {
        steps(1, || std::process::abort());
    }
}
