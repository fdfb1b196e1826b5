//! Learning-rate schedule and the MM1 lr rule against values computed by hand.

use mm1_trainer::config::{Decay, LrRule, OptimConfig, ScheduleConfig};
use mm1_trainer::schedule::{LrSchedule, mm1_lr};

fn close(a: f64, b: f64) {
    assert!((a - b).abs() <= 1e-12 * b.abs().max(1e-12), "{a} != {b}");
}

#[test]
fn warmup_then_cosine_to_the_floor() {
    // peak 1.0, 4 warmup steps, 12 steps in all, floor 10%.
    let cfg = ScheduleConfig { warmup_steps: 4, decay: Decay::Cosine, min_lr_ratio: 0.1 };
    let s = LrSchedule::new(&cfg, 1.0, 12);
    // Warmup: (step + 1) / 4.
    for (step, want) in [(0, 0.25), (1, 0.5), (2, 0.75), (3, 1.0)] {
        close(s.lr(step), want);
    }
    // Decay over 8 steps: p = (step − 4) / 8, lr = 0.1 + 0.9 · ½(1 + cos πp).
    close(s.lr(4), 1.0); // p = 0
    close(s.lr(8), 0.55); // p = 0.5: cos = 0 → 0.1 + 0.45
    // p = 0.25: ½(1 + √2/2) = 0.853553390593..., × 0.9 + 0.1
    close(s.lr(6), 0.1 + 0.9 * 0.853_553_390_593_273_8);
    close(s.lr(10), 0.1 + 0.9 * (1.0 - 0.853_553_390_593_273_8)); // p = 0.75, symmetric
    close(s.lr(12), 0.1); // the end and beyond: the floor
    close(s.lr(1000), 0.1);
    // Monotone after the peak.
    for step in 4..12 {
        assert!(s.lr(step + 1) <= s.lr(step));
    }
}

#[test]
fn mm1_recipe_numbers() {
    // MM1: 2000 warmup steps, cosine to 10% at 200k steps.
    let cfg = ScheduleConfig::default();
    assert_eq!((cfg.warmup_steps, cfg.decay, cfg.min_lr_ratio), (2000, Decay::Cosine, 0.1));
    let s = LrSchedule::new(&cfg, 2e-4, 200_000);
    close(s.lr(0), 1e-7);
    close(s.lr(999), 1e-4);
    close(s.lr(1999), 2e-4);
    close(s.lr(101_000), 2e-5 + 1.8e-4 * 0.5); // midpoint of the decay
    close(s.lr(200_000), 2e-5);
}

#[test]
fn linear_and_constant_decay() {
    let lin = ScheduleConfig { warmup_steps: 0, decay: Decay::Linear, min_lr_ratio: 0.0 };
    let s = LrSchedule::new(&lin, 2.0, 8);
    close(s.lr(0), 2.0);
    close(s.lr(2), 1.5);
    close(s.lr(4), 1.0);
    close(s.lr(8), 0.0);
    let constant = ScheduleConfig { warmup_steps: 2, decay: Decay::Constant, min_lr_ratio: 0.1 };
    let s = LrSchedule::new(&constant, 3.0, 10);
    close(s.lr(0), 1.5);
    for step in [1, 5, 9, 10, 50] {
        close(s.lr(step), 3.0);
    }
}

#[test]
fn mm1_learning_rate_rule() {
    // exp(−0.4214 ln N − 0.5535), computed by hand:
    // N = 1e9: ln N = 20.723265836946411; −0.4214·ln N − 0.5535 = −9.286284223689217,
    // exp of it = 9.268682471626947e-5.
    close(mm1_lr(1_000_000_000), 9.268_682_471_626_947e-5);
    // Same number two ways: N^−0.4214 · e^−0.5535.
    for n in [1_200_000_000_u64, 3_000_000_000, 30_000_000_000] {
        close(mm1_lr(n), (n as f64).powf(-0.4214) * (-0.5535_f64).exp());
    }
    // Orders of magnitude the paper's scale implies: ~9.3e-5 at 1B, smaller for larger N.
    assert!((9.2e-5..9.4e-5).contains(&mm1_lr(1_000_000_000)));
    assert!(mm1_lr(30_000_000_000) < mm1_lr(3_000_000_000));
}

#[test]
fn optim_resolves_the_rule() {
    let fixed = OptimConfig { lr: 3e-4, weight_decay: 0.05, ..OptimConfig::default() };
    let r = fixed.resolve(1_000_000_000);
    assert_eq!((r.lr, r.weight_decay), (3e-4, 0.05));
    let mm1 = OptimConfig { lr_rule: LrRule::Mm1, lr: 123.0, weight_decay: 9.0, ..OptimConfig::default() };
    let r = mm1.resolve(1_000_000_000);
    close(r.lr, mm1_lr(1_000_000_000));
    // Decoupled λ = 0.1·lr; burn scales its coefficient by lr, so the coefficient is 0.1.
    close(r.weight_decay, 0.1);
    close(r.decoupled_weight_decay(), 0.1 * r.lr);
}
