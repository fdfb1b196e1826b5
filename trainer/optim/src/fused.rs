//! AdamW whose per-parameter update is one parallel pass on flex
//! (`mm1_kernels::adamw_update`) instead of burn-optim's ~12 element-wise tensor ops.
//! Its state is burn-optim's own `AdamWState`, so checkpoints do not change, and the
//! arithmetic is burn's operation for operation (the same values, tested); on any other
//! backend (and for AMSGrad state, which we never create) it is burn's `AdamW`.

use burn::optim::{AdamW, AdamWConfig, AdamWState, AdaptiveMomentumState, LearningRate, Optimizer};
use burn::prelude::*;
use mm1_kernels::{AdamWStep, adamw_update, on_flex_f32};

#[derive(Clone)]
pub struct FusedAdamW {
    beta1: f32,
    beta2: f32,
    eps: f32,
    weight_decay: f32,
    /// burn's AdamW with the same settings, for other backends.
    burn: AdamW,
}

impl FusedAdamW {
    pub fn new(beta1: f32, beta2: f32, eps: f32, weight_decay: f32) -> Self {
        let burn = AdamWConfig::new()
            .with_beta_1(beta1)
            .with_beta_2(beta2)
            .with_epsilon(eps)
            .with_weight_decay(weight_decay)
            .build();
        Self { beta1, beta2, eps, weight_decay, burn }
    }
}

impl Optimizer for FusedAdamW {
    type State<const D: usize> = AdamWState<D>;

    fn step<const D: usize>(
        &self,
        lr: LearningRate,
        tensor: Tensor<D>,
        grad: Tensor<D>,
        state: Option<Self::State<D>>,
    ) -> (Tensor<D>, Option<Self::State<D>>) {
        let amsgrad = state.as_ref().is_some_and(|s| s.momentum.max_moment_2.is_some());
        if amsgrad || !on_flex_f32(&tensor) {
            return self.burn.step(lr, tensor, grad, state);
        }
        let (moments, time) = match state {
            Some(s) => (Some((s.momentum.moment_1, s.momentum.moment_2)), s.momentum.time + 1),
            None => (None, 1),
        };
        let s = AdamWStep {
            lr,
            beta1: self.beta1,
            beta2: self.beta2,
            eps: self.eps,
            weight_decay: self.weight_decay,
            time,
        };
        let (p, m, v) = adamw_update(tensor, &grad, moments, s);
        (p, Some(AdamWState::new(AdaptiveMomentumState::new(time, m, v))))
    }

    fn to_device<const D: usize>(state: Self::State<D>, device: &Device) -> Self::State<D> {
        <AdamW as Optimizer>::to_device(state, device)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Three updates (the first from empty state) give burn's `AdamW` values, bit for bit.
    #[test]
    fn fused_adamw_equals_burn_adamw() {
        let device = Device::flex();
        let values =
            |k: usize| -> Vec<f32> { (0..5000).map(|i| ((i * k) % 211) as f32 / 40.0 - 2.5).collect() };
        let tensor = |k| Tensor::<2>::from_data(TensorData::new(values(k), [50, 100]), &device);
        let fused = FusedAdamW::new(0.9, 0.95, 1e-8, 0.1);
        let (mut p1, mut p2) = (tensor(3), tensor(3));
        let (mut s1, mut s2) = (None, None);
        for (step, k) in [7, 11, 13].into_iter().enumerate() {
            let lr = 1e-3 * (step + 1) as f64;
            (p1, s1) = fused.step(lr, p1, tensor(k), s1);
            (p2, s2) = fused.burn.step(lr, p2, tensor(k), s2);
        }
        let (s1, s2) = (s1.unwrap().momentum, s2.unwrap().momentum);
        assert_eq!(s1.time, s2.time);
        let flat = |t: Tensor<2>| t.into_data().try_to_vec::<f32>().unwrap();
        for (name, a, b) in
            [("param", p1, p2), ("m", s1.moment_1, s2.moment_1), ("v", s1.moment_2, s2.moment_2)]
        {
            assert_eq!(flat(a), flat(b), "{name}");
        }
    }
}
