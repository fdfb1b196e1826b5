//! MoE routing against hand-computed values, and the sparse layer against a dense
//! reference computation.

mod common;

use burn::module::Param;
use burn::prelude::*;
use mm1_models::MoeConfig;
use mm1_models::llm::{Mlp, MoeFfn, aux_losses, routing};

#[test]
fn capacity_and_drops_by_hand() {
    // 4 tokens, top-2 of 3 experts, capacity ceil(1.0 * 4 * 2 / 3) = 3.
    let choices = [0, 1, 0, 2, 0, 1, 1, 0];
    let cap = routing::capacity(1.0, 4, 2, 3);
    assert_eq!(cap, 3);
    let plan = routing::plan(&choices, 3, 2, cap);
    // First choices first: e0 <- t0,t1,t2; e1 <- t3. Second: e1 <- t0, e2 <- t1,
    // e1 <- t2, e0 full -> t3's second choice dropped.
    assert_eq!(plan.assignments[0], vec![(0, 0), (1, 0), (2, 0)]);
    assert_eq!(plan.assignments[1], vec![(3, 0), (0, 1), (2, 1)]);
    assert_eq!(plan.assignments[2], vec![(1, 1)]);
    assert_eq!((plan.load(), plan.dropped, plan.top1_counts.clone()), (vec![3, 3, 1], 1, vec![3, 1, 0]));
    assert_eq!(routing::capacity(0.0, 4, 2, 3), 8, "factor 0 = unlimited");
    assert_eq!(routing::plan(&choices, 3, 2, 8).dropped, 0);
}

#[test]
fn load_balance_and_z_loss_by_hand() {
    let device = Device::flex();
    let l2 = 2f32.ln();
    // probs: [0.5, 0.25, 0.25] and [0.25, 0.5, 0.25]; first choices e0 and e1.
    let logits = Tensor::<2>::from_data([[l2, 0.0, 0.0], [0.0, l2, 0.0]], &device);
    let probs = burn::tensor::activation::softmax(logits.clone(), 1);
    let plan = routing::plan(&[0, 1], 3, 1, 2);
    let (lb, z) = aux_losses(probs.clone(), logits.clone(), &plan, &|c| c);
    // The same two tokens split over two devices: each device's share adds up to the whole.
    let (plan0, plan1) = (routing::plan(&[0], 3, 1, 1), routing::plan(&[1], 3, 1, 1));
    let both = |_: Vec<f32>| vec![1.0, 1.0, 0.0, 2.0]; // summed counts: e0 1, e1 1, e2 0; 2 tokens
    let (lb0, z0) = aux_losses(probs.clone().slice(0..1), logits.clone().slice(0..1), &plan0, &both);
    let (lb1, z1) = aux_losses(probs.slice(1..2), logits.slice(1..2), &plan1, &both);
    let split_lb = lb0.into_scalar::<f32>() + lb1.into_scalar::<f32>();
    let split_z = z0.into_scalar::<f32>() + z1.into_scalar::<f32>();
    assert!((split_lb - 1.125).abs() < 1e-5, "split load balance {split_lb}");
    assert!((split_z - 4f32.ln().powi(2)).abs() < 1e-5, "split z-loss {split_z}");
    // lb = 3 * (0.5 * 0.375 + 0.5 * 0.375 + 0 * 0.25) = 1.125; z = ln(4)^2.
    assert!((lb.into_scalar::<f32>() - 1.125).abs() < 1e-5);
    assert!((z.into_scalar::<f32>() - 4f32.ln().powi(2)).abs() < 1e-5);
}

fn moe(e: usize, k: usize, cf: f64, upcycle: bool, device: &Device) -> MoeFfn {
    let cfg = MoeConfig { num_experts: e, top_k: k, capacity_factor: cf, upcycle, ..MoeConfig::default() };
    let mut m = MoeFfn::new(&cfg, 8, 16, device);
    // A router with some spread so routing is not a coin toss.
    m.router.weight = Param::from_tensor(
        Tensor::from_data(TensorData::new(common::values(8 * e, 3), [8, e]), device) * 3.0,
    );
    m
}

fn tokens(device: &Device) -> Tensor<3> {
    Tensor::from_data(TensorData::new(common::values(2 * 6 * 8, 5), [2, 6, 8]), device)
}

#[test]
fn sparse_dispatch_equals_dense_reference() {
    let device = Device::flex();
    let layer = moe(4, 2, 0.0, false, &device);
    let x = tokens(&device);
    let out = layer.forward(x.clone(), 3);
    // Dense path: every expert on every token, weighted by the renormalised top-2 gates.
    let x2 = x.reshape([12, 8]);
    let probs = burn::tensor::activation::softmax(layer.router.forward(x2.clone()), 1); // [12, 4]
    let (top, idx) = probs.clone().topk_with_indices(2, 1);
    let gates = Tensor::<2>::zeros([12, 4], &device).scatter(
        1,
        idx,
        top.clone() / top.sum_dim(1),
        burn::tensor::IndexingUpdateOp::Add,
    );
    let mut want = Tensor::<2>::zeros([12, 8], &device);
    for (i, expert) in layer.experts.iter().enumerate() {
        want = want + expert.forward(x2.clone()) * gates.clone().slice([0..12, i..i + 1]);
    }
    assert!(common::max_abs_diff(out.y.reshape([12, 8]), want) < 1e-5);
    assert_eq!(out.stats.layer, 3);
    assert_eq!((out.stats.routed, out.stats.dropped), (24, 0));
    assert_eq!(out.stats.expert_load.iter().sum::<usize>(), 24);
    let lb = out.stats.load_balance_loss.into_scalar::<f32>();
    let z = out.stats.z_loss.into_scalar::<f32>();
    let aux = out.aux_loss.into_scalar::<f32>();
    assert!((aux - (0.01 * lb + 0.001 * z)).abs() < 1e-6);
}

#[test]
fn capacity_drops_are_counted_and_zeroed() {
    let device = Device::flex();
    let layer = moe(4, 1, 0.5, false, &device); // capacity ceil(0.5 * 12 / 4) = 2
    let out = layer.forward(tokens(&device), 0);
    assert_eq!(out.stats.capacity, 2);
    let kept: usize = out.stats.expert_load.iter().sum();
    assert!(out.stats.expert_load.iter().all(|&l| l <= 2));
    assert_eq!(kept + out.stats.dropped, 12);
    assert!(out.stats.dropped >= 4, "at most 8 of 12 tokens fit");
    // Dropped tokens produce exactly zero (they ride the residual).
    let rows =
        out.y.reshape([12, 8]).abs().sum_dim(1).into_data().convert::<f32>().try_into_vec::<f32>().unwrap();
    assert_eq!(rows.iter().filter(|&&r| r == 0.0).count(), out.stats.dropped);
}

#[test]
fn upcycled_experts_reproduce_the_dense_ffn() {
    let device = Device::flex();
    let dense = Mlp::new(8, 16, &device);
    let layer = moe(4, 2, 0.0, true, &device).upcycle_from(&dense);
    let x = tokens(&device);
    let out = layer.forward(x.clone(), 0);
    assert!(common::max_abs_diff(out.y, dense.forward(x)) < 1e-5);
}

/// A dispatcher that counts its calls, standing in for an expert-parallel one.
#[derive(Debug, Default)]
struct Counting(std::sync::atomic::AtomicUsize);

impl mm1_models::ExpertDispatch for Counting {
    fn dispatch(
        &self,
        x: Tensor<2>,
        gates: Tensor<1>,
        plan: &mm1_models::RoutingPlan,
        experts: &[Mlp],
    ) -> Tensor<2> {
        self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        mm1_models::LocalDispatch.dispatch(x, gates, plan, experts)
    }
}

#[test]
fn a_plugged_in_dispatcher_runs_every_moe_layer_with_equal_results() {
    let device = Device::flex();
    let mut cfg = mm1_models::presets::tiny_moe();
    cfg.llm.layers = 4; // MoE in layers 1 and 3
    let model = cfg.init(&device).unwrap();
    let input = common::batch(&cfg, 2, 10, 1, &device);
    let local = model.forward(input.clone()).unwrap().logits;
    let counting = std::sync::Arc::new(Counting::default());
    let model = model.with_expert_dispatch(counting.clone());
    let plugged = model.forward(input).unwrap();
    assert_eq!(counting.0.load(std::sync::atomic::Ordering::Relaxed), 2);
    assert_eq!(plugged.moe.iter().map(|s| s.layer).collect::<Vec<_>>(), vec![1, 3]);
    assert!(common::max_abs_diff(local, plugged.logits) == 0.0);
}
