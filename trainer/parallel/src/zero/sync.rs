//! The three exchanges of a ZeRO step over the data-parallel ranks (`mod.rs` for the design):
//! gradients to their owners, the global gradient norm, and the updated parameters back to
//! every rank.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param, ParamId};
use burn::optim::GradientsParams;
use burn::tensor::{Tensor, TensorData};
use mm1_kernels::{on_flex_f32, square_sum};

use super::layout::ExchangeLayout;
use super::partition::ZeroPartition;
use crate::collective::{Collective, CollectiveError, ReduceOp};
use crate::data_parallel::{CommStats, DataParallel, GradScaling, timed};

/// ZeRO stage 1 or 2 over one communicator.
#[derive(Debug)]
pub struct ZeroSync {
    coll: Arc<dyn Collective>,
    stage: u8,
    /// Stage 1's gradient all-reduce (DDP buckets).
    dp: DataParallel,
    /// Values per all-gather of the updated parameters.
    bucket_elems: usize,
    /// Built from the model at the first call; every rank computes the same.
    partition: Mutex<Option<Arc<ZeroPartition>>>,
    /// Whether the ranks' partitions were compared (per-unit reductions check once).
    layout_checked: AtomicBool,
    stats: Mutex<CommStats>,
}

impl ZeroSync {
    /// `stage` 1 or 2 (`parallel.zero`) over `coll`; `bucket_elems` values per stage-1 all-reduce
    /// and per all-gather of the updated parameters.
    pub fn new(coll: Arc<dyn Collective>, stage: u8, bucket_elems: usize) -> Result<Self, CollectiveError> {
        if !(1..=2).contains(&stage) {
            return Err(CollectiveError::Launch(format!("parallel.zero = {stage}: ZeroSync needs 1 or 2")));
        }
        let dp = DataParallel::new(coll.clone(), bucket_elems);
        Ok(Self {
            coll,
            stage,
            dp,
            bucket_elems: bucket_elems.max(1),
            partition: Mutex::new(None),
            layout_checked: AtomicBool::new(false),
            stats: Mutex::new(CommStats::default()),
        })
    }

    pub fn stage(&self) -> u8 {
        self.stage
    }

    /// The owner map of `model`'s trainable parameters over this communicator.
    pub fn partition<M: Module>(&self, model: &M) -> Arc<ZeroPartition> {
        let mut cached = self.partition.lock().expect("partition lock");
        cached
            .get_or_insert_with(|| Arc::new(ZeroPartition::of_module(model, self.coll.world_size())))
            .clone()
    }

    /// Communication since the previous call.
    pub fn take_comm_stats(&self) -> CommStats {
        let own = std::mem::take(&mut *self.stats.lock().expect("stats lock"));
        own.merged(self.dp.take_comm_stats())
    }

    fn timed<T>(
        &self,
        bytes: usize,
        f: impl FnOnce() -> Result<T, CollectiveError>,
    ) -> Result<T, CollectiveError> {
        timed(&self.stats, bytes, f)
    }

    /// Summed gradients of the parameters this rank owns (the others dropped). Stage 1
    /// all-reduces every gradient (torch's ZeroRedundancyOptimizer after DDP), stage 2
    /// reduce-scatters so that only this rank's slice of the sums is ever materialised.
    /// The local gradients must already be shares of the global-mean loss.
    pub fn reduce<M: Module>(
        &self,
        model: &M,
        grads: GradientsParams,
    ) -> Result<GradientsParams, CollectiveError> {
        let part = self.partition(model);
        let me = self.coll.rank();
        if self.stage == 1 {
            let mut grads = self.dp.all_reduce_gradients(model, grads, GradScaling::PreScaled)?;
            model.visit(&mut DropOthers { grads: &mut grads, part: &part, me });
            return Ok(grads);
        }
        self.check_layout(&part)?;
        self.reduce_scatter(model, grads, &ExchangeLayout::of(&part, |_| true))
    }

    /// Stage 2 during a segmented backward pass: the sums over the ranks of the gradients of
    /// `ids` (whose local gradients are complete), kept for the parameters this rank owns; the
    /// others are dropped. Every rank calls it with the same `ids` in the same order (a rank
    /// without some of the gradients sends zeros for them). Gradients of parameters outside the
    /// partition (frozen ones have none) stay as they are; with no partitioned parameter in
    /// `ids` nothing is exchanged.
    pub fn reduce_group<M: Module>(
        &self,
        model: &M,
        grads: GradientsParams,
        ids: &[ParamId],
    ) -> Result<GradientsParams, CollectiveError> {
        if self.stage != 2 {
            return Err(CollectiveError::Launch(format!(
                "parallel.zero = {}: gradients are reduced per unit under stage 2 only",
                self.stage
            )));
        }
        let part = self.partition(model);
        if !self.layout_checked.swap(true, Ordering::Relaxed) {
            self.check_layout(&part)?;
        }
        let ids: HashSet<ParamId> = ids.iter().copied().collect();
        let layout = ExchangeLayout::of(&part, |id| ids.contains(id));
        if layout.is_empty() {
            return Ok(grads);
        }
        self.reduce_scatter(model, grads, &layout)
    }

    /// Stage 2's exchange: the gradients of `layout`'s parameters moved into owner-ordered
    /// chunks with presence flags, reduce-scattered, and this rank's sums put back as the
    /// gradients of its own parameters that some rank had (absent on a rank: zeros there, as
    /// in data parallelism). Gradients outside the layout stay in `grads`.
    fn reduce_scatter<M: Module>(
        &self,
        model: &M,
        mut grads: GradientsParams,
        layout: &ExchangeLayout,
    ) -> Result<GradientsParams, CollectiveError> {
        // 1. gradients and flags into owner-ordered chunks [ranks * chunk]
        let send = vec![0.0; self.coll.world_size() * layout.chunk_len()];
        let mut take = TakeGrads { grads: &mut grads, layout, send, error: None };
        model.visit(&mut take);
        let TakeGrads { send, error, .. } = take;
        if let Some(e) = error {
            return Err(e);
        }
        // 2. this rank's chunk of the sums [chunk]
        let bytes = 4 * send.len();
        let mine = self.timed(bytes, || self.coll.reduce_scatter(send, ReduceOp::Sum))?;
        // 3. back as gradients of the owned parameters some rank had a gradient for
        let me = self.coll.rank();
        model.visit(&mut PutGrads { grads: &mut grads, layout, me, chunk: &mine });
        Ok(grads)
    }

    /// Every rank flattens the same parameters into the same chunks, or the sums are garbage.
    fn check_layout(&self, part: &ZeroPartition) -> Result<(), CollectiveError> {
        let layout = vec![part.params().len() as u64, part.chunk_len() as u64];
        let all = self.timed(16, || self.coll.all_gather_u64(layout.clone()))?;
        match all.chunks(2).position(|l| l != layout.as_slice()) {
            None => Ok(()),
            Some(r) => Err(CollectiveError::Mismatch(format!(
                "ZeRO layout: rank {r} has {} parameters in chunks of {}, rank {} has {} in chunks of {}",
                all[2 * r],
                all[2 * r + 1],
                self.coll.rank(),
                layout[0],
                layout[1]
            ))),
        }
    }

    /// Global L2 norm of the reduced gradients, each held by its owner only: every parameter's
    /// square sum from its owner, added in visiting order (the same f64 additions, in the same
    /// order, as `mm1_trainer::optim::global_grad_norm` over the whole gradient).
    pub fn grad_norm<M: Module>(&self, model: &M, grads: &GradientsParams) -> Result<f64, CollectiveError> {
        let part = self.partition(model);
        let n = part.params().len();
        let mut sq = SquareSums { grads, part: &part, sums: vec![0.0; n] };
        model.visit(&mut sq);
        let bits: Vec<u64> = sq.sums.iter().map(|s| s.to_bits()).collect();
        let all = self.timed(8 * n, || self.coll.all_gather_u64(bits))?; // [ranks * n]
        let total = part.params().iter().enumerate().map(|(i, p)| f64::from_bits(all[p.owner * n + i]));
        Ok(total.fold(0.0, |acc, s| acc + s).sqrt())
    }

    /// After the optimizer updated this rank's own parameters: every parameter's new value from
    /// its owner on every rank, all-gathered in owner-ordered chunks, one bucket of at most
    /// `bucket_elems` values at a time (so the exchange buffers stay one bucket's size).
    pub fn share_update<M: Module>(&self, mut model: M) -> Result<M, CollectiveError> {
        let part = self.partition(&model);
        let me = self.coll.rank();
        for layout in ExchangeLayout::buckets(&part, self.bucket_elems) {
            let l = layout.values_len();
            let mut mine = Collect { layout: &layout, me, chunk: vec![0.0; l] };
            model.visit(&mut mine);
            let chunk = mine.chunk;
            let all = self.timed(4 * l, || self.coll.all_gather(chunk))?; // [ranks * L]
            model = model.map(&mut Replace { layout: &layout, me, all: &all });
        }
        Ok(model)
    }
}

/// Stage 1: drop the reduced gradients of the parameters other ranks own.
struct DropOthers<'a> {
    grads: &'a mut GradientsParams,
    part: &'a ZeroPartition,
    me: usize,
}

impl ModuleVisitor for DropOthers<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        if self.part.owner(&param.id).is_some_and(|r| r != self.me) {
            self.grads.remove::<D>(param.id);
        }
    }
}

/// Stage 2: every gradient of the layout moved out of `grads` into its owner's chunk of `send`,
/// with its presence flag.
struct TakeGrads<'a> {
    grads: &'a mut GradientsParams,
    layout: &'a ExchangeLayout,
    /// `[ranks * chunk]`
    send: Vec<f32>,
    error: Option<CollectiveError>,
}

impl ModuleVisitor for TakeGrads<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let Some(slot) = self.layout.get(&param.id) else { return };
        let Some(g) = self.grads.remove::<D>(param.id) else { return };
        let data = g.into_data().convert::<f32>();
        if data.num_elements() != slot.numel {
            let (got, expected) = (data.num_elements(), slot.numel);
            self.error = Some(CollectiveError::Size {
                op: "zero reduce_scatter",
                what: "gradient elements",
                got,
                expected,
            });
            return;
        }
        let start = self.layout.send_values(slot);
        self.send[start..start + slot.numel]
            .copy_from_slice(data.as_slice::<f32>().expect("converted to f32"));
        self.send[self.layout.send_flag(slot)] = 1.0;
    }
}

/// Stage 2: the owned parameters' summed gradients (this rank's chunk) back into `grads`.
struct PutGrads<'a> {
    grads: &'a mut GradientsParams,
    layout: &'a ExchangeLayout,
    me: usize,
    /// `[chunk]`: values, then the number of ranks that had each owned parameter's gradient.
    chunk: &'a [f32],
}

impl ModuleVisitor for PutGrads<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let Some(slot) = self.layout.get(&param.id).filter(|s| s.owner == self.me) else { return };
        if self.chunk[self.layout.recv_flag(slot)] == 0.0 {
            return;
        }
        let values = self.chunk[slot.offset..slot.offset + slot.numel].to_vec();
        // gradients live on the inner (non-autodiff) device
        let device = param.lazy_device().inner();
        self.grads.register::<D>(
            param.id,
            Tensor::<D>::from_data(TensorData::new(values, param.lazy_shape()), &device),
        );
    }
}

/// Each partitioned parameter's `sum(g^2)` where this rank holds its gradient.
struct SquareSums<'a> {
    grads: &'a GradientsParams,
    part: &'a ZeroPartition,
    sums: Vec<f64>,
}

impl ModuleVisitor for SquareSums<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let (Some(i), Some(g)) = (self.part.index_of(&param.id), self.grads.get::<D>(param.id)) else {
            return;
        };
        self.sums[i] =
            if on_flex_f32(&g) { square_sum(&g) } else { g.square().sum().into_scalar::<f32>() as f64 };
    }
}

/// This rank's parameters' values at their offsets in its chunk of `layout`.
struct Collect<'a> {
    layout: &'a ExchangeLayout,
    me: usize,
    chunk: Vec<f32>,
}

impl ModuleVisitor for Collect<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let Some(s) = self.layout.get(&param.id).filter(|s| s.owner == self.me) else { return };
        let data = param.val().into_data().convert::<f32>();
        self.chunk[s.offset..s.offset + s.numel]
            .copy_from_slice(data.as_slice::<f32>().expect("converted to f32"));
    }
}

/// Every other rank's parameters of `layout` replaced by the values from their owner's chunk.
struct Replace<'a> {
    layout: &'a ExchangeLayout,
    me: usize,
    /// `[ranks * values_len]`
    all: &'a [f32],
}

impl ModuleMapper for Replace<'_> {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let Some(s) = self.layout.get(&param.id).filter(|s| s.owner != self.me) else { return param };
        let start = s.owner * self.layout.values_len() + s.offset;
        let values = self.all[start..start + s.numel].to_vec();
        param.map(|t| {
            let data = TensorData::new(values, t.shape()).convert_dtype(t.dtype());
            let fresh = Tensor::<D>::from_data(data, &t.device());
            if t.is_require_grad() { fresh.require_grad() } else { fresh }
        })
    }
}
