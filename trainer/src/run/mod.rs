//! The pre-training loop (`mm1-train --config FILE`): run folder, resolved config before
//! step 0, automatic resume from the newest complete checkpoint, logging, held-out
//! evaluation and checkpoints every N steps and at the end.

use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::tensor::Device;
use mm1_data::{Batch, Loader, LoaderState};
use mm1_models::Mm1Model;
use rand_chacha::rand_core::SeedableRng;

use crate::checkpoint::{CheckpointDir, CheckpointError, Counters, RngState, TrainState};
use crate::config::{ConfigError, DeviceKind, LoadedConfig, RunConfig};
use crate::heldout::{EvalError, evaluate, mean_loss};
use crate::logging::RunLogger;
use crate::optim::{AdamWSettings, GroupedAdamW, OptimError, list_params};
use crate::schedule::LrSchedule;
use crate::step::{NonFiniteGuard, StepError, StepReport, train_step};

/// Errors that stop a run; each names its cause.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("data: {0}")]
    Data(#[from] mm1_data::DataError),
    #[error("model: {0}")]
    Model(#[from] mm1_models::ModelError),
    #[error(transparent)]
    Optim(#[from] OptimError),
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    #[error(transparent)]
    Step(#[from] StepError),
    #[error("eval: {0}")]
    Eval(#[from] EvalError),
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{0}")]
    Stop(String),
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> RunError + '_ {
    move |source| RunError::Io { path: path.to_path_buf(), source }
}

/// Command-line choices that are not part of the config.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Run folder; default `runs/<config stem>-<hash8>`.
    pub run_dir: Option<PathBuf>,
    /// Require a checkpoint to resume from (without it a run resumes when it finds one).
    pub resume: bool,
    /// Stop (after writing a checkpoint) once this process has run this many steps, as a
    /// preempted job would; the next start resumes. Used by the resume tests.
    pub stop_after: Option<u64>,
}

/// What a finished run did.
#[derive(Debug, Clone)]
pub struct RunSummary {
    pub run_dir: PathBuf,
    /// Step the run started at (0, or the checkpoint's step on resume).
    pub start_step: u64,
    pub end_step: u64,
    /// `(step, loss)` of every step this process ran (1-based step numbers).
    pub losses: Vec<(u64, f64)>,
    /// Held-out loss per eval source at the end: `(name, loss)`.
    pub eval: Vec<(String, f64)>,
    pub skipped_steps: u64,
}

/// The device for `kind` with autodiff; a backend not compiled in is an error naming the feature.
pub fn train_device(kind: DeviceKind) -> Result<Device, RunError> {
    match kind {
        DeviceKind::Flex => Ok(Device::flex().autodiff()),
        #[cfg(feature = "cuda")]
        DeviceKind::Cuda => Ok(Device::cuda(0).autodiff()),
        #[cfg(feature = "wgpu")]
        DeviceKind::Wgpu => Ok(Device::wgpu(burn::tensor::DeviceKind::DefaultDevice).autodiff()),
        other => Err(RunError::Stop(format!(
            "train.device = \"{}\" needs mm1-trainer built with `--features {}`",
            other.name(),
            other.name()
        ))),
    }
}

/// Generate the synthetic shards named by `[data.synth]` when they are missing.
pub fn ensure_synth(cfg: &RunConfig, say: impl Fn(&str)) -> Result<(), RunError> {
    if let Some(synth) = &cfg.data.synth
        && !mm1_data::synth::is_complete(synth)
    {
        say(&format!("generating synthetic shards into {} ...", synth.out.display()));
        let t = Instant::now();
        mm1_data::synth::generate(synth)?;
        say(&format!("synthetic shards ready ({:.1} s)", t.elapsed().as_secs_f64()));
    }
    Ok(())
}

/// Everything the loop carries between steps.
struct Session {
    model: Mm1Model,
    optim: GroupedAdamW,
    loader: Loader,
    state: TrainState,
}

/// Train as configured. Resumes from the newest complete checkpoint in the run folder.
pub fn train(loaded: &LoadedConfig, opts: &RunOptions) -> Result<RunSummary, RunError> {
    let cfg = &loaded.config;
    let run_dir = match &opts.run_dir {
        Some(d) => d.clone(),
        None => PathBuf::from("runs").join(loaded.run_name()?),
    };
    std::fs::create_dir_all(&run_dir).map_err(io_err(&run_dir))?;
    let ckpts = CheckpointDir::new(run_dir.join("checkpoints"), cfg.checkpoint.keep_last);
    let latest = ckpts.latest()?;
    if opts.resume && latest.is_none() {
        return Err(RunError::Stop(format!(
            "--resume: no complete checkpoint in {}",
            ckpts.root().display()
        )));
    }
    let say = |m: &str| eprintln!("[mm1-train] {m}");
    ensure_synth(cfg, say)?;

    // 1. resolved config, before step 0
    let resolved = loaded.write_resolved(&run_dir)?;
    let config_text = cfg.to_resolved_toml()?;

    // 2. model, optimizer, data: fresh or from the checkpoint
    let device = train_device(cfg.train.device)?;
    let mut s = build_session(cfg, &device, &resolved.hash)?;
    if let Some(ckpt) = &latest {
        for p in ckpts.clean_partial()? {
            say(&format!("removed incomplete checkpoint {}", p.display()));
        }
        if ckpt.state.config_sha256 != resolved.hash {
            say(&format!(
                "warning: resuming {} whose config hash {} differs from this config's {}",
                ckpt.path.display(),
                &ckpt.state.config_sha256[..8.min(ckpt.state.config_sha256.len())],
                &resolved.hash[..8]
            ));
        }
        s.model = ckpt.load_model(s.model)?.freeze(&cfg.model.freeze);
        s.optim = ckpt.load_optim(GroupedAdamW::new(&s.model, &optim_settings(cfg, &s.model))?)?;
        let loader_state: LoaderState = serde_json::from_value(ckpt.state.loader.clone())
            .map_err(|e| RunError::Stop(format!("{}: loader state: {e}", ckpt.path.display())))?;
        s.loader = Loader::restore(&cfg.data, cfg.pipeline_shape(), 0, 1, loader_state)?;
        s.state = ckpt.state.clone();
        s.state.config_sha256 = resolved.hash.clone();
        say(&format!("resumed from {} (step {})", ckpt.path.display(), s.state.step));
    }
    let start_step = s.state.step;

    // 3. logging
    let total = cfg.train.steps;
    let mut logger = RunLogger::open(&run_dir, &cfg.log, start_step, total).map_err(io_err(&run_dir))?;
    logger.log_config(start_step, &config_text, &resolved.hash).map_err(io_err(&run_dir))?;
    let plan = s.optim.plan();
    logger.message(&format!(
        "run folder {}; {} parameters ({} trainable); steps {start_step}..{total}",
        run_dir.display(),
        plan.total_numel,
        plan.trainable_numel
    ));

    // 4. the loop
    let peak = cfg.optim.resolve(non_embedding_params(&s.model)).lr;
    let schedule = LrSchedule::new(&cfg.schedule, peak, total);
    let mut guard = NonFiniteGuard {
        max_in_a_row: cfg.train.max_nonfinite_in_a_row as u64,
        in_a_row: s.state.counters.nonfinite_in_a_row,
        total: s.state.counters.skipped_steps,
    };
    let mut losses = Vec::new();
    let mut last_eval = Vec::new();
    while s.state.step < total {
        let t0 = Instant::now();
        let batches = next_batches(&mut s.loader, cfg.optim.grad_accum.max(1))?;
        let data_wait = t0.elapsed().as_secs_f64();
        let lr = schedule.lr(s.state.scheduler_step);
        let (model, report) = train_step(s.model, &mut s.optim, &batches, lr, &device)?;
        s.model = model;
        let step_time = t0.elapsed().as_secs_f64();
        s.state.step += 1;
        let step = s.state.step;
        if report.applied {
            s.state.scheduler_step += 1;
        }
        let stop = guard.record(step, &report);
        s.state.counters.skipped_steps = guard.total;
        s.state.counters.nonfinite_in_a_row = guard.in_a_row;
        s.state.counters.tokens_seen += report.tokens as u64;
        s.state.counters.images_seen += report.images as u64;
        losses.push((step, report.loss));
        let last = step == total || opts.stop_after.is_some_and(|n| step - start_step >= n);
        let mut values = Vec::new();
        if logger.should_log(step) || last {
            values = step_metrics(&report, lr, data_wait, step_time, &s);
        }
        if let Err(msg) = stop {
            log_values(&mut logger, step, &values, &run_dir)?;
            logger.message(&msg);
            let _ = logger.finish();
            return Err(RunError::Stop(msg));
        }
        let eval_due = cfg.eval.every > 0 && (step % cfg.eval.every == 0 || step == total);
        if eval_due && !cfg.data.eval.sources.is_empty() {
            let res = evaluate(&s.model, &cfg.data, cfg.pipeline_shape(), cfg.eval.batches, &device)?;
            let mut ev: Vec<(String, f64)> =
                res.iter().map(|r| (format!("eval/loss/{}", r.name), r.loss)).collect();
            if let Some(m) = mean_loss(&res) {
                ev.push(("eval/loss".into(), m));
            }
            let text: Vec<String> = ev.iter().map(|(k, v)| format!("{k} {v:.4}")).collect();
            logger.message(&format!("eval at step {step}: {}", text.join(", ")));
            if values.is_empty() {
                // Eval lines carry the step's training loss too: every metrics.jsonl line has `loss`.
                values.push(("loss".into(), report.loss));
            }
            values.extend(ev);
            last_eval = res.into_iter().map(|r| (r.name, r.loss)).collect();
        }
        log_values(&mut logger, step, &values, &run_dir)?;
        if (cfg.checkpoint.every > 0 && step % cfg.checkpoint.every == 0) || last {
            s.state.loader = serde_json::to_value(s.loader.state())
                .map_err(|e| RunError::Stop(format!("serialising the loader state: {e}")))?;
            let path = ckpts.save(&s.model, &s.optim, &s.state, &config_text)?;
            logger.message(&format!("checkpoint {}", path.display()));
        }
        if step < total && last {
            logger.message(&format!(
                "stopping after {} steps (--stop-after); resume to continue",
                step - start_step
            ));
            break;
        }
    }
    logger.finish().map_err(io_err(&run_dir))?;
    Ok(RunSummary {
        run_dir,
        start_step,
        end_step: s.state.step,
        losses,
        eval: last_eval,
        skipped_steps: guard.total,
    })
}

fn log_values(
    logger: &mut RunLogger,
    step: u64,
    values: &[(String, f64)],
    run_dir: &Path,
) -> Result<(), RunError> {
    if values.is_empty() {
        return Ok(());
    }
    let refs: Vec<(&str, f64)> = values.iter().map(|(k, v)| (k.as_str(), *v)).collect();
    logger.log(step, &refs).map_err(io_err(run_dir))
}

fn optim_settings(cfg: &RunConfig, model: &Mm1Model) -> AdamWSettings {
    let resolved = cfg.optim.resolve(non_embedding_params(model));
    AdamWSettings::from_config(&cfg.optim, &resolved, &cfg.model.freeze)
}

/// N of the MM1 learning-rate rule: LLM parameters without the token embedding and head.
pub fn non_embedding_params(model: &Mm1Model) -> u64 {
    list_params(model)
        .iter()
        .filter(|p| p.component() == "llm" && !p.path.contains("embed") && !p.path.contains("head"))
        .map(|p| p.numel() as u64)
        .sum()
}

fn build_session(cfg: &RunConfig, device: &Device, hash: &str) -> Result<Session, RunError> {
    device.seed(cfg.train.seed);
    let model = cfg.model.init(device)?;
    let optim = GroupedAdamW::new(&model, &optim_settings(cfg, &model))?;
    let loader = Loader::new(&cfg.data, cfg.pipeline_shape(), 0, 1)?;
    let rng = rand_chacha::ChaCha8Rng::seed_from_u64(cfg.train.seed);
    let state = TrainState {
        step: 0,
        scheduler_step: 0,
        rng: RngState::capture(&rng),
        loader: serde_json::Value::Null,
        counters: Counters::default(),
        config_sha256: hash.to_string(),
    };
    Ok(Session { model, optim, loader, state })
}

fn next_batches(loader: &mut Loader, n: usize) -> Result<Vec<Batch>, RunError> {
    (0..n).map(|_| loader.next_batch().map_err(RunError::from)).collect()
}

fn step_metrics(r: &StepReport, lr: f64, data_wait: f64, step_time: f64, s: &Session) -> Vec<(String, f64)> {
    let mut v = vec![
        ("loss".to_string(), r.loss),
        ("aux_loss".into(), r.aux_loss),
        ("lr".into(), lr),
        ("grad_norm".into(), r.grad_norm),
        ("clipped".into(), r.clipped as u8 as f64),
        ("tokens_per_s".into(), r.tokens as f64 / step_time),
        ("images_per_s".into(), r.images as f64 / step_time),
        ("data_wait_s".into(), data_wait),
        ("step_time_s".into(), step_time),
        ("nonfinite_steps".into(), s.state.counters.skipped_steps as f64),
        ("tokens_seen".into(), s.state.counters.tokens_seen as f64),
    ];
    for src in &r.source_loss {
        if let Some(mean) = src.mean() {
            v.push((format!("loss/{}", src.name), mean));
        }
    }
    let stats = s.loader.stats();
    v.push(("skipped_samples".into(), stats.skipped.total() as f64));
    for (i, load) in r.expert_load.iter().enumerate() {
        let sum: usize = load.iter().sum();
        if sum == 0 {
            continue;
        }
        let mean = sum as f64 / load.len() as f64;
        let max = *load.iter().max().unwrap_or(&0) as f64;
        let min = *load.iter().min().unwrap_or(&0) as f64;
        v.push((format!("moe/layer{i}/max_over_mean"), max / mean));
        v.push((format!("moe/layer{i}/min_over_mean"), min / mean));
    }
    if !r.expert_load.is_empty() {
        v.push(("moe/dropped".into(), r.moe_dropped as f64));
    }
    v
}
