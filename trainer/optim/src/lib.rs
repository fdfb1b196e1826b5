//! AdamW with parameter groups, global-norm clipping and gradient accumulation, built on
//! burn's `ModuleOptimizer` (whose per-parameter state is keyed by `ParamId` and saved with
//! the parameter paths, so it round-trips through burnpack).

pub mod clip;
pub mod fused;
pub mod groups;
/// Every float parameter with its dotted path (in `mm1-parallel`, whose sharding reads it).
pub use mm1_parallel::params;

use burn::module::{Module, ParamGroup};
use burn::optim::lr_scheduler::module_lr_scheduler::ModuleLrScheduler;
use burn::optim::{GradientsAccumulator, GradientsParams, ModuleOptimizer};
use burn::tensor::Gradients;

pub use clip::{clip_global_norm, clip_to_norm, global_grad_norm, grad_square_sum_where, scale_grads};
pub use fused::FusedAdamW;
pub use groups::{GroupPlan, GroupRules};
pub use params::{ParamInfo, list_params};

/// Errors building the optimizer or loading its state.
#[derive(Debug, thiserror::Error)]
pub enum OptimError {
    #[error("optim.{key}: unknown component `{name}` (the model has: {known})")]
    UnknownComponent { key: String, name: String, known: String },
    #[error("optim: {0}")]
    BadValue(String),
}

/// Adam hyper-parameters besides the learning rate (which the schedule gives each step).
#[derive(Debug, Clone, PartialEq)]
pub struct AdamWSettings {
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    /// Global-norm clipping threshold; `<= 0` disables clipping.
    pub grad_clip: f64,
    pub groups: GroupRules,
}

impl Default for AdamWSettings {
    fn default() -> Self {
        Self { beta1: 0.9, beta2: 0.95, eps: 1e-8, grad_clip: 1.0, groups: GroupRules::default() }
    }
}

/// AdamW over a whole model, with a decay and a no-decay group and per-component learning rates.
#[derive(Clone)]
pub struct GroupedAdamW {
    optim: ModuleOptimizer,
    plan: GroupPlan,
    grad_clip: f64,
}

/// What one optimizer update did.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct UpdateStats {
    /// Global gradient norm before clipping.
    pub grad_norm: f64,
    /// Whether the gradients were scaled down.
    pub clipped: bool,
}

impl AdamWSettings {
    /// From the run's `[optim]` (after its `lr_rule` is resolved) and `[model.freeze]`.
    pub fn from_config(
        optim: &mm1_config::OptimConfig,
        resolved: &mm1_config::ResolvedOptim,
        freeze: &mm1_models::FreezeConfig,
    ) -> Self {
        let m = &optim.lr_multipliers;
        let lr_mult = [("vision", m.vision), ("connector", m.connector), ("llm", m.llm)]
            .into_iter()
            .filter(|(_, v)| *v != 1.0)
            .map(|(k, v)| (k.to_string(), v))
            .collect();
        let frozen = [("vision", freeze.vision), ("connector", freeze.connector), ("llm", freeze.llm)]
            .into_iter()
            .filter(|(_, f)| *f)
            .map(|(k, _)| k.to_string())
            .collect();
        Self {
            beta1: optim.betas[0],
            beta2: optim.betas[1],
            eps: optim.eps,
            grad_clip: optim.grad_clip,
            groups: GroupRules {
                weight_decay: resolved.weight_decay,
                lr_mult,
                frozen,
                decay_norms_and_biases: optim.decay_norms_and_biases,
                decay_embeddings: optim.decay_embeddings,
            },
        }
    }
}

impl GroupedAdamW {
    /// Build the groups from `model`'s parameters.
    pub fn new<M: Module>(model: &M, s: &AdamWSettings) -> Result<Self, OptimError> {
        for (name, v) in [("beta1", s.beta1), ("beta2", s.beta2)] {
            if !(0.0..1.0).contains(&v) {
                return Err(OptimError::BadValue(format!("{name} = {v}: must be in [0, 1)")));
            }
        }
        if s.eps.is_nan() || s.eps <= 0.0 {
            return Err(OptimError::BadValue(format!("eps = {}: must be > 0", s.eps)));
        }
        let plan = GroupPlan::new(&list_params(model), &s.groups)?;
        let adamw = |wd: f64| FusedAdamW::new(s.beta1 as f32, s.beta2 as f32, s.eps as f32, wd as f32);
        let optim = ModuleOptimizer::from(adamw(s.groups.weight_decay)).with_group(
            ParamGroup::from_paths(plan.no_decay.clone()),
            adamw(0.0),
            None,
        );
        Ok(Self { optim, plan, grad_clip: s.grad_clip })
    }

    pub fn plan(&self) -> &GroupPlan {
        &self.plan
    }

    /// The gradients of the trainable parameters only (frozen ones are dropped here).
    pub fn grads<M: Module>(&self, mut grads: Gradients, model: &M) -> GradientsParams {
        GradientsParams::from_params(&mut grads, model, &self.plan.trainable_ids)
    }

    /// Clip to the global norm, then update with base learning rate `lr` (times each
    /// component's multiplier). Returns the updated model.
    pub fn step<M: Module>(&mut self, lr: f64, model: M, grads: GradientsParams) -> (M, UpdateStats) {
        let grad_norm = global_grad_norm(&model, &grads);
        self.step_with_norm(lr, model, grads, grad_norm)
    }

    /// [`step`](Self::step) with the global gradient norm already known (with expert
    /// parallelism it spans the experts of every rank of the EP group).
    pub fn step_with_norm<M: Module>(
        &mut self,
        lr: f64,
        model: M,
        grads: GradientsParams,
        grad_norm: f64,
    ) -> (M, UpdateStats) {
        let grads = clip_to_norm(&model, grads, self.grad_clip, grad_norm);
        let clipped = self.grad_clip > 0.0 && grad_norm > self.grad_clip;
        let model = self.update(lr, model, grads);
        (model, UpdateStats { grad_norm, clipped })
    }

    /// The AdamW update alone, without clipping.
    pub fn update<M: Module>(&mut self, lr: f64, model: M, grads: GradientsParams) -> M {
        let mut sched = ModuleLrScheduler::new(lr);
        for (mult, paths) in self.plan.lr_groups.values() {
            sched = sched.with_group(ParamGroup::from_paths(paths.clone()), lr * mult);
        }
        self.optim.step(sched.step(), model, grads)
    }

    /// The optimizer state (moments and step counts, keyed by parameter id) as burnpack bytes.
    pub fn to_bytes(&self) -> Result<burn::tensor::Bytes, burn::store::RecordError> {
        self.optim.into_bytes()
    }

    /// Restore the state saved by [`to_bytes`](Self::to_bytes).
    pub fn load_bytes(mut self, bytes: burn::tensor::Bytes) -> Result<Self, burn::store::RecordError> {
        self.optim = self.optim.from_bytes(bytes)?;
        Ok(self)
    }

    /// Number of parameters that carry optimizer state (0 before the first step).
    pub fn state_len(&self) -> usize {
        self.optim.to_record().len()
    }
}

/// Bytes of the state tensors of a serialised optimizer record (`optim*.bpk`: AdamW's two moments
/// of every parameter it has stepped), what ZeRO divides over the ranks.
pub fn state_tensor_bytes(record: burn::tensor::Bytes) -> Result<usize, burn::store::RecordError> {
    let reader = burn::store::burn_pack::Reader::from_bytes(record)?;
    Ok(reader.into_tensors()?.iter().map(|t| t.byte_len()).sum())
}

/// Sums gradients over micro-batches. Each micro-batch's loss should already be divided by
/// the token count of the whole accumulated batch, so the sum is the full-batch gradient.
pub struct Accumulator<M> {
    inner: GradientsAccumulator<M>,
    count: usize,
}

impl<M: Module> Default for Accumulator<M> {
    fn default() -> Self {
        Self { inner: GradientsAccumulator::new(), count: 0 }
    }
}

impl<M: Module> Accumulator<M> {
    pub fn add(&mut self, model: &M, grads: GradientsParams) {
        self.inner.accumulate(model, grads);
        self.count += 1;
    }

    /// Micro-batches added since the last [`take`](Self::take).
    pub fn count(&self) -> usize {
        self.count
    }

    pub fn take(&mut self) -> GradientsParams {
        self.count = 0;
        self.inner.grads()
    }
}
