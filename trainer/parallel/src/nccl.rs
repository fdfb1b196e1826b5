//! Multi-GPU inside one process: burn's own NCCL all-reduce over the CUDA devices of a node
//! (`burn::tensor::distributed`, CUDA only), combined with a [`Collective`] (MPI) between nodes.
//!
//! Type-checked in CI (`DOCS_RS=1 cargo check --features cuda,mpi`); no GPU was available to
//! run it. burn 0.22.1 offers only `all_reduce` here (no all-gather, reduce-scatter or
//! all-to-all), and only between devices of one process. NCCL between processes (one rank per
//! GPU, the usual torchrun layout) is planned through `cudarc`'s `nccl` feature, bootstrapped by
//! an MPI broadcast of the NCCL unique id (see `docs/distributed.md`).

use burn::tensor::distributed::{DistributedConfig, DistributedContext, ReduceOperation, all_reduce};
use burn::tensor::{Device, Tensor, TensorData};

use super::collective::{Collective, CollectiveError, ReduceOp};

/// The GPUs of this process, joined by burn's NCCL communication server.
#[derive(Debug)]
pub struct NodeAllReduce {
    devices: Vec<Device>,
    _context: DistributedContext,
}

impl NodeAllReduce {
    /// Start burn's communication server for `devices` (e.g. `Device::cuda(i)` for every GPU).
    pub fn new(devices: Vec<Device>) -> Self {
        let context = DistributedContext::init(
            devices.clone(),
            DistributedConfig { all_reduce_op: ReduceOperation::Sum },
        );
        Self { devices, _context: context }
    }

    /// Devices in the order their tensors are expected.
    pub fn devices(&self) -> &[Device] {
        &self.devices
    }

    /// Element-wise reduction of one same-shaped tensor per device; each device gets the
    /// result. Each device's call runs on its own thread, as NCCL's in-process collectives
    /// need every participant to enter the operation.
    ///
    /// # Shapes
    /// - `tensors[i]`: any shape, the same for all `i`, on `devices()[i]` → same
    pub fn all_reduce<const D: usize>(&self, tensors: Vec<Tensor<D>>, op: ReduceOp) -> Vec<Tensor<D>> {
        assert_eq!(
            tensors.len(),
            self.devices.len(),
            "one tensor per device: {} tensors for {} devices",
            tensors.len(),
            self.devices.len()
        );
        let op = match op {
            ReduceOp::Sum => ReduceOperation::Sum,
            ReduceOp::Mean => ReduceOperation::Mean,
        };
        std::thread::scope(|s| {
            let handles: Vec<_> = tensors
                .into_iter()
                .map(|t| {
                    let devices = self.devices.clone();
                    s.spawn(move || all_reduce(t, op, devices).resolve())
                })
                .collect();
            handles.into_iter().map(|h| h.join().expect("NCCL all-reduce thread panicked")).collect()
        })
    }

    /// Hierarchical all-reduce: NCCL sum inside the node, an `inter`-node all-reduce of the
    /// node sum staged through host memory (MPI, one rank per node), then the result copied
    /// to every device.
    pub fn all_reduce_across_nodes<const D: usize>(
        &self,
        tensors: Vec<Tensor<D>>,
        inter: &dyn Collective,
        op: ReduceOp,
    ) -> Result<Vec<Tensor<D>>, CollectiveError> {
        let gpus = tensors.len();
        let mut node_sum = self.all_reduce(tensors, ReduceOp::Sum);
        let first = node_sum.swap_remove(0);
        let data = first.into_data().convert::<f32>();
        let shape = data.shape().clone();
        let values = data.try_into_vec::<f32>().expect("converted to f32");
        let mut total = inter.all_reduce(values, ReduceOp::Sum)?;
        if op == ReduceOp::Mean {
            let inv = 1.0 / (gpus * inter.world_size()) as f32;
            total.iter_mut().for_each(|v| *v *= inv);
        }
        Ok(self
            .devices
            .iter()
            .map(|d| Tensor::from_data(TensorData::new(total.clone(), shape.clone()), d))
            .collect())
    }
}
