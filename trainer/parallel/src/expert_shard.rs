//! Expert parameters under expert parallelism: rank `r` of an EP group of `ep` ranks owns
//! experts `[r·E/ep, (r+1)·E/ep)` of every MoE layer and holds only those.
//!
//! - [`shard_experts`]: every other expert's parameters become empty placeholders (`[0, ..]`)
//!   that keep their parameter ids, so the module tree, the parameter names and the optimizer's
//!   keys stay the same on every rank while the memory is `E/ep` experts per layer.
//! - [`gather_experts`]: before a checkpoint, every expert is copied from its owner to the EP
//!   group's rank 0 (which then holds all of them and writes the model file); the other ranks
//!   stay sharded. Call [`shard_experts`] on rank 0 after saving.
//! - [`expert_index`]: which expert each expert parameter belongs to (by parameter id), what a
//!   resume under another `parallel.ep` needs to re-cut the optimizer state.

use std::collections::HashMap;

use burn::module::{Module, ModuleMapper, Param, ParamId};
use burn::tensor::{Tensor, TensorData};

use super::collective::{Collective, CollectiveError};
use crate::param_kind::ParamClass;

/// Which expert a parameter (module names from the root, then the field) belongs to:
/// [`ParamKind::Expert`](crate::param_kind::ParamKind::Expert), `...experts.<i>...`.
fn expert_of(path: &[String], rank: usize) -> Option<usize> {
    ParamClass::of_segments(path, rank).expert()
}

/// Experts per rank, or an error when `num_experts` does not split over `ep` ranks.
fn per_rank(num_experts: usize, ep: usize) -> Result<usize, CollectiveError> {
    if num_experts == 0 || !num_experts.is_multiple_of(ep) {
        return Err(CollectiveError::Launch(format!(
            "expert parallel: {num_experts} experts cannot be split over {ep} ranks"
        )));
    }
    Ok(num_experts / ep)
}

/// `module` holding only the experts rank `ep_rank` owns (of `ep` ranks, `num_experts` per
/// MoE layer); the others become `[0, ..]` placeholders with the same ids.
pub fn shard_experts<M: Module>(
    module: M,
    ep_rank: usize,
    ep: usize,
    num_experts: usize,
) -> Result<M, CollectiveError> {
    if ep == 1 {
        return Ok(module);
    }
    let per_rank = per_rank(num_experts, ep)?;
    Ok(module.map(&mut Shard { owned: ep_rank * per_rank..(ep_rank + 1) * per_rank, path: Vec::new() }))
}

struct Shard {
    owned: std::ops::Range<usize>,
    path: Vec<String>,
}

impl ModuleMapper for Shard {
    fn enter_module(&mut self, name: &str, _container_type: &str) {
        self.path.push(name.to_string());
    }

    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.pop();
    }

    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        match expert_of(&self.path, D) {
            Some(e) if !self.owned.contains(&e) => param.map(|t| {
                let empty = Tensor::<D>::empty([0; D], &t.device());
                if t.is_require_grad() { empty.require_grad() } else { empty }
            }),
            _ => param,
        }
    }
}

/// Expert index (`...experts.<i>...`) of every expert parameter of `module`, by parameter id;
/// placeholders count (they keep their owner's ids).
pub fn expert_index<M: Module>(module: &M) -> HashMap<ParamId, usize> {
    crate::params::list_params(module).iter().filter_map(|p| Some((p.id, p.class().expert()?))).collect()
}

/// Number of float parameter values `module` holds (placeholders count 0).
pub fn held_params<M: Module>(module: &M) -> usize {
    crate::params::list_params(module).iter().map(|p| p.numel()).sum()
}

/// `module` on the EP group's rank 0 with every expert's parameters from its owner; the other
/// ranks' modules are returned unchanged (a collective over `group`).
pub fn gather_experts<M: Module>(
    module: M,
    group: &dyn Collective,
    num_experts: usize,
) -> Result<M, CollectiveError> {
    let ep = group.world_size();
    if ep == 1 {
        return Ok(module);
    }
    let per_rank = per_rank(num_experts, ep)?;
    let mut g = Gather { group, per_rank, path: Vec::new(), error: None };
    let module = module.map(&mut g);
    match g.error {
        Some(e) => Err(e),
        None => Ok(module),
    }
}

struct Gather<'a> {
    group: &'a dyn Collective,
    per_rank: usize,
    path: Vec<String>,
    error: Option<CollectiveError>,
}

impl Gather<'_> {
    /// The owner's tensor on rank 0 (its shape broadcast first: rank 0 holds a placeholder);
    /// `None` on the other ranks or after an error.
    fn copy_from_owner<const D: usize>(&mut self, t: &Tensor<D>, owner: usize) -> Option<Tensor<D>> {
        let me = self.group.rank();
        let shape: Vec<f32> =
            if me == owner { t.shape().iter().map(|&d| d as f32).collect() } else { vec![0.0; D] };
        let shape = self.group.broadcast(shape, owner).map_err(|e| self.error = Some(e)).ok()?;
        let dims: [usize; D] = std::array::from_fn(|i| shape[i] as usize);
        let n: usize = dims.iter().product();
        let values = if me == owner {
            t.to_data().convert::<f32>().try_into_vec::<f32>().expect("converted to f32")
        } else {
            vec![0.0; n]
        };
        let values = self.group.broadcast(values, owner).map_err(|e| self.error = Some(e)).ok()?;
        if me != 0 {
            return None;
        }
        let full =
            Tensor::<D>::from_data(TensorData::new(values, dims).convert_dtype(t.dtype()), &t.device());
        Some(if t.is_require_grad() { full.require_grad() } else { full })
    }
}

impl ModuleMapper for Gather<'_> {
    fn enter_module(&mut self, name: &str, _container_type: &str) {
        self.path.push(name.to_string());
    }

    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.pop();
    }

    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let Some(expert) = expert_of(&self.path, D) else { return param };
        let owner = expert / self.per_rank;
        if self.error.is_some() || owner == 0 {
            return param; // rank 0 owns it already
        }
        param.map(|t| self.copy_from_owner(&t, owner).unwrap_or(t))
    }
}
