//! The MPI side of the failure detector ([`super::watchdog`]): a check-in round with
//! rank 0 of the communicator before each collective, polled against a deadline, so that a
//! rank that is dead, hung, or at a different step is named instead of blocking everyone.
//!
//! Cost: one small message to rank 0 and one back per collective (tens of microseconds in
//! shared memory), paid only when `collective_timeout_s > 0`.

use std::time::{Duration, Instant};

use mpi::request::{Request, Scope};
use mpi::topology::SimpleCommunicator;
use mpi::traits::*;

use super::mpi::op_name;

const TAG_CHECK_IN: i32 = 0x6d31; // "m1"
const TAG_GO: i32 = 0x6d32;

/// What a rank reports at check-in; all ranks must agree.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct CheckIn {
    /// Training step ([`Collective::set_step`](super::Collective::set_step)).
    pub step: u64,
    /// Number of collectives issued on this communicator so far.
    pub seq: u64,
    /// Which collective (`Op::code`).
    pub op: u64,
}

impl CheckIn {
    fn describe(&self) -> String {
        format!("step {} (collective #{} {})", self.step, self.seq, op_name(self.op))
    }
}

/// Run one check-in round on `comm`. `Err` carries the message to print before aborting.
pub(crate) fn check_in(comm: &SimpleCommunicator, me: CheckIn, timeout: Duration) -> Result<(), String> {
    let size = comm.size() as usize;
    if size == 1 {
        return Ok(());
    }
    let msg = [me.step, me.seq, me.op];
    if comm.rank() == 0 {
        coordinate(comm, me, timeout)
    } else {
        comm.process_at_rank(0).send_with_tag(&msg[..], TAG_CHECK_IN);
        // Wait a little longer than rank 0 does, so that its message (which names the
        // missing rank) is the one printed first.
        let deadline = Instant::now() + timeout + timeout / 4 + Duration::from_millis(500);
        let mut go = [0u64; 1];
        let ok = mpi::request::scope(|scope| {
            let req = comm.process_at_rank(0).immediate_receive_into_with_tag(scope, &mut go[..], TAG_GO);
            settle(req, deadline)
        });
        if ok {
            Ok(())
        } else {
            Err(format!(
                "{} at {}: rank 0 did not confirm that every rank arrived within {:.1} s \
                 (rank 0 is dead or hung, or it is waiting on another rank)",
                rank_label(comm),
                me.describe(),
                timeout.as_secs_f64()
            ))
        }
    }
}

/// Rank 0: collect every rank's check-in before the deadline, compare, release them.
fn coordinate(comm: &SimpleCommunicator, me: CheckIn, timeout: Duration) -> Result<(), String> {
    let size = comm.size() as usize;
    let deadline = Instant::now() + timeout;
    let mut got = vec![[0u64; 3]; size];
    for r in 1..size {
        let arrived = mpi::request::scope(|scope| {
            let req = comm.process_at_rank(r as i32).immediate_receive_into_with_tag(
                scope,
                &mut got[r][..],
                TAG_CHECK_IN,
            );
            settle(req, deadline)
        });
        if !arrived {
            // Name every rank that is missing, not only the first.
            let missing: Vec<String> = std::iter::once(r)
                .chain((r + 1..size).filter(|&p| {
                    comm.process_at_rank(p as i32).immediate_probe_with_tag(TAG_CHECK_IN).is_none()
                }))
                .map(|p| p.to_string())
                .collect();
            return Err(format!(
                "{} at {}: rank(s) {} did not arrive within {:.1} s (dead or hung)",
                rank_label(comm),
                me.describe(),
                missing.join(", "),
                timeout.as_secs_f64()
            ));
        }
        let other = CheckIn { step: got[r][0], seq: got[r][1], op: got[r][2] };
        if other != me {
            return Err(format!(
                "ranks out of step: rank {r} is at {}, rank 0 at {}",
                other.describe(),
                me.describe()
            ));
        }
    }
    let go = [1u64];
    for r in 1..size {
        comm.process_at_rank(r as i32).send_with_tag(&go[..], TAG_GO);
    }
    Ok(())
}

/// Poll `req` until it completes (`true`) or `deadline` passes (`false`, request cancelled).
fn settle<'a, D: ?Sized, S: Scope<'a>>(mut req: Request<'a, D, S>, deadline: Instant) -> bool {
    let mut polls = 0u32;
    loop {
        match req.test() {
            Ok(_) => return true,
            Err(pending) => req = pending,
        }
        if Instant::now() >= deadline {
            req.cancel();
            req.wait();
            return false;
        }
        polls += 1;
        // Spin briefly (collectives usually meet within microseconds), then back off.
        if polls < 2000 {
            std::hint::spin_loop();
        } else {
            std::thread::sleep(Duration::from_micros(200));
        }
    }
}

/// "rank r" in the world, plus the communicator rank when it differs.
fn rank_label(comm: &SimpleCommunicator) -> String {
    let world = SimpleCommunicator::world().rank();
    let here = comm.rank();
    if world == here {
        format!("rank {world}")
    } else {
        format!("rank {world} (rank {here} of a sub-communicator)")
    }
}
