//! The module's parameters listed once, with the dotted path that burn's optimizer and
//! stores use for the same parameter (`llm.layers.0.attn.q_proj.weight`).

use burn::module::{Module, ModuleVisitor, Param, ParamId};
use burn::tensor::Tensor;

use crate::param_kind::ParamClass;

/// One float parameter of a module.
#[derive(Debug, Clone)]
pub struct ParamInfo {
    pub id: ParamId,
    /// Dotted path, identical to the one `ModuleOptimizer` and `burn-store` build.
    pub path: String,
    pub shape: Vec<usize>,
    /// `false` when the module marked the tensor `no_grad` (frozen by the model itself).
    pub require_grad: bool,
}

impl ParamInfo {
    /// First path segment: the MM1 component (`vision`, `connector`, `llm`).
    pub fn component(&self) -> &str {
        crate::param_kind::component_name(&self.path)
    }

    /// Its component and kind (the one classifier, [`crate::param_kind`]).
    pub fn class(&self) -> ParamClass {
        ParamClass::of(&self.path, self.shape.len())
    }

    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }
}

/// Every float parameter of `module`, in visiting order.
pub fn list_params<M: Module>(module: &M) -> Vec<ParamInfo> {
    let mut v = Lister::default();
    module.visit(&mut v);
    v.out
}

#[derive(Default)]
struct Lister {
    path: Vec<String>,
    out: Vec<ParamInfo>,
}

impl ModuleVisitor for Lister {
    fn enter_module(&mut self, name: &str, _container_type: &str) {
        self.path.push(name.to_string());
    }

    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.pop();
    }

    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        self.out.push(ParamInfo {
            id: param.id,
            path: self.path.join("."),
            shape: param.lazy_shape().to_vec(),
            require_grad: param.is_require_grad(),
        });
    }
}
