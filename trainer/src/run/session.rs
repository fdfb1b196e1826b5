//! What the loop carries between steps (model, optimizer, data loader, counters), built fresh or
//! from a checkpoint, and written to one.
//!
//! The checkpoint holds the state of every data stream (`state.json`: `loader` is the state itself
//! with one stream, `{"streams": [...]}` with several; `{"ranks": [...]}` in checkpoints written
//! before streams, one per rank), so a resumed run continues each stream exactly, on any number
//! of ranks that divides the streams (`data.streams`, see `mm1_data::streams`). Model and optimizer are the same on every rank and written by rank 0,
//! except with expert parallelism: the experts are gathered from their owners first, and the
//! optimizer state of each EP rank (its own experts' moments) is saved as its own file; a resume
//! under another `parallel.ep` re-cuts those files for the new owners of the experts.

use burn::tensor::Device;
use mm1_data::{LoaderState, StreamSet};
use mm1_models::Mm1Model;
use rand_chacha::rand_core::SeedableRng;

use super::ranks::Ranks;
use super::{RunError, non_embedding_params};
use crate::checkpoint::{
    BackgroundWriter, Checkpoint, CheckpointDir, Counters, EpChange, OptimLayout, RngState, TrainState,
    Written, ZeroIndex,
};
use crate::config::RunConfig;
use crate::optim::{AdamWSettings, GroupedAdamW};
use crate::parallel::{expert_index, held_params};

/// Everything the loop carries between steps.
pub struct Session {
    /// This rank's model (with expert parallelism: only its own experts).
    pub model: Mm1Model,
    pub optim: GroupedAdamW,
    /// This rank's data streams.
    pub loader: StreamSet,
    pub state: TrainState,
    /// Sizes of the whole model (counted before the experts are sharded).
    pub sizes: ModelSizes,
}

/// Parameter counts of the whole model, whatever this rank holds.
#[derive(Debug, Clone, Copy)]
pub struct ModelSizes {
    /// Every float parameter value.
    pub total: usize,
    /// `N` of the MM1 learning-rate rule ([`non_embedding_params`]).
    pub non_embedding: u64,
}

impl ModelSizes {
    fn of(model: &Mm1Model) -> Self {
        Self { total: held_params(model), non_embedding: non_embedding_params(model) }
    }
}

/// AdamW settings for a model of `sizes` (the MM1 rule's learning rate depends on its size).
pub fn optim_settings(cfg: &RunConfig, sizes: &ModelSizes) -> AdamWSettings {
    let resolved = cfg.optim.resolve(sizes.non_embedding);
    AdamWSettings::from_config(&cfg.optim, &resolved, &cfg.model.freeze)
}

impl Session {
    /// Step 0: seeded initialisation, rank 0's weights on every rank, this rank's data stream.
    pub fn fresh(cfg: &RunConfig, device: &Device, hash: &str, ranks: &Ranks) -> Result<Self, RunError> {
        device.seed(cfg.train.seed);
        let model =
            crate::precision::apply(cfg.model.init(device)?, cfg.train.precision, cfg.train.device, device)?;
        // [model.init]: every rank reads the same files, then rank 0's weights are replicated.
        let say = |m: &str| {
            if ranks.is_main() {
                eprintln!("[mm1-train] {m}")
            }
        };
        let model = crate::init::apply(model, &cfg.model, &say)?;
        let sizes = ModelSizes::of(&model);
        let model = ranks.replicate(model)?;
        let optim = GroupedAdamW::new(&model, &optim_settings(cfg, &sizes))?;
        let place = (ranks.rank(), ranks.world(), cfg.data_streams());
        let loader = StreamSet::new(&cfg.data, cfg.pipeline_shape(), place, None)?;
        let rng = rand_chacha::ChaCha8Rng::seed_from_u64(cfg.train.seed);
        let state = TrainState {
            step: 0,
            scheduler_step: 0,
            rng: RngState::capture(&rng),
            loader: serde_json::Value::Null,
            counters: Counters::default(),
            config_sha256: hash.to_string(),
        };
        Ok(Self { model, optim, loader, state, sizes })
    }

    /// Fresh, or resumed from the newest complete checkpoint `latest` (after removing incomplete
    /// ones on rank 0); `say` tells the user which.
    pub fn open(
        cfg: &RunConfig,
        device: &Device,
        hash: &str,
        (ckpts, latest): (&CheckpointDir, Option<&Checkpoint>),
        ranks: &Ranks,
        say: &dyn Fn(&str),
    ) -> Result<Self, RunError> {
        let Some(ckpt) = latest else { return Self::fresh(cfg, device, hash, ranks) };
        if ranks.is_main() {
            for p in ckpts.clean_partial()? {
                say(&format!("removed incomplete checkpoint {}", p.display()));
            }
        }
        let saved = &ckpt.state.config_sha256;
        if saved != hash {
            say(&format!(
                "warning: resuming {} whose config hash {} differs from this config's {}",
                ckpt.path.display(),
                &saved[..8.min(saved.len())],
                &hash[..8]
            ));
        }
        let s = Self::resume(cfg, device, hash, ckpt, ranks)?;
        say(&format!("resumed from {} (step {})", ckpt.path.display(), s.state.step));
        Ok(s)
    }

    /// Continue from `ckpt`: weights, AdamW moments, counters and this rank's loader state.
    pub fn resume(
        cfg: &RunConfig,
        device: &Device,
        hash: &str,
        ckpt: &Checkpoint,
        ranks: &Ranks,
    ) -> Result<Self, RunError> {
        device.seed(cfg.train.seed);
        // Every rank loads the same file (weights and parameter ids), so nothing is broadcast.
        let model =
            crate::precision::apply(cfg.model.init(device)?, cfg.train.precision, cfg.train.device, device)?;
        let model = ckpt.load_model(model)?.freeze(&cfg.model.freeze);
        let sizes = ModelSizes::of(&model);
        let model = ranks.adopt(model)?;
        let optim = GroupedAdamW::new(&model, &optim_settings(cfg, &sizes))?;
        let optim = load_optim(ckpt, optim, (&model, cfg), ranks)?;
        let place = (ranks.rank(), ranks.world(), cfg.data_streams());
        let states = stream_states(&ckpt.state.loader, place)
            .map_err(|e| RunError::Stop(format!("{}: {e}", ckpt.path.display())))?;
        let loader = StreamSet::new(&cfg.data, cfg.pipeline_shape(), place, Some(states))?;
        let mut state = ckpt.state.clone();
        state.config_sha256 = hash.to_string();
        Ok(Self { model, optim, loader, state, sizes })
    }

    /// Write a checkpoint (a collective: every rank calls it; rank 0 writes, EP ranks of the first
    /// group stage their optimizer state). Call [`Ranks::gather_experts`] on the model first.
    /// Rank 0 hands the snapshot to `writer`; with `background` it returns at once with the
    /// previous write, if one just finished, else after this write.
    pub fn save(
        &mut self,
        ckpts: &CheckpointDir,
        config_text: &str,
        ranks: &Ranks,
        (writer, background): (&mut BackgroundWriter, bool),
    ) -> Result<Option<Written>, RunError> {
        let ep = ranks.ep_size();
        if ep > 1 {
            if ranks.rank() > 0 && ranks.rank() < ep {
                ckpts.save_optim_shard(self.state.step, ranks.ep_rank(), &self.optim)?;
            }
            ranks.barrier()?; // the shards are on disk before rank 0 publishes
        }
        let zero = ranks.zero_partition(&self.model);
        if zero.is_some() {
            if ranks.rank() > 0 {
                ckpts.save_optim_slice(self.state.step, ranks.rank(), &self.optim)?;
            }
            ranks.barrier()?; // every slice is on disk before rank 0 publishes
        }
        let mine = serde_json::to_value(self.loader.states())
            .map_err(|e| RunError::Stop(format!("serialising the loader state: {e}")))?;
        let all = ranks.gather_json(&mine)?;
        if !ranks.is_main() {
            return Ok(None);
        }
        // every rank's streams, in rank order: all the streams in stream order
        let mut streams: Vec<serde_json::Value> =
            all.into_iter().flat_map(|v| v.as_array().cloned().unwrap_or_default()).collect();
        self.state.loader = match streams.len() {
            1 => streams.pop().expect("one stream"),
            _ => serde_json::json!({ "streams": streams }),
        };
        let optim_bytes = (self.optim.to_bytes())
            .map_err(|e| RunError::Stop(format!("serialising the optimizer state: {e}")))?;
        let layout = match zero {
            Some(part) => OptimLayout::Zero(ZeroIndex::of(ranks.zero_stage(), &part, &self.model)),
            None => OptimLayout::Experts(ep),
        };
        let job = (self.state.clone(), config_text.to_string(), layout);
        let previous = writer.submit(ckpts.clone(), self.model.clone(), optim_bytes, job)?;
        if background { Ok(previous) } else { Ok(writer.wait()?) }
    }
}

/// This rank's optimizer state from `ckpt`: its own EP rank's file when the checkpoint was written
/// with this run's `parallel.ep`, else re-cut from the checkpoint's files so that this rank gets
/// exactly the AdamW state of the experts it now owns (any `ep` dividing the number of experts).
fn load_optim(
    ckpt: &Checkpoint,
    optim: GroupedAdamW,
    (model, cfg): (&Mm1Model, &RunConfig),
    ranks: &Ranks,
) -> Result<GroupedAdamW, RunError> {
    if let Some(part) = ranks.zero_partition(model) {
        let saved = ckpt.ep_shards();
        if saved > 1 {
            return Err(RunError::Stop(format!(
                "{}: written with parallel.ep = {saved}, its experts' optimizer state split by expert; this \
                 run has parallel.ep = 1 with parallel.zero = {}, which cannot re-cut it: resume with \
                 parallel.ep = {saved} and parallel.zero = 0 (or parallel.ep = 1, parallel.zero = 0) first",
                ckpt.path.display(),
                ranks.zero_stage()
            )));
        }
        // ZeRO: the state of this rank's own parameters, from whichever file holds it
        let me = ranks.rank();
        return Ok(ckpt.load_optim_where(optim, &|id| part.owner(&id) == Some(me))?);
    }
    let (saved, ep) = (ckpt.ep_shards(), ranks.ep_size());
    if ckpt.zero_index()?.is_some() {
        // ZeRO slices into a run without ZeRO: every dense parameter's state and this rank's experts'
        let experts = expert_index(model);
        let per = (cfg.model.llm.moe.as_ref().map_or(0, |m| m.num_experts) / ep).max(1);
        let mine = ranks.ep_rank();
        return Ok(ckpt.load_optim_where(optim, &|id| experts.get(&id).is_none_or(|e| e / per == mine))?);
    }
    if saved == ep {
        return Ok(ckpt.load_optim_shard(optim, ranks.ep_rank())?);
    }
    let num_experts = cfg.model.llm.moe.as_ref().map_or(0, |m| m.num_experts);
    let change = EpChange { saved, ep, rank: ranks.ep_rank(), num_experts };
    Ok(ckpt.load_optim_resharded(optim, &expert_index(model), change)?)
}

/// This rank's stream states from a checkpoint's `loader` value (see the module docs), for rank
/// `rank` of `world` over `streams` streams.
fn stream_states(
    value: &serde_json::Value,
    (rank, world, streams): (usize, usize, usize),
) -> Result<Vec<LoaderState>, String> {
    let saved: Vec<&serde_json::Value> =
        match value.get("streams").or_else(|| value.get("ranks")).and_then(|r| r.as_array()) {
            Some(all) => all.iter().collect(),
            None => vec![value],
        };
    if saved.len() != streams {
        let n = saved.len();
        let ranks: Vec<String> = (1..=n).filter(|d| n.is_multiple_of(*d)).map(|d| d.to_string()).collect();
        return Err(format!(
            "the checkpoint holds {n} data stream(s), this run has {streams} (data.streams, 0 = parallel.dp = \
             {world}); resume with data.streams = {n} and parallel.dp one of {}",
            ranks.join(", ")
        ));
    }
    let mine = mm1_data::streams::owned_streams(rank, world, streams).map_err(|e| e.to_string())?;
    saved[mine]
        .iter()
        .map(|v| {
            serde_json::from_value::<LoaderState>((*v).clone()).map_err(|e| format!("loader state: {e}"))
        })
        .collect()
}
