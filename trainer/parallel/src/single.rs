//! World of one process: every collective is the identity (or a copy). The default, with no
//! system dependency; the 1-rank side of every equivalence test runs through it.

use std::sync::Arc;

use super::collective::{Collective, CollectiveError, ReduceOp, check_divisible, check_len, check_rank};

/// A communicator containing only this process.
#[derive(Debug, Default, Clone, Copy)]
pub struct SingleProcess;

impl Collective for SingleProcess {
    fn rank(&self) -> usize {
        0
    }
    fn world_size(&self) -> usize {
        1
    }
    fn local_rank(&self) -> usize {
        0
    }
    fn set_step(&self, _step: u64) {}

    fn all_reduce(&self, buf: Vec<f32>, _op: ReduceOp) -> Result<Vec<f32>, CollectiveError> {
        // Sum and mean over one rank are both the identity.
        Ok(buf)
    }
    fn broadcast(&self, buf: Vec<f32>, root: usize) -> Result<Vec<f32>, CollectiveError> {
        check_rank("broadcast", root, 1)?;
        Ok(buf)
    }
    fn broadcast_bytes(&self, buf: Vec<u8>, root: usize) -> Result<Vec<u8>, CollectiveError> {
        check_rank("broadcast_bytes", root, 1)?;
        Ok(buf)
    }
    fn all_gather(&self, send: Vec<f32>) -> Result<Vec<f32>, CollectiveError> {
        Ok(send)
    }
    fn all_gather_u64(&self, send: Vec<u64>) -> Result<Vec<u64>, CollectiveError> {
        Ok(send)
    }
    fn reduce_scatter(&self, send: Vec<f32>, _op: ReduceOp) -> Result<Vec<f32>, CollectiveError> {
        check_divisible("reduce_scatter", send.len(), 1)?;
        Ok(send)
    }
    fn all_to_all(&self, send: Vec<f32>) -> Result<Vec<f32>, CollectiveError> {
        Ok(send)
    }
    fn all_to_all_u64(&self, send: Vec<u64>) -> Result<Vec<u64>, CollectiveError> {
        Ok(send)
    }
    fn all_to_allv(
        &self,
        send: Vec<f32>,
        send_counts: &[usize],
        recv_counts: &[usize],
    ) -> Result<Vec<f32>, CollectiveError> {
        check_len("all_to_allv", "send_counts length", send_counts.len(), 1)?;
        check_len("all_to_allv", "recv_counts length", recv_counts.len(), 1)?;
        check_len("all_to_allv", "send buffer length", send.len(), send_counts[0])?;
        check_len("all_to_allv", "recv_counts[0]", recv_counts[0], send_counts[0])?;
        Ok(send)
    }
    fn barrier(&self) -> Result<(), CollectiveError> {
        Ok(())
    }
    fn split(&self, _color: usize) -> Result<Arc<dyn Collective>, CollectiveError> {
        Ok(Arc::new(SingleProcess))
    }
}
