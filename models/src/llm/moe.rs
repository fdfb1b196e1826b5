//! Mixture-of-experts FFN (MM1 §3.4): softmax router, top-k (renormalised over the k
//! choices when k > 1), expert capacity with dropped-token accounting, GShard
//! load-balancing loss and ST-MoE router z-loss, optional upcycling from a dense FFN.

use super::dispatch::{ExpertDispatch, LocalDispatch};
use super::mlp::Mlp;
use super::routing::{self, RoutingPlan};
use crate::config::MoeConfig;
use burn::nn::{Linear, LinearConfig};
use burn::prelude::*;
use burn::tensor::FloatDType;
use burn::tensor::activation::softmax;
use std::sync::Arc;

#[derive(Module, Debug)]
pub struct MoeFfn {
    /// `d → e`, no bias.
    pub router: Linear,
    pub experts: Vec<Mlp>,
    pub top_k: usize,
    pub capacity_factor: f64,
    pub load_balance_coef: f64,
    pub z_loss_coef: f64,
    #[module(skip)]
    pub dispatch: Arc<dyn ExpertDispatch>,
}

/// Per-layer routing statistics, for logging.
#[derive(Debug, Clone)]
pub struct MoeStats {
    /// Decoder layer index.
    pub layer: usize,
    /// Assignments each expert processed (after capacity).
    pub expert_load: Vec<usize>,
    /// Assignments dropped by the capacity limit.
    pub dropped: usize,
    /// Total assignments (`tokens * top_k`).
    pub routed: usize,
    pub capacity: usize,
    /// Unweighted GShard load-balancing loss (1.0 when perfectly balanced), `[1]`.
    pub load_balance_loss: Tensor<1>,
    /// Unweighted router z-loss, `[1]`.
    pub z_loss: Tensor<1>,
}

/// Output of one MoE FFN call.
#[derive(Debug)]
pub struct MoeOutput {
    /// `[b, t, d]`
    pub y: Tensor<3>,
    /// Weighted auxiliary loss `lb_coef * lb + z_coef * z`, `[1]`.
    pub aux_loss: Tensor<1>,
    pub stats: MoeStats,
}

impl MoeFfn {
    pub fn new(cfg: &MoeConfig, width: usize, ffn_dim: usize, device: &Device) -> Self {
        let experts = if cfg.upcycle {
            let dense = Mlp::new(width, ffn_dim, device);
            (0..cfg.num_experts).map(|_| copy_mlp(&dense)).collect()
        } else {
            (0..cfg.num_experts).map(|_| Mlp::new(width, ffn_dim, device)).collect()
        };
        Self {
            router: LinearConfig::new(width, cfg.num_experts).with_bias(false).init(device),
            experts,
            top_k: cfg.top_k,
            capacity_factor: cfg.capacity_factor,
            load_balance_coef: cfg.load_balance_coef,
            z_loss_coef: cfg.z_loss_coef,
            dispatch: Arc::new(LocalDispatch),
        }
    }

    /// Sparse upcycling (Komatsuzaki et al. 2023): every expert starts as a copy of `dense`.
    pub fn upcycle_from(mut self, dense: &Mlp) -> Self {
        self.experts = self.experts.iter().map(|_| copy_mlp(dense)).collect();
        self
    }

    /// Replace the token dispatcher (e.g. with an expert-parallel one).
    pub fn with_dispatch(mut self, dispatch: Arc<dyn ExpertDispatch>) -> Self {
        self.dispatch = dispatch;
        self
    }

    /// # Shapes
    /// - `x`: `[b, t, d]` → `y`: `[b, t, d]`
    pub fn forward(&self, x: Tensor<3>, layer: usize) -> MoeOutput {
        let [b, t, d] = x.dims();
        let e = self.experts.len();
        let k = self.top_k;
        let x = x.reshape([b * t, d]); // [n, d]
        // router logits, probabilities and losses in f32 also under bf16 (as Megatron's and
        // torchtitan's routers): a top-k on bf16 probabilities ties and flips experts
        let logits = self.router.forward(x.clone().cast(FloatDType::F32)); // [n, e]
        let probs = softmax(logits.clone(), 1); // [n, e]
        let (_, idx) = probs.clone().detach().topk_with_indices(k, 1); // [n, k]
        let mut gates = probs.clone().gather(1, idx.clone()); // [n, k]
        if k > 1 {
            gates = gates.clone() / gates.sum_dim(1); // renormalise over the k choices
        }
        let choices: Vec<usize> = idx.into_data().iter::<i64>().map(|i| i as usize).collect();
        let cap = routing::capacity(self.capacity_factor, b * t, k, e);
        let plan = routing::plan(&choices, e, k, cap);
        let gates = gates.reshape([b * t * k]).cast(x.dtype()); // [n·k], the experts' dtype
        let y = self.dispatch.dispatch(x, gates, &plan, &self.experts); // [n, d]
        let (lb, z) = aux_losses(probs, logits, &plan, &|c| self.dispatch.sum_routing_counts(c));
        let aux_loss = lb.clone() * self.load_balance_coef + z.clone() * self.z_loss_coef;
        MoeOutput { y: y.reshape([b, t, d]), aux_loss, stats: stats(layer, &plan, lb, z) }
    }
}

/// GShard load balance `e * Σ_e f_e * P_e` (`f_e`: fraction of first choices, `P_e`: mean
/// router probability) and z-loss `mean(logsumexp(logits)²)`, over the tokens of every device
/// that shares the experts (`sum_counts` sums the routing counts over them; the identity for
/// one device). Each device returns its share: the shares of all devices add up to the losses
/// of the whole batch, and so do their gradients.
///
/// # Shapes
/// - `probs`, `logits`: `[n, e]` → two `[1]` tensors
pub fn aux_losses(
    probs: Tensor<2>,
    logits: Tensor<2>,
    plan: &RoutingPlan,
    sum_counts: &dyn Fn(Vec<f32>) -> Vec<f32>,
) -> (Tensor<1>, Tensor<1>) {
    let [n, e] = probs.dims();
    let device = probs.device();
    let mut counts: Vec<f32> = plan.top1_counts.iter().map(|&c| c as f32).collect();
    counts.push(n as f32);
    let counts = sum_counts(counts);
    let total = counts[e].max(1.0); // tokens of all devices
    let f: Vec<f32> = counts[..e].iter().map(|c| c / total).collect();
    let f = Tensor::<1>::from_data(TensorData::new(f, [e]), &device);
    let p = probs.sum_dim(0).reshape([e]) / total; // [e], this device's share of P_e
    let lb = (f * p).sum() * e as f64;
    let max = logits.clone().detach().max_dim(1); // [n, 1], for a stable logsumexp
    let lse = (logits - max.clone()).exp().sum_dim(1).log() + max; // [n, 1]
    let z = lse.powi_scalar(2).sum() / total;
    (lb, z)
}

fn stats(layer: usize, plan: &RoutingPlan, lb: Tensor<1>, z: Tensor<1>) -> MoeStats {
    MoeStats {
        layer,
        expert_load: plan.load(),
        dropped: plan.dropped,
        routed: plan.num_tokens * plan.top_k,
        capacity: plan.capacity,
        load_balance_loss: lb,
        z_loss: z,
    }
}

/// A copy with fresh parameter ids (so each expert is trained separately).
fn copy_mlp(m: &Mlp) -> Mlp {
    let fresh = |l: &burn::nn::Linear| burn::nn::Linear {
        weight: burn::module::Param::from_tensor(l.weight.val().detach()),
        bias: l.bias.as_ref().map(|b| burn::module::Param::from_tensor(b.val().detach())),
    };
    Mlp { gate_proj: fresh(&m.gate_proj), up_proj: fresh(&m.up_proj), down_proj: fresh(&m.down_proj) }
}
