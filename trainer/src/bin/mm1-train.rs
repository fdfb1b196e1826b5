//! `mm1-train`: pre-train an MM1-style model from one TOML run file.
//!
//! ```text
//! mm1-train --config FILE [--with OVERLAY]... [--set key=value]... [--run-dir DIR] [--resume]
//!           [--stop-after N]
//! mm1-train bench --config configs/bench-cpu.toml [--steps N] [--json]
//! mm1-train plan --config FILE [--with OVERLAY]... [--set k=v]... [--peak-tflops X] [--mfu Y]
//!                [--device-memory 80GB] [--measure-steps N] [--json]
//! mm1-train generate --checkpoint DIR --prompt TEXT [--image FILE]... [--max-new-tokens N]
//!                    [--temperature T] [--top-k K] [--seed S]
//! mm1-train export --checkpoint DIR --out FILE.safetensors
//! mm1-train init-config [--vision DIR] [--llm DIR] [--image-size N] [--tokenizer-out FILE]
//! ```
//!
//! Exit status of a training run: 0 when done, 1 on an error, 85 when SIGTERM, SIGUSR1 or SIGINT
//! stopped it after the current step with a checkpoint written (start it again, or requeue the
//! job, to continue), 75 when a collective timed out (docs/distributed.md), 130 when a second
//! SIGINT ended it at once.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand, ValueEnum};
use mm1_trainer::config::{ConfigSources, LoadedConfig};
use mm1_trainer::run::{EXIT_PREEMPTED, RunOptions, train};

#[derive(Parser, Debug)]
#[command(name = "mm1-train", version, about = "Pre-train an MM1-style multimodal LLM")]
#[command(args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    train: TrainArgs,
}

#[derive(Args, Debug, Clone)]
struct ConfigArgs {
    /// The run file (TOML).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Overlay file applied after the config (e.g. configs/scale/cpu-tiny.toml); repeatable.
    #[arg(long = "with", value_name = "OVERLAY")]
    with: Vec<PathBuf>,
    /// Override one key, value parsed as TOML (`--set optim.lr=3e-4`); repeatable.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    set: Vec<String>,
}

#[derive(Args, Debug)]
struct TrainArgs {
    #[command(flatten)]
    cfg: ConfigArgs,
    /// Run folder (default: runs/<config stem>-<config hash>).
    #[arg(long, value_name = "DIR")]
    run_dir: Option<PathBuf>,
    /// Fail unless the run folder holds a checkpoint to continue from (a run resumes
    /// automatically whenever it finds one).
    #[arg(long)]
    resume: bool,
    /// Stop after running this many steps (a checkpoint is written first), as a preempted job.
    #[arg(long, value_name = "N")]
    stop_after: Option<u64>,
}

/// What `mm1-train export` writes.
#[derive(Debug, Clone, Copy, ValueEnum)]
enum ExportFormat {
    /// One safetensors file, HF names for both towers, `connector.*` for the connector.
    Mm1,
    /// `vision/` and `llm/` folders with `config.json`, for transformers' `from_pretrained`.
    Hf,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Time the full training step on an in-memory batch.
    Bench {
        #[command(flatten)]
        cfg: ConfigArgs,
        /// Timed steps (after 2 warm-up steps).
        #[arg(long, default_value_t = 10)]
        steps: usize,
        /// Print one JSON line.
        #[arg(long)]
        json: bool,
    },
    /// Parameters, memory and FLOPs per rank of a config, before launch (no tensor is
    /// allocated; precision, activation checkpointing and ZeRO from `train.precision`,
    /// `train.activation_checkpointing` and `parallel.zero`).
    Plan(PlanArgs),
    /// Decode from a checkpoint given images and a prompt.
    Generate {
        /// A checkpoint folder (`RUN/checkpoints/step-N`) or a run folder (newest checkpoint).
        #[arg(long, value_name = "DIR")]
        checkpoint: PathBuf,
        #[arg(long, default_value = "")]
        prompt: String,
        /// Image file(s), placed before the prompt in order.
        #[arg(long = "image", value_name = "FILE")]
        images: Vec<PathBuf>,
        #[arg(long, default_value_t = 32)]
        max_new_tokens: usize,
        /// 0 = greedy.
        #[arg(long, default_value_t = 0.0)]
        temperature: f64,
        #[arg(long, default_value_t = 0)]
        top_k: usize,
        #[arg(long, default_value_t = 0)]
        seed: u64,
    },
    /// Export the weights of a checkpoint: one safetensors file with HF-style names (`mm1`,
    /// what `[model.init] checkpoint` loads), or folders transformers' `from_pretrained` loads
    /// (`hf`: OUT/vision = CLIPVisionModel, OUT/llm = LlamaForCausalLM, OUT/connector.safetensors).
    Export {
        #[arg(long, value_name = "DIR")]
        checkpoint: PathBuf,
        #[arg(long, value_name = "FILE|DIR")]
        out: PathBuf,
        #[arg(long, value_enum, default_value = "mm1")]
        format: ExportFormat,
    },
    /// Print `[model.vision]`, `[model.llm]` and `[model.init]` for HF checkpoints, from their
    /// config.json (paste into a run file, or pass as `--with FILE`).
    InitConfig {
        /// HF CLIPVisionModel / CLIPModel folder.
        #[arg(long, value_name = "DIR")]
        vision: Option<PathBuf>,
        /// HF LlamaForCausalLM folder.
        #[arg(long, value_name = "DIR")]
        llm: Option<PathBuf>,
        /// Run the encoder at this image size (the position table is interpolated from the
        /// checkpoint's, which becomes `pretrained_image_size`).
        #[arg(long, value_name = "PIXELS")]
        image_size: Option<usize>,
        /// Write the LLM's tokenizer.json with the missing image / end-of-chunk / pad tokens
        /// added here, as the run's `data.tokenizer` (vocab_size grows to match).
        #[arg(long, value_name = "FILE")]
        tokenizer_out: Option<PathBuf>,
    },
}

#[derive(Args, Debug)]
struct PlanArgs {
    #[command(flatten)]
    cfg: ConfigArgs,
    /// Peak dense TFLOP/s of one device (H100 SXM bf16: 989).
    #[arg(long, default_value_t = 0.0)]
    peak_tflops: f64,
    /// Model FLOPs utilisation assumed for the step time.
    #[arg(long, default_value_t = 0.4)]
    mfu: f64,
    /// Device memory to check the plan against (`80GB`, `80GiB`).
    #[arg(long, value_name = "SIZE")]
    device_memory: Option<String>,
    /// Images per sequence (default: data.max_images_per_seq).
    #[arg(long, value_name = "N")]
    images_per_seq: Option<usize>,
    /// Also run N training steps on an in-memory batch (one image per sequence, as `bench`)
    /// and print the measured peak RSS growth beside the prediction (CPU, Linux).
    #[arg(long, value_name = "N")]
    measure_steps: Option<usize>,
    /// Print the plan as one JSON line.
    #[arg(long)]
    json: bool,
}

fn load(args: &ConfigArgs) -> Result<LoadedConfig, String> {
    let file = args.config.clone().ok_or("missing --config FILE")?;
    let mut src = ConfigSources::new(file);
    for w in &args.with {
        src = src.overlay(w.clone());
    }
    for s in &args.set {
        src = src.set(s.clone());
    }
    src.load().map_err(|e| e.to_string())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Large freed blocks stay in the process for the next step (src/malloc.rs).
    mm1_trainer::malloc::keep_freed_memory();
    // The whole command runs on a thread of rayon's global pool, the pool the tensor kernels
    // split their work over: a parallel op then shares the work between this thread and the
    // other workers instead of the main thread waiting beside a full pool. With 2 cores that
    // is 2 threads instead of 3, and the serial parts no longer compete with spinning workers
    // (docs/performance.md, "Our own GEMM calls, causal blocks and one thread pool").
    let result = rayon::scope(|_| run(cli));
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("mm1-train: error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<ExitCode, String> {
    let done = |r: Result<(), String>| r.map(|()| ExitCode::SUCCESS);
    match cli.command {
        None => run_train(&cli.train),
        Some(command) => done(run_command(command)),
    }
}

fn run_command(command: Command) -> Result<(), String> {
    match command {
        Command::Bench { cfg, steps, json } => run_bench(&cfg, steps, json),
        Command::Plan(args) => run_plan(&args),
        Command::Generate { checkpoint, prompt, images, max_new_tokens, temperature, top_k, seed } => {
            let opts = mm1_trainer::generate::GenerateOptions {
                max_new_tokens,
                temperature,
                top_k,
                seed,
                ..Default::default()
            };
            mm1_trainer::generate::generate_from_checkpoint(&checkpoint, &prompt, &images, &opts)
                .map(|text| println!("{text}"))
                .map_err(|e| e.to_string())
        }
        Command::Export { checkpoint, out, format: ExportFormat::Mm1 } => {
            mm1_trainer::generate::export_checkpoint(&checkpoint, &out)
                .map(|n| eprintln!("[mm1-train] wrote {n} tensors to {}", out.display()))
                .map_err(|e| e.to_string())
        }
        Command::Export { checkpoint, out, format: ExportFormat::Hf } => {
            let e = mm1_trainer::export_hf::export_hf(&checkpoint, &out).map_err(|e| e.to_string())?;
            let o = out.display();
            eprintln!("[mm1-train] wrote {o}/vision (CLIPVisionModel, {} tensors)", e.vision_tensors);
            eprintln!("[mm1-train] wrote {o}/llm (LlamaForCausalLM, {} tensors)", e.llm_tensors);
            eprintln!("[mm1-train] wrote {o}/connector.safetensors ({} tensors)", e.connector_tensors);
            match e.tokenizer {
                Some(t) => eprintln!("[mm1-train] copied {} to {o}/llm/tokenizer.json", t.display()),
                None => {
                    eprintln!("[mm1-train] the run's data.tokenizer was not found from here: llm/ has none")
                }
            }
            Ok(())
        }
        Command::InitConfig { vision, llm, image_size, tokenizer_out } => {
            if vision.is_none() && llm.is_none() {
                return Err("init-config: give --vision DIR and/or --llm DIR".into());
            }
            let say = |m: &str| eprintln!("[mm1-train] {m}");
            let toml = mm1_trainer::init::init_config_toml(
                vision.as_deref(),
                llm.as_deref(),
                image_size,
                tokenizer_out.as_deref(),
                &say,
            )?;
            print!("{toml}");
            Ok(())
        }
    }
}

/// Trains; exits with [`EXIT_PREEMPTED`] when a signal stopped the run after its checkpoint.
fn run_train(args: &TrainArgs) -> Result<ExitCode, String> {
    let loaded = load(&args.cfg)?;
    let opts = RunOptions { run_dir: args.run_dir.clone(), resume: args.resume, stop_after: args.stop_after };
    let s = train(&loaded, &opts).map_err(|e| e.to_string())?;
    let code = if s.preempted.is_some() { ExitCode::from(EXIT_PREEMPTED) } else { ExitCode::SUCCESS };
    if s.rank != 0 {
        return Ok(code);
    }
    let first = s.losses.first().map(|l| l.1).unwrap_or(f64::NAN);
    let last = s.losses.last().map(|l| l.1).unwrap_or(f64::NAN);
    eprintln!(
        "[mm1-train] done: steps {}..{}, loss {first:.4} -> {last:.4}, skipped {}, run folder {}",
        s.start_step,
        s.end_step,
        s.skipped_steps,
        s.run_dir.display()
    );
    for (name, loss) in &s.eval {
        eprintln!("[mm1-train] held-out loss {name}: {loss:.4}");
    }
    print_zero_shot(&s.fewshot);
    if let Some(signal) = &s.preempted {
        eprintln!("[mm1-train] stopped by {signal}: exit status {EXIT_PREEMPTED} (resume to continue)");
    }
    Ok(code)
}

/// The 0-shot scores of the last evaluation, each beside its blank-image and majority-answer
/// baselines (`task/0shot/metric`, `..._blank`, `task/majority/metric`).
fn print_zero_shot(scores: &[(String, f64)]) {
    let find = |key: &str| scores.iter().find(|(k, _)| k == key).map(|(_, v)| *v);
    for (name, score) in scores.iter().filter(|(k, _)| k.contains("/0shot/") && !k.ends_with("_blank")) {
        let Some((task, metric)) = name.split_once("/0shot/") else { continue };
        // forced choice and exact match both count a query right when its answer is the reference
        let majority_metric = if metric == "choice_accuracy" { "exact_match" } else { metric };
        let baseline =
            |label: &str, v: Option<f64>| v.map(|v| format!(", {label} {v:.4}")).unwrap_or_default();
        eprintln!(
            "[mm1-train] {name}: {score:.4}{}{}",
            baseline("blank image", find(&format!("{name}_blank"))),
            baseline("majority answer", find(&format!("{task}/majority/{majority_metric}")))
        );
    }
}

fn run_bench(args: &ConfigArgs, steps: usize, json: bool) -> Result<(), String> {
    let loaded = load(args)?;
    let r = mm1_trainer::bench::bench(&loaded.config, steps).map_err(|e| e.to_string())?;
    if json {
        println!("{}", serde_json::to_string(&r).map_err(|e| e.to_string())?);
    } else {
        println!(
            "{:.1} ms/step (median of {}), {:.0} tokens/s, {} parameters",
            r.ms_per_step, r.steps, r.tokens_per_s, r.params
        );
    }
    Ok(())
}

fn run_plan(args: &PlanArgs) -> Result<(), String> {
    use mm1_trainer::plan;
    let loaded = load(&args.cfg)?;
    let opts = plan::PlanOptions {
        peak_tflops: args.peak_tflops,
        mfu: args.mfu,
        device_memory: args.device_memory.as_deref().map(plan::parse_bytes).transpose()?,
        images_per_seq: if args.measure_steps.is_some() { Some(1) } else { args.images_per_seq },
    };
    let p = plan::plan(&loaded.config, &opts)?;
    let measured = match args.measure_steps {
        Some(n) => Some(plan::measure::peak_rss_growth(&loaded.config, n).map_err(|e| e.to_string())?),
        None => None,
    };
    if args.json {
        let v = serde_json::json!({ "plan": p, "peak_bytes": p.memory.total(), "measured": measured });
        println!("{v}");
        return Ok(());
    }
    print!("{}", plan::render(&p, &opts));
    if let Some(m) = measured {
        println!(
            "\nmeasured over {} steps: peak RSS growth {:.1} MiB (RSS {:.1} MiB before the model, peak {:.1} MiB); \
             predicted {:.1} MiB, predicted / measured = {:.3}",
            m.steps,
            m.growth_bytes / 1048576.0,
            m.start_rss_bytes / 1048576.0,
            m.peak_rss_bytes / 1048576.0,
            p.memory.total() / 1048576.0,
            p.memory.total() / m.growth_bytes
        );
    }
    Ok(())
}
