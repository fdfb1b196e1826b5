//! Data parallelism (torchtitan/DDP semantics) over any [`Collective`].
//!
//! 1. Same initial weights everywhere: burn initialises parameters lazily, so
//!    [`DataParallel::sync_module`] forces initialisation, broadcasts every float parameter from
//!    rank 0 and verifies a checksum of the result on all ranks.
//! 2. Gradients: every trainable parameter's gradient is flattened into one host buffer and
//!    all-reduced in buckets of `bucket_elems` values. The mean is over the *global* batch,
//!    weighted by loss tokens: rank `r` with `n_r` of the `N` loss tokens contributes
//!    `g_r · n_r / N` (its loss is the mean over its own tokens), so ranks with different numbers
//!    of text tokens combine exactly as one process over the concatenated batch would.
//!    A parameter whose gradient is missing on some ranks (e.g. the vision tower on a rank whose
//!    batch was text-only) counts as zero there and is present after the reduction if any rank
//!    had it, so the ranks never disagree about which parameters the optimiser updates.
//! 3. Global-norm clipping (`optim::clip`) must run *after* the reduction.
//! 4. Communication time and bytes are accumulated per step ([`CommStats`]) for the logs.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param, ParamId};
use burn::optim::GradientsParams;
use burn::tensor::{Tensor, TensorData};
use sha2::{Digest, Sha256};

use super::collective::{Collective, CollectiveError, ReduceOp};

/// Default bucket: 25 M values (100 MB of f32), PyTorch DDP's `bucket_cap_mb` order.
pub const DEFAULT_BUCKET_ELEMS: usize = 25 << 20;

/// Loss tokens of this rank and of the whole data-parallel group for one optimizer step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenWeights {
    /// Loss-contributing tokens on this rank (summed over its micro-batches).
    pub local: u64,
    /// Sum of `local` over all ranks.
    pub global: u64,
}

impl TokenWeights {
    /// `local / global`: multiply a local-mean loss or gradient by this to get this rank's
    /// share of the global-mean one (0 when no rank had a loss token).
    pub fn share(&self) -> f64 {
        if self.global == 0 { 0.0 } else { self.local as f64 / self.global as f64 }
    }
}

/// How the local gradients were normalised.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum GradScaling {
    /// The loss was the mean over this rank's tokens: gradients are scaled by
    /// [`TokenWeights::share`] before the sum (data parallel only).
    LocalMean(TokenWeights),
    /// The loss was already multiplied by [`TokenWeights::share`] before `backward`, so
    /// gradients are plain sums. Needed with expert parallelism, where an expert's gradient
    /// mixes tokens from several ranks.
    PreScaled,
}

/// Communication spent since the last [`DataParallel::take_comm_stats`].
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct CommStats {
    /// Wall time inside collectives (includes waiting for slower ranks).
    pub seconds: f64,
    /// Payload bytes this rank contributed.
    pub bytes: u64,
    /// Number of collective calls.
    pub calls: u64,
}

impl CommStats {
    fn add(&mut self, seconds: f64, bytes: usize) {
        self.seconds += seconds;
        self.bytes += bytes as u64;
        self.calls += 1;
    }

    /// `self` plus `other`'s time, bytes and calls.
    pub fn merged(self, other: CommStats) -> CommStats {
        CommStats {
            seconds: self.seconds + other.seconds,
            bytes: self.bytes + other.bytes,
            calls: self.calls + other.calls,
        }
    }
}

/// Run `f`, one collective of `bytes` payload bytes, and add its time to `stats`.
pub(crate) fn timed<T>(
    stats: &Mutex<CommStats>,
    bytes: usize,
    f: impl FnOnce() -> Result<T, CollectiveError>,
) -> Result<T, CollectiveError> {
    let t0 = Instant::now();
    let out = f()?;
    stats.lock().expect("stats lock").add(t0.elapsed().as_secs_f64(), bytes);
    Ok(out)
}

/// Result of [`DataParallel::sync_step`].
#[derive(Debug)]
pub struct SyncedStep {
    /// Gradients of the global-batch mean loss (identical on every rank).
    pub grads: GradientsParams,
    /// This rank's and the global loss-token counts.
    pub weights: TokenWeights,
    /// Global mean loss over all ranks' tokens.
    pub loss: f64,
    /// Communication of this step (log `comm.seconds / step_seconds` as its share).
    pub comm: CommStats,
}

/// Data-parallel helper around a communicator.
#[derive(Debug)]
pub struct DataParallel {
    coll: Arc<dyn Collective>,
    bucket_elems: usize,
    stats: Mutex<CommStats>,
}

impl DataParallel {
    /// `bucket_elems`: values per all-reduce call (at least 1).
    pub fn new(coll: Arc<dyn Collective>, bucket_elems: usize) -> Self {
        Self { coll, bucket_elems: bucket_elems.max(1), stats: Mutex::new(CommStats::default()) }
    }

    /// The communicator gradients are reduced over.
    pub fn collective(&self) -> &Arc<dyn Collective> {
        &self.coll
    }

    /// Communication time/bytes since the previous call (call once per step).
    pub fn take_comm_stats(&self) -> CommStats {
        std::mem::take(&mut *self.stats.lock().expect("stats lock"))
    }

    fn timed<T>(
        &self,
        bytes: usize,
        f: impl FnOnce() -> Result<T, CollectiveError>,
    ) -> Result<T, CollectiveError> {
        timed(&self.stats, bytes, f)
    }

    /// Rank 0's parameters on every rank (forcing lazy initialisation), verified by checksum.
    /// Returns the module and the checksum all ranks agree on.
    pub fn sync_module<M: Module>(&self, module: M) -> Result<(M, u64), CollectiveError> {
        let mut mapper = Broadcaster { dp: self, error: None };
        let module = module.map(&mut mapper);
        if let Some(e) = mapper.error {
            return Err(e);
        }
        let sum = self.verify_replicated(&module)?;
        Ok((module, sum))
    }

    /// Check that every rank holds the same parameters; returns the common checksum or an
    /// error listing each rank's.
    pub fn verify_replicated<M: Module>(&self, module: &M) -> Result<u64, CollectiveError> {
        let mine = module_checksum(module);
        let all = self.timed(8 * self.coll.world_size(), || self.coll.all_gather_u64(vec![mine]))?;
        if all.iter().all(|&c| c == mine) {
            Ok(mine)
        } else {
            let list: Vec<String> =
                all.iter().enumerate().map(|(r, c)| format!("rank {r}: {c:016x}")).collect();
            Err(CollectiveError::Mismatch(format!(
                "parameter checksums differ after broadcast ({})",
                list.join(", ")
            )))
        }
    }

    /// Exchange loss-token counts: this rank's `local` and the group's total.
    pub fn token_weights(&self, local: u64) -> Result<TokenWeights, CollectiveError> {
        let all = self.timed(8, || self.coll.all_gather_u64(vec![local]))?;
        Ok(TokenWeights { local, global: all.iter().sum() })
    }

    /// Everything a training step needs after its local backward, in one call: exchange loss
    /// token counts, all-reduce the (local-mean) gradients with token weights, and the
    /// global loss for the logs. Clip the returned gradients afterwards.
    pub fn sync_step<M: Module>(
        &self,
        module: &M,
        grads: GradientsParams,
        local_loss_tokens: u64,
        local_mean_loss: f64,
    ) -> Result<SyncedStep, CollectiveError> {
        let weights = self.token_weights(local_loss_tokens)?;
        let grads = self.all_reduce_gradients(module, grads, GradScaling::LocalMean(weights))?;
        let loss = self.weighted_mean(local_mean_loss, weights)?;
        Ok(SyncedStep { grads, weights, loss, comm: self.take_comm_stats() })
    }

    /// Token-weighted mean of a per-rank scalar (e.g. the local-mean loss, for the logs).
    pub fn weighted_mean(&self, value: f64, weights: TokenWeights) -> Result<f64, CollectiveError> {
        let v = (value * weights.share()) as f32;
        Ok(self.timed(4, || self.coll.all_reduce(vec![v], ReduceOp::Sum))?[0] as f64)
    }

    /// All-reduce the gradients of every trainable parameter of `module` (see the module docs).
    pub fn all_reduce_gradients<M: Module>(
        &self,
        module: &M,
        grads: GradientsParams,
        scaling: GradScaling,
    ) -> Result<GradientsParams, CollectiveError> {
        self.all_reduce_gradients_where(module, grads, scaling, &|_| true)
    }

    /// [`DataParallel::all_reduce_gradients`] restricted to the parameters `select` accepts
    /// (the others are returned untouched): with expert parallelism, dense parameters are
    /// reduced over all ranks and expert parameters over their replicas only.
    pub fn all_reduce_gradients_where<M: Module>(
        &self,
        module: &M,
        mut grads: GradientsParams,
        scaling: GradScaling,
        select: &dyn Fn(&ParamId) -> bool,
    ) -> Result<GradientsParams, CollectiveError> {
        let scale = match scaling {
            GradScaling::LocalMean(w) => w.share() as f32,
            GradScaling::PreScaled => 1.0,
        };
        // 1. Flatten (absent gradients are zeros) and record presence per parameter.
        let mut flat = Flatten {
            grads: &mut grads,
            select,
            scale,
            values: Vec::new(),
            present: Vec::new(),
            error: None,
        };
        module.visit(&mut flat);
        let Flatten { values, present, error, .. } = flat;
        if let Some(e) = error {
            return Err(e);
        }
        // 2. Every rank must flatten the same layout; a different model would corrupt silently.
        let layout = vec![present.len() as u64, values.len() as u64];
        let all = self.timed(16, || self.coll.all_gather_u64(layout.clone()))?;
        for (r, l) in all.chunks(2).enumerate() {
            if l != layout.as_slice() {
                return Err(CollectiveError::Mismatch(format!(
                    "gradient layout: rank {r} has {} parameters / {} values, rank {} has {} / {}",
                    l[0],
                    l[1],
                    self.coll.rank(),
                    layout[0],
                    layout[1]
                )));
            }
        }
        let present = self.timed(4 * present.len(), || self.coll.all_reduce(present, ReduceOp::Sum))?;
        // 3. Bucketed all-reduce.
        let mut reduced = Vec::with_capacity(values.len());
        for chunk in values.chunks(self.bucket_elems) {
            let out = self.timed(4 * chunk.len(), || self.coll.all_reduce(chunk.to_vec(), ReduceOp::Sum))?;
            reduced.extend_from_slice(&out);
        }
        // 4. Back into tensors, in the same visit order.
        let mut unflat =
            Unflatten { grads: &mut grads, select, values: &reduced, present: &present, offset: 0, index: 0 };
        module.visit(&mut unflat);
        Ok(grads)
    }
}

/// SHA-256 (first 8 bytes) over every float parameter's shape and values, in visit order.
pub fn module_checksum<M: Module>(module: &M) -> u64 {
    struct Hasher(Sha256);
    impl ModuleVisitor for Hasher {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            let data = param.val().into_data().convert::<f32>();
            for d in data.shape().iter() {
                self.0.update((*d as u64).to_le_bytes());
            }
            self.0.update(data.as_bytes());
        }
    }
    let mut h = Hasher(Sha256::new());
    module.visit(&mut h);
    let digest = h.0.finalize();
    u64::from_le_bytes(digest[..8].try_into().expect("sha256 has 32 bytes"))
}

/// Replace every float parameter by rank 0's values and id (ids key the optimizer state, so
/// one checkpoint's optimizer files fit every rank's model).
struct Broadcaster<'a> {
    dp: &'a DataParallel,
    error: Option<CollectiveError>,
}

impl ModuleMapper for Broadcaster<'_> {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        if self.error.is_some() {
            return param;
        }
        // Rank 0's id: parameter ids are drawn at construction and differ between processes.
        let id = self.dp.timed(8, || self.dp.coll.broadcast_bytes(param.id.val().to_le_bytes().to_vec(), 0));
        let id = match id.map(|b| <[u8; 8]>::try_from(b.as_slice())) {
            Ok(Ok(b)) => ParamId::from(u64::from_le_bytes(b)),
            Ok(Err(_)) => {
                self.error = Some(CollectiveError::Mismatch("parameter id broadcast: not 8 bytes".into()));
                return param;
            }
            Err(e) => {
                self.error = Some(e);
                return param;
            }
        };
        // `map` goes through the value, so a lazy parameter is initialised here.
        let mut param = param.map(|t| {
            let n = t.shape().num_elements();
            let t0 = Instant::now();
            let out = broadcast_tensor(self.dp.coll.as_ref(), t, 0, &mut self.error);
            self.dp.stats.lock().expect("stats lock").add(t0.elapsed().as_secs_f64(), 4 * n);
            out
        });
        param.id = id;
        param
    }
}

/// `t` replaced by `root`'s values (same shape; dtype and require-grad kept). On an error `t`
/// comes back unchanged and the error is stored in `error` (for module mappers, which cannot
/// return one).
pub(crate) fn broadcast_tensor<const D: usize>(
    coll: &dyn Collective,
    t: Tensor<D>,
    root: usize,
    error: &mut Option<CollectiveError>,
) -> Tensor<D> {
    let data = t.to_data();
    let (dtype, shape) = (data.dtype(), data.shape().clone());
    let values = data.convert::<f32>().try_into_vec::<f32>().expect("converted to f32");
    match coll.broadcast(values, root) {
        Ok(v) => {
            let fresh = Tensor::<D>::from_data(TensorData::new(v, shape).convert_dtype(dtype), &t.device());
            if t.is_require_grad() { fresh.require_grad() } else { fresh }
        }
        Err(e) => {
            *error = Some(e);
            t
        }
    }
}

/// Gradients into one flat host buffer (visit order), scaled.
struct Flatten<'a> {
    grads: &'a mut GradientsParams,
    select: &'a dyn Fn(&ParamId) -> bool,
    scale: f32,
    values: Vec<f32>,
    /// 1 when this rank has the parameter's gradient, else 0 (summed over ranks).
    present: Vec<f32>,
    error: Option<CollectiveError>,
}

impl ModuleVisitor for Flatten<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        if !param.is_require_grad() || !(self.select)(&param.id) {
            return;
        }
        let n = param.lazy_shape().num_elements();
        match self.grads.get::<D>(param.id) {
            Some(g) => {
                let data = g.into_data().convert::<f32>();
                if data.num_elements() != n {
                    self.error = Some(CollectiveError::Size {
                        op: "all_reduce_gradients",
                        what: "gradient elements",
                        got: data.num_elements(),
                        expected: n,
                    });
                    return;
                }
                let s = self.scale;
                let slice = data.as_slice::<f32>().expect("converted to f32");
                self.values.extend(slice.iter().map(|v| v * s));
                self.present.push(1.0);
            }
            None => {
                self.values.extend(std::iter::repeat_n(0.0, n));
                self.present.push(0.0);
            }
        }
    }
}

/// Reduced values back into `GradientsParams` (same visit order as [`Flatten`]).
struct Unflatten<'a> {
    grads: &'a mut GradientsParams,
    select: &'a dyn Fn(&ParamId) -> bool,
    values: &'a [f32],
    present: &'a [f32],
    offset: usize,
    index: usize,
}

impl ModuleVisitor for Unflatten<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        if !param.is_require_grad() || !(self.select)(&param.id) {
            return;
        }
        let shape = param.lazy_shape();
        let n = shape.num_elements();
        let slice = &self.values[self.offset..self.offset + n];
        self.offset += n;
        let anywhere = self.present[self.index] > 0.0;
        self.index += 1;
        if !anywhere {
            return;
        }
        // Gradients live on the inner (non-autodiff) device.
        let device = match self.grads.get::<D>(param.id) {
            Some(g) => g.device(),
            None => param.lazy_device().inner(),
        };
        let g = Tensor::<D>::from_data(TensorData::new(slice.to_vec(), shape), &device);
        self.grads.register::<D>(param.id, g);
    }
}
