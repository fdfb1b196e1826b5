//! Walking a module's parameters by path: read them out (export) or replace them from a
//! map of host tensors (import), checking shapes and keeping ids and gradient settings.

use super::io::HostTensor;
use burn::module::{Module, ModuleMapper, ModuleVisitor, Param};
use burn::prelude::*;
use std::collections::BTreeMap;

/// Every float parameter of `module` as `path → host tensor`.
pub fn collect<M: Module>(module: &M) -> BTreeMap<String, HostTensor> {
    let mut c = Collector::default();
    module.visit(&mut c);
    c.out
}

#[derive(Default)]
struct Collector {
    path: Vec<String>,
    out: BTreeMap<String, HostTensor>,
}

impl ModuleVisitor for Collector {
    fn enter_module(&mut self, name: &str, _: &str) {
        self.path.push(name.to_string());
    }
    fn exit_module(&mut self, _: &str, _: &str) {
        self.path.pop();
    }
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let t = param.val();
        let shape = t.dims().to_vec();
        let data = t.into_data().convert::<f32>().try_into_vec::<f32>().unwrap_or_default();
        self.out.insert(self.path.join("."), HostTensor { shape, data });
    }
}

/// Replace parameters whose path `lookup` resolves; records loaded/missing paths and the
/// first shape mismatch.
pub struct Loader<'a, F: Fn(&str) -> Option<(String, &'a HostTensor)>> {
    pub lookup: F,
    pub path: Vec<String>,
    /// `(our path, source key)` of every parameter replaced.
    pub loaded: Vec<(String, String)>,
    /// Our paths nothing was found for (they keep their initial values).
    pub missing: Vec<String>,
    pub error: Option<String>,
}

impl<'a, F: Fn(&str) -> Option<(String, &'a HostTensor)>> Loader<'a, F> {
    pub fn new(lookup: F) -> Self {
        Self { lookup, path: Vec::new(), loaded: Vec::new(), missing: Vec::new(), error: None }
    }
}

impl<'a, F: Fn(&str) -> Option<(String, &'a HostTensor)>> ModuleMapper for Loader<'a, F> {
    fn enter_module(&mut self, name: &str, _: &str) {
        self.path.push(name.to_string());
    }
    fn exit_module(&mut self, _: &str, _: &str) {
        self.path.pop();
    }
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let ours = self.path.join(".");
        let Some((source, host)) = (self.lookup)(&ours) else {
            self.missing.push(ours);
            return param;
        };
        let want = param.lazy_shape().dims::<D>().to_vec();
        if want != host.shape {
            self.error.get_or_insert(format!(
                "{source}: checkpoint shape {:?} != model shape {want:?} (parameter {ours})",
                host.shape
            ));
            return param;
        }
        let (id, old, mapper) = param.consume();
        let grad = old.is_require_grad();
        let new =
            Tensor::<D>::from_data(TensorData::new(host.data.clone(), host.shape.clone()), &old.device());
        self.loaded.push((ours, source));
        Param::from_mapped_value(id, new.set_require_grad(grad), mapper)
    }
}
