//! The training step's view of data parallelism ([`crate::step::StepSync`]) over a communicator:
//! token counts and logged sums exchanged exactly (f64 bits gathered, summed in rank order),
//! gradients summed in buckets (dense parameters over every rank; with expert parallelism,
//! expert parameters over their replicas only) and the global gradient norm (with expert
//! parallelism it adds the experts of every rank of the EP group). With ZeRO
//! ([`RankSync::with_zero`]) each rank receives its own parameters' gradients only and shares
//! its updated parameters after the optimizer step (`mm1_parallel::zero`); under activation
//! checkpointing ZeRO-2 reduces each unit's gradients during the backward pass (`reduce_group`).

use std::sync::{Arc, Mutex};
use std::time::Instant;

use burn::module::ParamId;
use burn::optim::GradientsParams;
use mm1_models::Mm1Model;
use mm1_parallel::data_parallel::{CommStats, DataParallel, GradScaling};
use mm1_parallel::expert_parallel::{MoeGradientReduction, expert_param_ids};
use mm1_parallel::zero::ZeroSync;
use mm1_parallel::{Collective, CollectiveError};

use crate::optim::{global_grad_norm, grad_square_sum_where};
use crate::step::{StepError, StepSync};

/// How gradients are summed.
#[derive(Debug)]
enum Reduction {
    /// Every parameter over every rank.
    Dense(DataParallel),
    /// Dense parameters over every rank, experts over their replicas; the EP group (whose
    /// ranks hold disjoint experts) for the gradient norm.
    Experts(MoeGradientReduction, Arc<dyn Collective>),
}

/// Data-parallel (optionally expert-parallel) step synchronisation.
#[derive(Debug)]
pub struct RankSync {
    world: Arc<dyn Collective>,
    reduction: Reduction,
    /// ZeRO stage 1 or 2 (data parallel only): replaces the gradient reduction and the norm.
    zero: Option<ZeroSync>,
    /// Time and bytes of the scalar exchanges (the gradient ones are in the reductions).
    scalars: Mutex<CommStats>,
}

fn collective(e: CollectiveError) -> StepError {
    StepError::Collective(e.to_string())
}

impl RankSync {
    /// Data parallel over `world` with `bucket_elems` values per all-reduce.
    pub fn data_parallel(world: Arc<dyn Collective>, bucket_elems: usize) -> Self {
        let reduction = Reduction::Dense(DataParallel::new(world.clone(), bucket_elems));
        Self { world, reduction, zero: None, scalars: Mutex::new(CommStats::default()) }
    }

    /// ZeRO stage `stage` (`parallel.zero`; 0 leaves plain data parallelism), data parallel only:
    /// the expert-parallel reduction keeps every rank's own experts' state already.
    pub fn with_zero(mut self, stage: u8, bucket_elems: usize) -> Result<Self, CollectiveError> {
        if stage == 0 {
            return Ok(self);
        }
        if let Reduction::Experts(..) = self.reduction {
            return Err(CollectiveError::Launch(format!(
                "parallel.zero = {stage} needs parallel.ep = 1 (expert parallelism already shards the experts)"
            )));
        }
        self.zero = Some(ZeroSync::new(self.world.clone(), stage, bucket_elems)?);
        Ok(self)
    }

    /// The ZeRO exchanges, when `parallel.zero > 0`.
    pub fn zero(&self) -> Option<&ZeroSync> {
        self.zero.as_ref()
    }

    /// Data + expert parallel: EP groups of `ep` consecutive ranks. Returns the EP group
    /// communicator for the token dispatcher.
    pub fn expert_parallel(
        world: Arc<dyn Collective>,
        ep: usize,
        bucket_elems: usize,
    ) -> Result<(Self, Arc<dyn Collective>), CollectiveError> {
        let (reduce, group) = MoeGradientReduction::new(world.clone(), ep, bucket_elems)?;
        let reduction = Reduction::Experts(reduce, group.clone());
        let sync = Self { world, reduction, zero: None, scalars: Mutex::new(CommStats::default()) };
        Ok((sync, group))
    }

    /// Communication since the previous call (call once per step).
    pub fn take_comm_stats(&self) -> CommStats {
        let mut total = std::mem::take(&mut *self.scalars.lock().expect("stats lock"));
        let mut grads = match &self.reduction {
            Reduction::Dense(dp) => vec![dp.take_comm_stats()],
            Reduction::Experts(m, _) => vec![m.dense.take_comm_stats(), m.experts.take_comm_stats()],
        };
        grads.extend(self.zero.as_ref().map(ZeroSync::take_comm_stats));
        for g in grads {
            total.seconds += g.seconds;
            total.bytes += g.bytes;
            total.calls += g.calls;
        }
        total
    }
}

impl StepSync for RankSync {
    fn world(&self) -> usize {
        self.world.world_size()
    }

    fn sum(&self, values: Vec<f64>) -> Result<Vec<f64>, StepError> {
        let t0 = Instant::now();
        let k = values.len();
        let bits: Vec<u64> = values.iter().map(|v| v.to_bits()).collect();
        let all = self.world.all_gather_u64(bits).map_err(collective)?;
        let mut out = vec![0.0f64; k];
        for rank in all.chunks(k.max(1)).take(self.world()) {
            for (acc, &b) in out.iter_mut().zip(rank) {
                *acc += f64::from_bits(b);
            }
        }
        let mut stats = self.scalars.lock().expect("stats lock");
        stats.seconds += t0.elapsed().as_secs_f64();
        stats.bytes += 8 * k as u64;
        stats.calls += 1;
        Ok(out)
    }

    fn reduce_grads(&self, model: &Mm1Model, grads: GradientsParams) -> Result<GradientsParams, StepError> {
        if let Some(zero) = &self.zero {
            return zero.reduce(model, grads).map_err(collective);
        }
        match &self.reduction {
            Reduction::Dense(dp) => dp.all_reduce_gradients(model, grads, GradScaling::PreScaled),
            Reduction::Experts(m, _) => m.all_reduce(model, grads),
        }
        .map_err(collective)
    }

    fn reduces_per_group(&self) -> bool {
        self.zero.as_ref().is_some_and(|z| z.stage() == 2)
    }

    fn reduce_group(
        &self,
        model: &Mm1Model,
        grads: GradientsParams,
        ids: &[ParamId],
    ) -> Result<GradientsParams, StepError> {
        match &self.zero {
            Some(zero) if zero.stage() == 2 => zero.reduce_group(model, grads, ids).map_err(collective),
            _ => self.reduce_grads(model, grads),
        }
    }

    fn router_groups(&self) -> usize {
        match &self.reduction {
            Reduction::Dense(_) => self.world(),
            Reduction::Experts(_, group) => self.world() / group.world_size(),
        }
    }

    fn grad_norm(&self, model: &Mm1Model, grads: &GradientsParams) -> Result<f64, StepError> {
        if let Some(zero) = &self.zero {
            return zero.grad_norm(model, grads).map_err(collective);
        }
        let Reduction::Experts(_, group) = &self.reduction else {
            return Ok(global_grad_norm(model, grads)); // identical gradients on every rank
        };
        // Dense gradients are identical everywhere; each EP rank holds its own experts' only.
        let experts = expert_param_ids(model);
        let dense = grad_square_sum_where(model, grads, &|id| !experts.contains(id));
        let mine = grad_square_sum_where(model, grads, &|id| experts.contains(id));
        let all = group.all_gather_u64(vec![mine.to_bits()]).map_err(collective)?;
        let expert_sq: f64 = all.iter().map(|&b| f64::from_bits(b)).sum();
        Ok((dense + expert_sq).sqrt())
    }

    fn share_update(&self, model: Mm1Model) -> Result<Mm1Model, StepError> {
        match &self.zero {
            Some(zero) => zero.share_update(model).map_err(collective),
            None => Ok(model),
        }
    }
}
