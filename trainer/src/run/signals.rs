//! Preemption: SIGTERM (Slurm's preemption and time limit, `scancel`), SIGUSR1 (the early warning
//! `sbatch --signal=USR1@120` asks for) and SIGINT (Ctrl-C) make the run finish the current
//! step, write a checkpoint and exit with [`EXIT_PREEMPTED`], so that the requeued job continues
//! from exactly that step (Megatron's exit-signal handler, torchtitan's checkpoint-on-signal).
//!
//! The handlers only set a flag that the step loop reads once per step; the ranks agree on it
//! through one collective, so every rank takes part in the same checkpoint. Repeated SIGTERM or
//! SIGUSR1 change nothing. A second SIGINT ends the process at once (an impatient Ctrl-C): a
//! checkpoint being written then stays a `.tmp-` folder that the next start removes, and the
//! previous checkpoint is untouched, as after `kill -9`.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use signal_hook::consts::{SIGINT, SIGTERM, SIGUSR1};

/// `mm1-train`'s exit status after a signal stopped it with a checkpoint written;
/// `scripts/slurm/train.sbatch` requeues the job on it. (Not sysexits' 75, `EX_TEMPFAIL`: that is
/// already the collective-timeout status, `parallel::watchdog::EXIT_COLLECTIVE_TIMEOUT`, after
/// which nothing new was checkpointed.)
pub const EXIT_PREEMPTED: u8 = 85;

/// Exit status when a second SIGINT ends the process during the stop (128 + SIGINT).
const EXIT_INTERRUPTED: i32 = 130;

/// The stop signals this process has received (the last one's number, 0 for none).
#[derive(Debug)]
pub struct StopSignals {
    last: Arc<AtomicUsize>,
}

static INSTALLED: OnceLock<Result<StopSignals, String>> = OnceLock::new();

impl StopSignals {
    /// Installs the handlers once per process (registering again would stack handlers; and
    /// signal-hook cannot give a signal its default action back, so they stay for the process).
    pub fn install() -> Result<&'static StopSignals, String> {
        INSTALLED.get_or_init(Self::register).as_ref().map_err(Clone::clone)
    }

    fn register() -> Result<StopSignals, String> {
        let fail = |e: std::io::Error| format!("installing the stop-signal handlers: {e}");
        let last = Arc::new(AtomicUsize::new(0));
        // First SIGINT arms the shutdown, the second one takes it (registered in this order,
        // the shutdown check runs before the arming).
        let armed = Arc::new(AtomicBool::new(false));
        signal_hook::flag::register_conditional_shutdown(SIGINT, EXIT_INTERRUPTED, armed.clone())
            .map_err(fail)?;
        signal_hook::flag::register(SIGINT, armed).map_err(fail)?;
        for signal in [SIGTERM, SIGUSR1, SIGINT] {
            signal_hook::flag::register_usize(signal, last.clone(), signal as usize).map_err(fail)?;
        }
        Ok(StopSignals { last })
    }

    /// The number of the last stop signal received, if any.
    pub fn received(&self) -> Option<i32> {
        match self.last.load(Ordering::SeqCst) {
            0 => None,
            n => Some(n as i32),
        }
    }
}

/// `SIGTERM`, `SIGUSR1`, `SIGINT`, or the number.
pub fn signal_name(signal: i32) -> String {
    match signal {
        SIGTERM => "SIGTERM".into(),
        SIGUSR1 => "SIGUSR1".into(),
        SIGINT => "SIGINT".into(),
        n => format!("signal {n}"),
    }
}
