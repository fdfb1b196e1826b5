//! The pre-training loop (`mm1-train --config FILE`): run folder, resolved config before
//! step 0, automatic resume from the newest complete checkpoint, logging, held-out and
//! few-shot evaluation and checkpoints every N steps and at the end; data parallel over the
//! ranks the launcher started (`parallel.dp`), rank 0 writing the run folder.

mod evals;
mod metrics;
mod ranks;
mod session;
mod signals;
mod train_loop;

use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::tensor::Device;
use mm1_data::{Batch, StreamSet};
use mm1_models::Mm1Model;

use crate::checkpoint::{BackgroundWriter, CheckpointDir, CheckpointError, Written};
use crate::config::{ConfigError, DeviceKind, LoadedConfig, RunConfig, config_hash};
use crate::eval::heldout::HeldOutError;
use crate::optim::{OptimError, list_params};
use crate::step::{NonFiniteGuard, StepError, StepReport};
use metrics::LogSink;
use ranks::Ranks;
use session::Session;
use train_loop::TrainLoop;

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
    Eval(#[from] HeldOutError),
    #[error("few-shot eval: {0}")]
    Fewshot(#[from] crate::eval::EvalError),
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{0}")]
    Stop(String),
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> RunError + '_ {
    move |source| RunError::Io { path: path.to_path_buf(), source }
}

pub use signals::{EXIT_PREEMPTED, signal_name};

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
    /// This process's data-parallel rank (0 writes the run folder).
    pub rank: usize,
    /// Step the run started at (0, or the checkpoint's step on resume).
    pub start_step: u64,
    pub end_step: u64,
    /// `(step, loss)` of every step this process ran (1-based step numbers).
    pub losses: Vec<(u64, f64)>,
    /// Held-out loss per eval source at the last evaluation: `(name, loss)`.
    pub eval: Vec<(String, f64)>,
    /// Few-shot scores of the last few-shot evaluation (`fewshot/<task>/<k>shot/<metric>`).
    pub fewshot: Vec<(String, f64)>,
    pub skipped_steps: u64,
    /// The signal (`SIGTERM`, `SIGUSR1`, `SIGINT`) that stopped the run after a checkpoint, if
    /// one did: `mm1-train` then exits with [`EXIT_PREEMPTED`] and `--resume` continues.
    pub preempted: Option<String>,
}

/// The device for `kind` with autodiff; a backend not compiled in is an error naming the feature.
pub fn train_device(kind: DeviceKind) -> Result<Device, RunError> {
    match kind {
        DeviceKind::Flex => Ok(Device::flex().autodiff()),
        #[cfg(feature = "cuda")]
        DeviceKind::Cuda => Ok(Device::cuda(0).autodiff()),
        #[cfg(feature = "wgpu")]
        DeviceKind::Wgpu => Ok(Device::wgpu(burn::tensor::DeviceKind::DefaultDevice).autodiff()),
        // reachable in every build without both GPU features
        #[allow(unreachable_patterns)]
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

/// Train as configured. Resumes from the newest complete checkpoint in the run folder.
pub fn train(loaded: &LoadedConfig, opts: &RunOptions) -> Result<RunSummary, RunError> {
    let cfg = &loaded.config;
    let ranks = Ranks::init(cfg)?;
    let main = ranks.is_main();
    let run_dir = match &opts.run_dir {
        Some(d) => d.clone(),
        None => PathBuf::from("runs").join(loaded.run_name()?),
    };
    let say = |m: &str| {
        if main {
            eprintln!("[mm1-train] {m}");
        }
    };
    // 1. run folder, synthetic shards and resolved config, before step 0 (rank 0; the others wait)
    let adopted = crate::init::adopt_llm_tokenizer(loaded, &run_dir, ranks.rank(), &say)?;
    let loaded = adopted.as_ref().unwrap_or(loaded);
    let cfg = &loaded.config;
    let config_text = cfg.to_resolved_toml()?;
    let hash = config_hash(&config_text);
    if main {
        std::fs::create_dir_all(&run_dir).map_err(io_err(&run_dir))?;
        ensure_synth(cfg, say)?;
        loaded.write_resolved(&run_dir)?;
    }
    ranks.barrier()?;
    evals::check_fewshot(cfg)?;
    let ckpts = CheckpointDir::new(run_dir.join("checkpoints"), cfg.checkpoint.keep_last);
    let latest = ckpts.latest_verified(&mut |m| say(&format!("warning: {m}")))?;
    if opts.resume && latest.is_none() {
        return Err(RunError::Stop(format!(
            "--resume: no complete checkpoint in {}",
            ckpts.root().display()
        )));
    }

    // 2. model, optimizer, data: fresh or from the checkpoint
    let device = train_device(cfg.train.device)?;
    let s = Session::open(cfg, &device, &hash, (&ckpts, latest.as_ref()), &ranks, &say)?;
    let start_step = s.state.step;

    // 3. logging (rank 0)
    let total = cfg.train.steps;
    let mut log = LogSink::open(main, &run_dir, &cfg.log, start_step, total)?;
    log.config(start_step, &config_text, &hash)?;
    log_layout(&log, &s, &ranks, &run_dir, (start_step, total));

    // 4. the loop
    let gather = |v: serde_json::Value| ranks.gather_json(&v).map_err(|e| e.to_string());
    let peak_lr = cfg.optim.resolve(s.sizes.non_embedding).lr;
    let run = TrainLoop {
        cfg,
        opts,
        ranks: &ranks,
        device: &device,
        run_dir: &run_dir,
        ckpts: &ckpts,
        config_text: &config_text,
        split: ranks.eval_split(&gather),
        log,
        start_step,
    };
    run.run(s, peak_lr)
}

/// The run's layout in the log: folder, parameters, steps, ranks, and how expert parallelism and
/// ZeRO split the model and the optimizer state.
fn log_layout(log: &LogSink, s: &Session, ranks: &Ranks, run_dir: &Path, (start_step, total): (u64, u64)) {
    let plan = s.optim.plan();
    log.message(&format!(
        "run folder {}; {} parameters ({} trainable on this rank); steps {start_step}..{total}; {} rank(s)",
        run_dir.display(),
        s.sizes.total,
        plan.trainable_numel,
        ranks.world()
    ));
    if ranks.ep_size() > 1 {
        log.message(&format!(
            "expert parallel: {} ranks per EP group, this rank holds {} of the {} parameter values",
            ranks.ep_size(),
            plan.total_numel,
            s.sizes.total
        ));
    }
    if let Some(part) = ranks.zero_partition(&s.model) {
        log.message(&format!(
            "ZeRO stage {}: the ranks own the AdamW state of {:?} of the {} trainable parameter values",
            ranks.zero_stage(),
            part.loads(),
            part.loads().iter().sum::<usize>()
        ));
    }
}

/// The run state's counters after one step (`guard` has recorded it).
fn count_step(s: &mut Session, guard: &NonFiniteGuard, report: &StepReport) {
    let c = &mut s.state.counters;
    c.skipped_steps = guard.total;
    c.nonfinite_in_a_row = guard.in_a_row;
    c.tokens_seen += report.tokens as u64;
    c.images_seen += report.images as u64;
}

/// Save this step's checkpoint: experts gathered to their saving ranks first and sharded back
/// after; with `background` the files are handed to the writer thread.
fn checkpoint(
    mut s: Session,
    (ckpts, config_text): (&CheckpointDir, &str),
    ranks: &Ranks,
    (writer, background): (&mut BackgroundWriter, bool),
    log: &LogSink,
) -> Result<Session, RunError> {
    let step = s.state.step;
    s.model = ranks.gather_experts(s.model)?;
    let t = Instant::now();
    let done = s.save(ckpts, config_text, ranks, (writer, background))?;
    let held_ms = t.elapsed().as_secs_f64() * 1e3;
    s.model = ranks.shard_experts(s.model)?;
    if let Some(w) = done {
        log.message(&written_message(&w));
    }
    let how = if background { "handed to the writer" } else { "written" };
    log.message(&format!("checkpoint of step {step} {how} (the step loop waited {held_ms:.1} ms)"));
    Ok(s)
}

fn written_message(w: &Written) -> String {
    format!("checkpoint {} written ({:.1} ms)", w.path.display(), w.write_time.as_secs_f64() * 1e3)
}

/// N of the MM1 learning-rate rule: LLM parameters without the token embedding and head
/// ([`ParamClass::counts_in_lr_rule`](crate::param_kind::ParamClass::counts_in_lr_rule)).
pub fn non_embedding_params(model: &Mm1Model) -> u64 {
    list_params(model).iter().filter(|p| p.class().counts_in_lr_rule()).map(|p| p.numel() as u64).sum()
}

fn next_batches(loader: &mut StreamSet, n: usize) -> Result<Vec<Batch>, RunError> {
    (0..n).map(|_| loader.next_batch().map_err(RunError::from)).collect()
}
