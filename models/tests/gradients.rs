//! Every trainable parameter gets a gradient from one training step; frozen components
//! get none (and the rest still do).

mod common;

use burn::prelude::*;
use mm1_models::{FreezeConfig, Mm1Config, presets};

fn loss_grads(cfg: &Mm1Config) -> (mm1_models::Mm1Model, burn::tensor::Gradients) {
    let device = Device::flex().autodiff();
    let model = cfg.init(&device).unwrap();
    let input = common::batch(cfg, 2, 16, 1, &device);
    let out = model.forward(input).unwrap();
    let loss = out.logits.powi_scalar(2).mean() + out.aux_loss;
    let grads = loss.backward();
    (model, grads)
}

#[test]
fn gradient_reaches_every_parameter() {
    for (name, mut cfg) in [("tiny", presets::tiny()), ("tiny_moe", presets::tiny_moe())] {
        if let Some(moe) = cfg.llm.moe.as_mut() {
            moe.capacity_factor = 0.0; // no drops, so every expert sees tokens
        }
        let (model, grads) = loss_grads(&cfg);
        let params = common::grad_presence(&model, &grads);
        assert!(params.len() > 30, "{name}: only {} params", params.len());
        let without: Vec<_> = params.iter().filter(|(_, g)| !g).map(|(p, _)| p.as_str()).collect();
        assert!(without.is_empty(), "{name}: no gradient for {without:?}");
    }
}

#[test]
fn frozen_components_get_no_gradient() {
    let mut cfg = presets::tiny();
    cfg.freeze = FreezeConfig { vision: true, connector: true, llm: false };
    let (model, grads) = loss_grads(&cfg);
    let vision = common::grad_presence(&model.vision, &grads);
    let connector = common::grad_presence(&model.connector, &grads);
    let llm = common::grad_presence(&model.llm, &grads);
    assert!(vision.iter().chain(&connector).all(|(_, g)| !g), "frozen parts got gradients");
    assert!(llm.iter().all(|(_, g)| *g), "trainable LLM lost gradients");

    cfg.freeze = FreezeConfig { vision: false, connector: false, llm: true };
    let (model, grads) = loss_grads(&cfg);
    assert!(common::grad_presence(&model.llm, &grads).iter().all(|(_, g)| !g));
    assert!(common::grad_presence(&model.connector, &grads).iter().all(|(_, g)| *g));
    assert!(common::grad_presence(&model.vision, &grads).iter().all(|(_, g)| *g));
}
