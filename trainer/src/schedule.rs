//! Learning-rate schedule: linear warmup, then cosine (or linear) decay to a floor; and the
//! MM1 learning-rate rule (MM1 §3.4: 2000 warmup steps, cosine decay to 10% of the peak,
//! `η = exp(−0.4214 ln N − 0.5535)`, decoupled weight decay `λ = 0.1 η`).

use crate::config::{Decay, ScheduleConfig};
/// The MM1 rule itself lives with `optim.lr_rule`, which applies it.
pub use crate::config::{MM1_WEIGHT_DECAY_OVER_LR, mm1_lr};

/// Learning rate per optimizer step (0-based).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LrSchedule {
    peak: f64,
    floor: f64,
    warmup: u64,
    total: u64,
    decay: Decay,
}

impl LrSchedule {
    /// `peak` after `cfg.warmup_steps`, then decay to `cfg.min_lr_ratio · peak` at `total_steps`.
    pub fn new(cfg: &ScheduleConfig, peak: f64, total_steps: u64) -> Self {
        Self {
            peak,
            floor: peak * cfg.min_lr_ratio,
            warmup: cfg.warmup_steps,
            total: total_steps,
            decay: cfg.decay,
        }
    }

    pub fn peak(&self) -> f64 {
        self.peak
    }

    /// Learning rate of optimizer step `step` (0-based).
    ///
    /// Warmup: `peak · (step + 1) / warmup` for `step < warmup`, so the first step already
    /// learns and step `warmup − 1` is at the peak. Decay: with
    /// `p = (step − warmup) / (total − warmup)` the cosine gives
    /// `floor + (peak − floor) · ½ (1 + cos πp)`; from `total` on the rate stays at the floor.
    pub fn lr(&self, step: u64) -> f64 {
        if step < self.warmup {
            return self.peak * (step + 1) as f64 / self.warmup as f64;
        }
        if step >= self.total {
            return match self.decay {
                Decay::Constant => self.peak,
                _ => self.floor,
            };
        }
        let p = (step - self.warmup) as f64 / (self.total - self.warmup) as f64;
        let shape = match self.decay {
            Decay::Cosine => 0.5 * (1.0 + (std::f64::consts::PI * p).cos()),
            Decay::Linear => 1.0 - p,
            Decay::Constant => 1.0,
        };
        self.floor + (self.peak - self.floor) * shape
    }
}
