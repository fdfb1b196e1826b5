//! A NaN/Inf step is skipped (model and optimizer untouched) and counted; too many in a row
//! stop the run with a message naming the limit. Accumulation equals one big batch.

mod train_support;

use burn::store::ModuleSnapshot;
use burn::tensor::Device;
use mm1_trainer::bench::synthetic_batch;
use mm1_trainer::optim::{AdamWSettings, GroupedAdamW};
use mm1_trainer::step::{NonFiniteGuard, train_step};
use train_support::*;

fn weights(m: &mm1_models::Mm1Model) -> Vec<Vec<u8>> {
    m.collect(None, None, false).iter().map(|t| t.to_bytes().unwrap().to_vec()).collect()
}

#[test]
fn nan_step_is_skipped_counted_and_stops_after_the_limit() {
    let _one = one_at_a_time();
    let tmp = tempfile::tempdir().unwrap();
    let cfg = load(&tiny_run_file(tmp.path(), &tmp.path().join("s"), 4, ""), &[]).config;
    let device = Device::flex().autodiff();
    let model = cfg.model.init(&device).unwrap();
    let mut optim = GroupedAdamW::new(&model, &AdamWSettings::default()).unwrap();
    let good = synthetic_batch(&cfg, 1);
    let mut bad = good.clone();
    bad.images[7] = f32::NAN;

    let before = weights(&model);
    let (model, r) = train_step(model, &mut optim, &[bad.clone()], 1e-3, &device).unwrap();
    assert!(!r.applied && r.loss.is_nan());
    assert_eq!(weights(&model), before, "a skipped step must not touch the weights");
    assert_eq!(optim.state_len(), 0, "nor the optimizer state");

    let mut guard = NonFiniteGuard { max_in_a_row: 2, in_a_row: 0, total: 0 };
    guard.record(1, &r).unwrap();
    let (model, ok) = train_step(model, &mut optim, &[good], 1e-3, &device).unwrap();
    assert!(ok.applied && ok.loss.is_finite());
    guard.record(2, &ok).unwrap();
    assert_eq!((guard.in_a_row, guard.total), (0, 1));
    let (model, r) = train_step(model, &mut optim, &[bad.clone()], 1e-3, &device).unwrap();
    guard.record(3, &r).unwrap();
    let (_, r) = train_step(model, &mut optim, &[bad], 1e-3, &device).unwrap();
    let msg = guard.record(4, &r).unwrap_err();
    assert!(msg.contains("2 steps in a row") && msg.contains("max_nonfinite_in_a_row = 2"), "{msg}");
    assert_eq!(guard.total, 3);
}

#[test]
fn two_micro_batches_equal_one_batch_of_both() {
    let _one = one_at_a_time(); // its seeded initialisation, not the other test's draws
    let tmp = tempfile::tempdir().unwrap();
    let mut cfg = load(&tiny_run_file(tmp.path(), &tmp.path().join("s"), 4, ""), &[]).config;
    cfg.data.batch_size = 2;
    let device = Device::flex().autodiff();
    device.seed(9);
    let init = cfg.model.init(&device).unwrap();
    let (a, b) = (synthetic_batch(&cfg, 1), synthetic_batch(&cfg, 2));
    let both = stacked(&a, &b);

    let settings = AdamWSettings::default();
    let mut o1 = GroupedAdamW::new(&init, &settings).unwrap();
    let (m1, r1) = train_step(init.clone(), &mut o1, &[a, b], 1e-3, &device).unwrap();
    let mut o2 = GroupedAdamW::new(&init, &settings).unwrap();
    let (m2, r2) = train_step(init, &mut o2, &[both], 1e-3, &device).unwrap();
    assert!((r1.loss - r2.loss).abs() < 1e-5, "{} vs {}", r1.loss, r2.loss);
    assert!(
        (r1.grad_norm - r2.grad_norm).abs() < 1e-4 * r2.grad_norm,
        "{} vs {}",
        r1.grad_norm,
        r2.grad_norm
    );
    let max_diff = m1
        .collect(None, None, false)
        .iter()
        .zip(m2.collect(None, None, false))
        .flat_map(|(x, y)| {
            let f = |t: &burn::store::burn_pack::Tensor| -> Vec<f32> {
                let b = t.to_bytes().unwrap();
                b.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect()
            };
            f(x).into_iter().zip(f(&y)).map(|(p, q)| (p - q).abs()).collect::<Vec<_>>()
        })
        .fold(0.0f32, f32::max);
    assert!(max_diff < 1e-5, "max parameter difference {max_diff}");
}
