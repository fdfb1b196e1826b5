//! Failure handling: a dead or hung rank must not hang the others forever.
//!
//! Two layers, both driven by `[parallel] collective_timeout_s` (0 disables them):
//! 1. **Check-in** (MPI, `mpi_check_in.rs`): before each collective every rank reports
//!    `(step, op #, op)` to rank 0 of the communicator and waits for its go. Rank 0 names the
//!    ranks that did not arrive within the timeout (or that arrive at a different step or
//!    collective) and calls `MPI_Abort`, which ends every rank of the job.
//! 2. **Caller deadline**: the thread that issued a collective gives up after twice the
//!    timeout (plus a margin), e.g. when every rank checked in but a peer died inside the
//!    transfer, and exits the process; `mpirun`/`srun --kill-on-bad-exit` then end the job.
//!
//! Either way the process exits with [`EXIT_COLLECTIVE_TIMEOUT`] and a message naming the
//! rank and the step; the job is restartable from its last checkpoint.

use std::time::Duration;

/// Exit status of a job ended by the failure detector (EX_TEMPFAIL: retry from a checkpoint).
pub const EXIT_COLLECTIVE_TIMEOUT: i32 = 75;

/// Timeout settings of the failure detector.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FailureConfig {
    /// Seconds a rank may wait for its peers at a collective; 0 disables detection.
    pub collective_timeout_s: f64,
}

impl Default for FailureConfig {
    fn default() -> Self {
        // Same default as `[parallel] collective_timeout_s`.
        Self { collective_timeout_s: 600.0 }
    }
}

impl FailureConfig {
    /// Detection off: collectives block for as long as MPI does.
    pub fn disabled() -> Self {
        Self { collective_timeout_s: 0.0 }
    }

    /// The check-in timeout, `None` when disabled.
    pub fn timeout(&self) -> Option<Duration> {
        (self.collective_timeout_s > 0.0).then(|| Duration::from_secs_f64(self.collective_timeout_s))
    }

    /// How long the calling thread waits for a collective to finish: long enough that the
    /// check-in (and its message naming the missing rank) always fires first.
    pub fn caller_deadline(&self) -> Option<Duration> {
        self.timeout().map(|t| t * 2 + Duration::from_secs(10))
    }
}

/// Print `msg` and end this process with [`EXIT_COLLECTIVE_TIMEOUT`]; the launcher then
/// ends the other ranks.
pub fn abort_process(msg: &str) -> ! {
    eprintln!("mm1 {msg}; aborting the job");
    std::process::exit(EXIT_COLLECTIVE_TIMEOUT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_timeout_disables_detection() {
        assert_eq!(FailureConfig::disabled().timeout(), None);
        assert_eq!(FailureConfig::disabled().caller_deadline(), None);
        let f = FailureConfig { collective_timeout_s: 2.5 };
        assert_eq!(f.timeout(), Some(Duration::from_millis(2500)));
        // The caller waits longer than the check-in so rank 0's message comes first.
        assert!(f.caller_deadline().unwrap() > f.timeout().unwrap() * 2);
    }
}
