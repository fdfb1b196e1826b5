//! Expert parameters after expert-parallel training: every rank holds all experts but trains only
//! its own ([`super::expert_parallel`]), so before a checkpoint each expert's parameters are
//! copied from the rank that owns it (a broadcast over the EP group). Afterwards every rank, and
//! the model rank 0 saves, holds every trained expert.

use burn::module::{Module, ModuleMapper, Param};
use burn::tensor::Tensor;

use super::collective::{Collective, CollectiveError};
use super::data_parallel::broadcast_tensor;

/// `module` with every expert's parameters from its owner in `group` (rank `r` owns experts
/// `[r·E/ep, (r+1)·E/ep)` of each MoE layer).
pub fn gather_experts<M: Module>(
    module: M,
    group: &dyn Collective,
    num_experts: usize,
) -> Result<M, CollectiveError> {
    let ep = group.world_size();
    if ep == 1 {
        return Ok(module);
    }
    if num_experts == 0 || !num_experts.is_multiple_of(ep) {
        return Err(CollectiveError::Launch(format!(
            "expert parallel: {num_experts} experts cannot be split over {ep} ranks"
        )));
    }
    let mut g = Gather { group, per_rank: num_experts / ep, path: Vec::new(), error: None };
    let module = module.map(&mut g);
    match g.error {
        Some(e) => Err(e),
        None => Ok(module),
    }
}

struct Gather<'a> {
    group: &'a dyn Collective,
    per_rank: usize,
    /// Module names from the root to the current parameter.
    path: Vec<String>,
    error: Option<CollectiveError>,
}

impl Gather<'_> {
    /// Index of the expert the current parameter belongs to (`...experts.<i>...`).
    fn expert(&self) -> Option<usize> {
        let at = self.path.iter().rposition(|n| n == "experts")?;
        self.path.get(at + 1)?.parse().ok()
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
        let Some(expert) = self.expert() else { return param };
        if self.error.is_some() {
            return param;
        }
        let owner = expert / self.per_rank;
        param.map(|t| broadcast_tensor(self.group, t, owner, &mut self.error))
    }
}
