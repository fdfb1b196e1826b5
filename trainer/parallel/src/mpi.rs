//! Collectives over MPI (rsmpi, Open MPI on Debian: `libopenmpi-dev openmpi-bin libclang-dev`).
//!
//! One process per rank; tensors are staged through host memory, so this works for any burn
//! backend. All MPI calls run on one worker thread that owns the communicators (MPI handles
//! are not `Send`); callers hand their buffers over a channel and get them back. That thread
//! also implements the failure detector (see [`super::watchdog`]): before each collective the
//! ranks check in with rank 0 of the communicator under a deadline, so a dead or hung rank is
//! named, together with the step, instead of hanging the job.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, mpsc};
use std::thread::JoinHandle;

use mpi::datatype::{Partition, PartitionMut};
use mpi::topology::{Color, SimpleCommunicator};
use mpi::traits::*;

use super::collective::{Collective, CollectiveError, ReduceOp, check_divisible, check_len, check_rank};
use super::env::LaunchInfo;
use super::mpi_check_in::{CheckIn, check_in};
use super::watchdog::{self, FailureConfig};

/// One collective call, with the buffers it consumes.
#[derive(Debug)]
pub(crate) enum Op {
    AllReduce(Vec<f32>, ReduceOp),
    Broadcast(Vec<f32>, usize),
    BroadcastBytes(Vec<u8>, usize),
    AllGather(Vec<f32>),
    AllGatherU64(Vec<u64>),
    ReduceScatter(Vec<f32>, ReduceOp),
    AllToAll(Vec<f32>),
    AllToAllU64(Vec<u64>),
    AllToAllV { send: Vec<f32>, send_counts: Vec<usize>, recv_counts: Vec<usize> },
    Barrier,
    Split(usize),
}

impl Op {
    /// Stable code, compared across ranks at check-in (a rank calling a different collective
    /// than its peers is a bug that would otherwise corrupt data or hang).
    pub(crate) fn code(&self) -> u64 {
        match self {
            Op::AllReduce(..) => 1,
            Op::Broadcast(..) => 2,
            Op::BroadcastBytes(..) => 3,
            Op::AllGather(..) => 4,
            Op::AllGatherU64(..) => 5,
            Op::ReduceScatter(..) => 6,
            Op::AllToAll(..) => 7,
            Op::AllToAllU64(..) => 8,
            Op::AllToAllV { .. } => 9,
            Op::Barrier => 10,
            Op::Split(..) => 11,
        }
    }

    pub(crate) fn name(&self) -> &'static str {
        op_name(self.code())
    }
}

/// Name of an [`Op::code`].
pub(crate) fn op_name(code: u64) -> &'static str {
    match code {
        1 => "all_reduce",
        2 => "broadcast",
        3 => "broadcast_bytes",
        4 => "all_gather",
        5 => "all_gather_u64",
        6 => "reduce_scatter",
        7 => "all_to_all",
        8 => "all_to_all_u64",
        9 => "all_to_allv",
        10 => "barrier",
        11 => "split",
        _ => "unknown collective",
    }
}

#[derive(Debug)]
enum Reply {
    F32(Vec<f32>),
    U64(Vec<u64>),
    Bytes(Vec<u8>),
    Unit,
    Comm { id: usize, rank: usize, size: usize },
}

enum Msg {
    Call { comm: usize, step: u64, op: Op, reply: mpsc::Sender<Result<Reply, CollectiveError>> },
    Shutdown,
}

/// State shared by every communicator handle of this process.
#[derive(Debug)]
struct Shared {
    tx: mpsc::Sender<Msg>,
    step: AtomicU64,
    failure: FailureConfig,
    world_rank: usize,
    local_rank: usize,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl Drop for Shared {
    fn drop(&mut self) {
        // Finalise MPI on its own thread once the last handle is gone.
        let _ = self.tx.send(Msg::Shutdown);
        if let Some(t) = self.thread.lock().ok().and_then(|mut t| t.take()) {
            let _ = t.join();
        }
    }
}

/// A communicator over MPI. Cheap to clone (`split` gives sub-communicators that share the
/// worker thread). MPI is finalised when the last handle is dropped: keep one alive until the
/// end of `main`.
#[derive(Debug, Clone)]
pub struct MpiCollective {
    shared: Arc<Shared>,
    comm: usize,
    rank: usize,
    size: usize,
}

static STARTED: OnceLock<()> = OnceLock::new();

impl MpiCollective {
    /// Initialise MPI (once per process) on a dedicated thread and return `MPI_COMM_WORLD`.
    /// The rank and size MPI reports must agree with the launcher's variables, if any.
    pub fn init(failure: FailureConfig) -> Result<Self, CollectiveError> {
        if STARTED.set(()).is_err() {
            return Err(CollectiveError::Mpi(
                "MPI was already initialised in this process (MPI_Init may run only once)".into(),
            ));
        }
        let launch = LaunchInfo::from_process_env()?;
        let (tx, rx) = mpsc::channel::<Msg>();
        let (ready_tx, ready_rx) = mpsc::channel::<Result<(usize, usize), CollectiveError>>();
        let thread = std::thread::Builder::new()
            .name("mm1-mpi".into())
            .spawn(move || worker(rx, ready_tx, failure))
            .map_err(|e| CollectiveError::Mpi(format!("cannot spawn the MPI thread: {e}")))?;
        let (rank, size) = ready_rx
            .recv()
            .map_err(|_| CollectiveError::Mpi("the MPI thread died during MPI_Init".into()))??;
        if launch.launcher != super::env::Launcher::None && (launch.rank, launch.world_size) != (rank, size) {
            // torchrun starts its workers without an MPI runtime: each is an MPI singleton.
            let hint = if launch.launcher == super::env::Launcher::Torchrun {
                " (torchrun starts no MPI runtime: launch the ranks with mpirun or srun --mpi=pmix)"
            } else {
                ""
            };
            return Err(CollectiveError::Launch(format!(
                "{:?} says rank {} of {}, MPI says rank {rank} of {size}{hint}",
                launch.launcher, launch.rank, launch.world_size
            )));
        }
        Ok(Self {
            shared: Arc::new(Shared {
                tx,
                step: AtomicU64::new(0),
                failure,
                world_rank: rank,
                local_rank: launch.local_rank,
                thread: Mutex::new(Some(thread)),
            }),
            comm: 0,
            rank,
            size,
        })
    }

    fn call(&self, op: Op) -> Result<Reply, CollectiveError> {
        let step = self.shared.step.load(Ordering::Relaxed);
        let name = op.name();
        let (reply_tx, reply_rx) = mpsc::channel();
        self.shared
            .tx
            .send(Msg::Call { comm: self.comm, step, op, reply: reply_tx })
            .map_err(|_| CollectiveError::Mpi("the MPI thread has exited".into()))?;
        let reply = match self.shared.failure.caller_deadline() {
            None => reply_rx.recv().ok(),
            Some(limit) => match reply_rx.recv_timeout(limit) {
                Ok(r) => Some(r),
                Err(mpsc::RecvTimeoutError::Disconnected) => None,
                Err(mpsc::RecvTimeoutError::Timeout) => watchdog::abort_process(&format!(
                    "rank {}: {name} at step {step} did not finish within {:.0} s although \
                     every rank had checked in: a peer died inside the collective or the \
                     interconnect hung",
                    self.shared.world_rank,
                    limit.as_secs_f64()
                )),
            },
        };
        reply.ok_or_else(|| CollectiveError::Mpi(format!("the MPI thread exited during {name}")))?
    }

    fn f32s(&self, op: Op) -> Result<Vec<f32>, CollectiveError> {
        match self.call(op)? {
            Reply::F32(v) => Ok(v),
            other => Err(CollectiveError::Mpi(format!("unexpected reply {other:?}"))),
        }
    }

    fn u64s(&self, op: Op) -> Result<Vec<u64>, CollectiveError> {
        match self.call(op)? {
            Reply::U64(v) => Ok(v),
            other => Err(CollectiveError::Mpi(format!("unexpected reply {other:?}"))),
        }
    }
}

impl Collective for MpiCollective {
    fn rank(&self) -> usize {
        self.rank
    }
    fn world_size(&self) -> usize {
        self.size
    }
    fn local_rank(&self) -> usize {
        self.shared.local_rank
    }
    fn set_step(&self, step: u64) {
        self.shared.step.store(step, Ordering::Relaxed);
    }

    fn all_reduce(&self, buf: Vec<f32>, op: ReduceOp) -> Result<Vec<f32>, CollectiveError> {
        self.f32s(Op::AllReduce(buf, op))
    }
    fn broadcast(&self, buf: Vec<f32>, root: usize) -> Result<Vec<f32>, CollectiveError> {
        check_rank("broadcast", root, self.size)?;
        self.f32s(Op::Broadcast(buf, root))
    }
    fn broadcast_bytes(&self, buf: Vec<u8>, root: usize) -> Result<Vec<u8>, CollectiveError> {
        check_rank("broadcast_bytes", root, self.size)?;
        match self.call(Op::BroadcastBytes(buf, root))? {
            Reply::Bytes(v) => Ok(v),
            other => Err(CollectiveError::Mpi(format!("unexpected reply {other:?}"))),
        }
    }
    fn all_gather(&self, send: Vec<f32>) -> Result<Vec<f32>, CollectiveError> {
        self.f32s(Op::AllGather(send))
    }
    fn all_gather_u64(&self, send: Vec<u64>) -> Result<Vec<u64>, CollectiveError> {
        self.u64s(Op::AllGatherU64(send))
    }
    fn reduce_scatter(&self, send: Vec<f32>, op: ReduceOp) -> Result<Vec<f32>, CollectiveError> {
        check_divisible("reduce_scatter", send.len(), self.size)?;
        self.f32s(Op::ReduceScatter(send, op))
    }
    fn all_to_all(&self, send: Vec<f32>) -> Result<Vec<f32>, CollectiveError> {
        check_divisible("all_to_all", send.len(), self.size)?;
        self.f32s(Op::AllToAll(send))
    }
    fn all_to_all_u64(&self, send: Vec<u64>) -> Result<Vec<u64>, CollectiveError> {
        check_divisible("all_to_all_u64", send.len(), self.size)?;
        self.u64s(Op::AllToAllU64(send))
    }
    fn all_to_allv(
        &self,
        send: Vec<f32>,
        send_counts: &[usize],
        recv_counts: &[usize],
    ) -> Result<Vec<f32>, CollectiveError> {
        check_len("all_to_allv", "send_counts length", send_counts.len(), self.size)?;
        check_len("all_to_allv", "recv_counts length", recv_counts.len(), self.size)?;
        check_len("all_to_allv", "send buffer length", send.len(), send_counts.iter().sum())?;
        self.f32s(Op::AllToAllV {
            send,
            send_counts: send_counts.to_vec(),
            recv_counts: recv_counts.to_vec(),
        })
    }
    fn barrier(&self) -> Result<(), CollectiveError> {
        match self.call(Op::Barrier)? {
            Reply::Unit => Ok(()),
            other => Err(CollectiveError::Mpi(format!("unexpected reply {other:?}"))),
        }
    }
    fn split(&self, color: usize) -> Result<Arc<dyn Collective>, CollectiveError> {
        match self.call(Op::Split(color))? {
            Reply::Comm { id, rank, size } => {
                Ok(Arc::new(Self { shared: self.shared.clone(), comm: id, rank, size }))
            }
            other => Err(CollectiveError::Mpi(format!("unexpected reply {other:?}"))),
        }
    }
}

/// The MPI thread: initialise, then serve calls until every handle is dropped.
fn worker(
    rx: mpsc::Receiver<Msg>,
    ready: mpsc::Sender<Result<(usize, usize), CollectiveError>>,
    failure: FailureConfig,
) {
    let Some((universe, _threading)) = mpi::initialize_with_threading(mpi::Threading::Funneled) else {
        let _ = ready.send(Err(CollectiveError::Mpi("MPI_Init_thread failed".into())));
        return;
    };
    let world = universe.world();
    let world_rank = world.rank() as usize;
    let _ = ready.send(Ok((world_rank, world.size() as usize)));
    let mut comms = vec![world];
    // Per-communicator count of collectives issued, compared at check-in.
    let mut seqs = vec![0u64];
    while let Ok(Msg::Call { comm, step, op, reply }) = rx.recv() {
        seqs[comm] += 1;
        if let Some(timeout) = failure.timeout() {
            let check = CheckIn { step, seq: seqs[comm], op: op.code() };
            if let Err(msg) = check_in(&comms[comm], check, timeout) {
                eprintln!("mm1: {msg}; aborting the job");
                comms[0].abort(watchdog::EXIT_COLLECTIVE_TIMEOUT);
            }
        }
        let out = run(&comms[comm], op);
        // A split returns the new communicator to be stored here.
        let out = match out {
            Err(Split(c)) => {
                comms.push(c);
                seqs.push(0);
                let c = comms.last().expect("just pushed");
                Ok(Reply::Comm { id: comms.len() - 1, rank: c.rank() as usize, size: c.size() as usize })
            }
            Ok(r) => Ok(r),
            Err(Fail(e)) => Err(e),
        };
        let _ = reply.send(out);
    }
    drop(comms);
    drop(universe); // MPI_Finalize
}

/// Outcomes of [`run`] that are not a plain reply.
enum NotReply {
    Split(SimpleCommunicator),
    Fail(CollectiveError),
}
use NotReply::{Fail, Split};

/// Execute one collective on `comm`. Sizes were checked by the caller where possible; the
/// remaining checks (which need the peers' sizes) are MPI's.
fn run(comm: &SimpleCommunicator, op: Op) -> Result<Reply, NotReply> {
    use mpi::collective::SystemOperation;
    let size = comm.size() as usize;
    let count = |n: usize| -> Result<i32, NotReply> {
        i32::try_from(n).map_err(|_| {
            Fail(CollectiveError::Size {
                op: "mpi",
                what: "element count (MPI counts are 32-bit)",
                got: n,
                expected: i32::MAX as usize,
            })
        })
    };
    match op {
        Op::AllReduce(send, op) => {
            let mut recv = vec![0f32; send.len()];
            comm.all_reduce_into(&send[..], &mut recv[..], SystemOperation::sum());
            if op == ReduceOp::Mean {
                let inv = 1.0 / size as f32;
                recv.iter_mut().for_each(|v| *v *= inv);
            }
            Ok(Reply::F32(recv))
        }
        Op::Broadcast(mut buf, root) => {
            comm.process_at_rank(root as i32).broadcast_into(&mut buf[..]);
            Ok(Reply::F32(buf))
        }
        Op::BroadcastBytes(mut buf, root) => {
            comm.process_at_rank(root as i32).broadcast_into(&mut buf[..]);
            Ok(Reply::Bytes(buf))
        }
        Op::AllGather(send) => {
            let mut recv = vec![0f32; send.len() * size];
            comm.all_gather_into(&send[..], &mut recv[..]);
            Ok(Reply::F32(recv))
        }
        Op::AllGatherU64(send) => {
            let mut recv = vec![0u64; send.len() * size];
            comm.all_gather_into(&send[..], &mut recv[..]);
            Ok(Reply::U64(recv))
        }
        Op::ReduceScatter(send, op) => {
            let mut recv = vec![0f32; send.len() / size];
            comm.reduce_scatter_block_into(&send[..], &mut recv[..], SystemOperation::sum());
            if op == ReduceOp::Mean {
                let inv = 1.0 / size as f32;
                recv.iter_mut().for_each(|v| *v *= inv);
            }
            Ok(Reply::F32(recv))
        }
        Op::AllToAll(send) => {
            let mut recv = vec![0f32; send.len()];
            comm.all_to_all_into(&send[..], &mut recv[..]);
            Ok(Reply::F32(recv))
        }
        Op::AllToAllU64(send) => {
            let mut recv = vec![0u64; send.len()];
            comm.all_to_all_into(&send[..], &mut recv[..]);
            Ok(Reply::U64(recv))
        }
        Op::AllToAllV { send, send_counts, recv_counts } => {
            let (sc, sd) = counts_displs(&send_counts, count)?;
            let (rc, rd) = counts_displs(&recv_counts, count)?;
            let mut recv = vec![0f32; recv_counts.iter().sum()];
            {
                let s = Partition::new(&send[..], &sc[..], &sd[..]);
                let mut r = PartitionMut::new(&mut recv[..], &rc[..], &rd[..]);
                comm.all_to_all_varcount_into(&s, &mut r);
            }
            Ok(Reply::F32(recv))
        }
        Op::Barrier => {
            comm.barrier();
            Ok(Reply::Unit)
        }
        Op::Split(color) => {
            let color = i32::try_from(color)
                .map_err(|_| Fail(CollectiveError::Mpi(format!("split color {color} exceeds i32"))))?;
            match comm.split_by_color(Color::with_value(color)) {
                Some(c) => Err(Split(c)),
                None => Err(Fail(CollectiveError::Mpi("MPI_Comm_split returned no communicator".into()))),
            }
        }
    }
}

/// MPI counts and displacements from element counts.
fn counts_displs(
    counts: &[usize],
    count: impl Fn(usize) -> Result<i32, NotReply>,
) -> Result<(Vec<i32>, Vec<i32>), NotReply> {
    let mut c = Vec::with_capacity(counts.len());
    let mut d = Vec::with_capacity(counts.len());
    let mut offset = 0usize;
    for &n in counts {
        c.push(count(n)?);
        d.push(count(offset)?);
        offset += n;
    }
    Ok((c, d))
}
