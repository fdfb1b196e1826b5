//! Global-norm gradient clipping (as `torch.nn.utils.clip_grad_norm_`).
//!
//! burn's `GradientClipping::Norm` clips every tensor by its own norm; MM1/LLaVA/torchtitan
//! clip the *global* norm over all parameters: `g <- g * min(1, max_norm / (||g||_2 + 1e-6))`.

use burn::module::{Module, ModuleVisitor, Param, ParamId};
use burn::optim::GradientsParams;
use burn::tensor::Tensor;
use mm1_kernels::{on_flex_f32, square_sum};

/// `sqrt(sum over parameters of sum(g^2))`, over the gradients `grads` holds for `module`.
/// Non-finite when any gradient holds NaN or Inf. One device sync.
pub fn global_grad_norm<M: Module>(module: &M, grads: &GradientsParams) -> f64 {
    grad_square_sum_where(module, grads, &|_| true).sqrt()
}

/// `sum(g^2)` over the gradients of the parameters `select` accepts (e.g. the MoE experts,
/// whose global norm needs the other expert-parallel ranks' shares). One device sync.
pub fn grad_square_sum_where<M: Module>(
    module: &M,
    grads: &GradientsParams,
    select: &dyn Fn(&ParamId) -> bool,
) -> f64 {
    let mut v = SquareSum { grads, select, host: 0.0, device: None };
    module.visit(&mut v);
    v.host + v.device.map_or(0.0, |t| t.into_scalar::<f32>() as f64)
}

/// Scale the gradients so that their global norm is at most `max_norm`; returns the norm
/// before clipping. `max_norm <= 0` disables clipping (the norm is still returned).
pub fn clip_global_norm<M: Module>(
    module: &M,
    grads: GradientsParams,
    max_norm: f64,
) -> (GradientsParams, f64) {
    let norm = global_grad_norm(module, &grads);
    (clip_to_norm(module, grads, max_norm, norm), norm)
}

/// [`clip_global_norm`] with the global norm already known (computed across ranks).
pub fn clip_to_norm<M: Module>(
    module: &M,
    grads: GradientsParams,
    max_norm: f64,
    norm: f64,
) -> GradientsParams {
    if max_norm <= 0.0 || !norm.is_finite() || norm <= max_norm {
        return grads;
    }
    // Same epsilon as torch's clip_grad_norm_.
    scale_grads(module, grads, max_norm / (norm + 1e-6))
}

/// Multiply every gradient of `module` held in `grads` by `scale`.
pub fn scale_grads<M: Module>(module: &M, grads: GradientsParams, scale: f64) -> GradientsParams {
    let mut v = Scale { grads, scale };
    module.visit(&mut v);
    v.grads
}

struct SquareSum<'a> {
    grads: &'a GradientsParams,
    select: &'a dyn Fn(&ParamId) -> bool,
    /// Sums of the gradients on the CPU backend (one parallel pass each, no device sync).
    host: f64,
    /// Sums of the others, kept on their device until the end (one sync).
    device: Option<Tensor<1>>,
}

impl ModuleVisitor for SquareSum<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let Some(g) = self.grads.get::<D>(param.id).filter(|_| (self.select)(&param.id)) else {
            return;
        };
        if on_flex_f32(&g) {
            self.host += square_sum(&g);
            return;
        }
        let sq = g.square().sum(); // [1]
        self.device = Some(match self.device.take() {
            Some(t) => t + sq,
            None => sq,
        });
    }
}

struct Scale {
    grads: GradientsParams,
    scale: f64,
}

impl ModuleVisitor for Scale {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        if let Some(g) = self.grads.remove::<D>(param.id) {
            self.grads.register(param.id, g.mul_scalar(self.scale));
        }
    }
}
