//! The communication interface every parallel strategy in the trainer is written against.
//!
//! Burn 0.22.1 has no cross-process collectives (its `all_reduce` only joins CUDA devices of
//! one process), so data and expert parallelism stage tensors through host `Vec`s and call one
//! of these implementations: [`SingleProcess`](super::SingleProcess) (world of 1, the default)
//! or `MpiCollective` (cargo feature `mpi`, any backend, one process per rank).
//!
//! Buffers are passed by value and returned, so an implementation that hands them to another
//! thread (the MPI one does) needs no copy. Every call is a collective: all ranks of the
//! communicator must make the same calls in the same order.

use std::fmt;
use std::sync::Arc;

/// How [`Collective::all_reduce`] combines the ranks' buffers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReduceOp {
    /// Element-wise sum.
    Sum,
    /// Element-wise sum divided by the world size.
    Mean,
}

/// Errors of the communication layer; every message names the operation and both numbers.
#[derive(Debug, thiserror::Error)]
pub enum CollectiveError {
    /// A buffer or count list does not have the size the operation needs.
    #[error("{op}: {what} is {got}, expected {expected}")]
    Size { op: &'static str, what: &'static str, got: usize, expected: usize },
    /// A root or peer rank outside the communicator.
    #[error("{op}: rank {rank} is outside the world of {world}")]
    Rank { op: &'static str, rank: usize, world: usize },
    /// The launcher's environment is inconsistent or names more ranks than this build supports.
    #[error("launch environment: {0}")]
    Launch(String),
    /// The MPI runtime failed to start or its worker thread is gone.
    #[error("MPI: {0}")]
    Mpi(String),
    /// The ranks disagree about a replicated value (weights after broadcast, step counters).
    #[error("ranks disagree: {0}")]
    Mismatch(String),
}

/// Collective communication over the ranks of one communicator.
///
/// Ranks are numbered `0..world_size()` inside this communicator; `local_rank()` is the
/// index of this process on its node (it picks the GPU). Buffers are `f32` (gradients,
/// activations) or `u64` (counts, checksums).
pub trait Collective: Send + Sync + fmt::Debug {
    /// This process's rank in the communicator.
    fn rank(&self) -> usize;
    /// Number of ranks in the communicator.
    fn world_size(&self) -> usize;
    /// Index of this process among the processes of its node.
    fn local_rank(&self) -> usize;

    /// Tell the failure detector which training step the following calls belong to, so a
    /// timeout can name it.
    fn set_step(&self, step: u64);

    /// Element-wise reduction of `buf` over all ranks; every rank gets the result.
    fn all_reduce(&self, buf: Vec<f32>, op: ReduceOp) -> Result<Vec<f32>, CollectiveError>;
    /// `root`'s `buf` on every rank (all ranks pass a buffer of the same length).
    fn broadcast(&self, buf: Vec<f32>, root: usize) -> Result<Vec<f32>, CollectiveError>;
    /// `root`'s bytes on every rank (all ranks pass a buffer of the same length).
    fn broadcast_bytes(&self, buf: Vec<u8>, root: usize) -> Result<Vec<u8>, CollectiveError>;
    /// Concatenation of every rank's `send` in rank order (`world * send.len()` values).
    fn all_gather(&self, send: Vec<f32>) -> Result<Vec<f32>, CollectiveError>;
    /// [`Collective::all_gather`] for counters and checksums.
    fn all_gather_u64(&self, send: Vec<u64>) -> Result<Vec<u64>, CollectiveError>;
    /// Sum over ranks of `send` (length `world * k`), of which rank `r` keeps chunk `r` (`k` values).
    fn reduce_scatter(&self, send: Vec<f32>, op: ReduceOp) -> Result<Vec<f32>, CollectiveError>;
    /// Chunk `j` of `send` (length `world * k`) goes to rank `j`; chunk `i` of the result came
    /// from rank `i`.
    fn all_to_all(&self, send: Vec<f32>) -> Result<Vec<f32>, CollectiveError>;
    /// [`Collective::all_to_all`] for counters.
    fn all_to_all_u64(&self, send: Vec<u64>) -> Result<Vec<u64>, CollectiveError>;
    /// Variable-size all-to-all: the first `send_counts[0]` values of `send` go to rank 0, the
    /// next `send_counts[1]` to rank 1, ...; the result holds `recv_counts[i]` values from each
    /// rank `i` in rank order. `recv_counts` must match what the peers send (see
    /// [`exchange_counts`]).
    fn all_to_allv(
        &self,
        send: Vec<f32>,
        send_counts: &[usize],
        recv_counts: &[usize],
    ) -> Result<Vec<f32>, CollectiveError>;
    /// Wait until every rank has reached this call.
    fn barrier(&self) -> Result<(), CollectiveError>;
    /// Split into sub-communicators: ranks passing the same `color` form one, ordered by
    /// their rank here (MPI_Comm_split).
    fn split(&self, color: usize) -> Result<Arc<dyn Collective>, CollectiveError>;
}

/// The `recv_counts` of an [`Collective::all_to_allv`]: what every peer will send to us.
pub fn exchange_counts(coll: &dyn Collective, send_counts: &[usize]) -> Result<Vec<usize>, CollectiveError> {
    check_len("all_to_allv", "send_counts length", send_counts.len(), coll.world_size())?;
    let send = send_counts.iter().map(|&c| c as u64).collect();
    Ok(coll.all_to_all_u64(send)?.into_iter().map(|c| c as usize).collect())
}

/// Every rank's byte string, in rank order (e.g. the data loaders' states, which rank 0 saves
/// in the checkpoint so a resume continues every rank exactly). Lengths may differ.
pub fn all_gather_bytes(coll: &dyn Collective, mine: Vec<u8>) -> Result<Vec<Vec<u8>>, CollectiveError> {
    let lens = coll.all_gather_u64(vec![mine.len() as u64])?;
    let mut mine = Some(mine);
    let mut out = Vec::with_capacity(lens.len());
    for (r, &len) in lens.iter().enumerate() {
        let buf = if r == coll.rank() {
            mine.take().expect("own rank visited once")
        } else {
            vec![0u8; len as usize]
        };
        out.push(coll.broadcast_bytes(buf, r)?);
    }
    Ok(out)
}

/// Fail with both numbers when a length is not the expected one.
pub(crate) fn check_len(
    op: &'static str,
    what: &'static str,
    got: usize,
    expected: usize,
) -> Result<(), CollectiveError> {
    if got == expected { Ok(()) } else { Err(CollectiveError::Size { op, what, got, expected }) }
}

/// Fail when `len` is not a multiple of the world size (chunked collectives).
pub(crate) fn check_divisible(op: &'static str, len: usize, world: usize) -> Result<(), CollectiveError> {
    if len.is_multiple_of(world) {
        Ok(())
    } else {
        Err(CollectiveError::Size {
            op,
            what: "buffer length (must be a multiple of the world size)",
            got: len,
            expected: len.div_ceil(world) * world,
        })
    }
}

/// Fail when a root rank is outside the world.
pub(crate) fn check_rank(op: &'static str, rank: usize, world: usize) -> Result<(), CollectiveError> {
    if rank < world { Ok(()) } else { Err(CollectiveError::Rank { op, rank, world }) }
}
