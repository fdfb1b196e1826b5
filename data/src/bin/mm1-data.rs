//! `mm1-data`: synthetic benchmark, shard inspection and preview, tokenizer training, pipeline
//! benchmark, sample-path fuzzing.
//!
//! ```text
//! mm1-data synth --out DIR [--seed S] [--small] [--image-size N] [--shards-per-kind N]
//!                [--samples-per-shard N] [--eval-vqa N] [--eval-captions N] [--vocab-size N]
//! mm1-data inspect SHARD_SPEC [--kind caption|interleaved|text] [--json] [--tokenizer PATH]
//!                  [--resolution R] [--workers W] [--max-image-pixels N]
//! mm1-data tokenizer train SHARD_SPEC --out PATH [--vocab-size N] [--max-samples N]
//! mm1-data bench SHARD_SPEC --resolution R --workers W [--kind K] --tokenizer PATH
//!                [--seq-len T] [--batch-size B] [--num-image-tokens M] [--batches N]
//! mm1-data preview SHARD_SPEC --out DIR [--resolution R] [-n N] [--kind K]
//! mm1-data fuzz [--cases N] [--seed S] [--resolution R]
//! mm1-data probe --resolution R [--task stripes|patch_colour|row_index|row_colour] [--native N] [--train N]
//!                [--test N] [--seed S] [--steps N]
//! ```
//!
//! Arguments are parsed by clap, as in the trainer's binaries (`--help` on every command): a
//! usage error exits with status 2, a failing command with 1.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use clap::{Args, Parser, Subcommand};
use mm1_data::fuzz;
use mm1_data::inspect::inspect;
use mm1_data::preview::preview;
use mm1_data::sample::ProcessCtx;
use mm1_data::synth::{GatedTask, SynthConfig, generate};
use mm1_data::{
    DataConfig, DataError, Loader, PipelineShape, ResizeMode, SampleKind, SourceConfig, WdsOpener,
};

type Res<T> = Result<T, String>;

#[derive(Parser)]
#[command(name = "mm1-data", version, about = "MM1 data tools (see docs/data.md)")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Write the synthetic dataset (shards, tokenizer, evaluation sets) into a folder.
    Synth(SynthArgs),
    /// Decode every sample of the shards; report counts, skips and a hash of the keys.
    Inspect(InspectArgs),
    /// Write decoded, resized samples as PNG and text files with an `index.json`.
    Preview(PreviewArgs),
    /// Tokenizer tools.
    Tokenizer {
        #[command(subcommand)]
        cmd: TokenizerCmd,
    },
    /// Time the loader (decode, resize, normalise, tokenise, pack); one JSON line.
    Bench(BenchArgs),
    /// Random and mutated samples through the sample path: errors, never an abort.
    Fuzz(FuzzArgs),
    /// Raw-pixel logistic-regression probe of the gated tasks at one resolution.
    Probe(ProbeArgs),
}

#[derive(Subcommand)]
enum TokenizerCmd {
    /// Train the byte-level BPE tokenizer on the shards' texts.
    Train(TokenizerTrainArgs),
}

/// The positional shard spec. Optional for clap so that a missing one is the error
/// "missing SHARD_SPEC".
#[derive(Args)]
struct Spec {
    /// Shards: a file, or brace ranges such as `dir/caption-{000000..000009}.tar`.
    #[arg(value_name = "SHARD_SPEC")]
    spec: Option<String>,
}

impl Spec {
    fn get(&self) -> Res<&str> {
        self.spec.as_deref().ok_or_else(|| "missing SHARD_SPEC".to_string())
    }
}

#[derive(Args)]
struct SynthArgs {
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    #[arg(long, value_name = "S", default_value_t = 0)]
    seed: u64,
    /// Start from the small sizes (tests, quickstart) instead of the default ones.
    #[arg(long)]
    small: bool,
    #[arg(long, value_name = "N")]
    image_size: Option<usize>,
    #[arg(long, value_name = "N")]
    shards_per_kind: Option<usize>,
    #[arg(long, value_name = "N")]
    samples_per_shard: Option<usize>,
    #[arg(long, value_name = "N")]
    eval_vqa: Option<usize>,
    #[arg(long, value_name = "N")]
    eval_captions: Option<usize>,
    #[arg(long, value_name = "N")]
    vocab_size: Option<usize>,
}

/// What `inspect` and `preview` decode with.
#[derive(Args)]
struct Decode {
    /// Sample kind to read the shards as (caption, interleaved, text); by default each sample's own.
    #[arg(long, value_name = "K", value_parser = parse_kind)]
    kind: Option<SampleKind>,
    #[arg(long, value_name = "R", default_value_t = 224)]
    resolution: usize,
    #[arg(long, value_name = "N", default_value_t = DataConfig::default().max_image_pixels)]
    max_image_pixels: u64,
}

impl Decode {
    fn ctx(&self, tokenizer: Option<Arc<mm1_data::TextTokenizer>>) -> ProcessCtx {
        ProcessCtx {
            tokenizer,
            image_size: self.resolution,
            resize: ResizeMode::ShortestSideCrop,
            max_pixels: self.max_image_pixels,
        }
    }
}

#[derive(Args)]
struct InspectArgs {
    #[command(flatten)]
    spec: Spec,
    #[command(flatten)]
    decode: Decode,
    /// One line of JSON instead of pretty-printed.
    #[arg(long)]
    json: bool,
    #[arg(long, value_name = "PATH")]
    tokenizer: Option<PathBuf>,
    /// Decoding threads (default: all cores).
    #[arg(long, value_name = "W")]
    workers: Option<usize>,
}

#[derive(Args)]
struct PreviewArgs {
    #[command(flatten)]
    spec: Spec,
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// Samples to write.
    #[arg(short = 'n', value_name = "N", default_value_t = 16)]
    n: usize,
    #[command(flatten)]
    decode: Decode,
}

#[derive(Args)]
struct TokenizerTrainArgs {
    #[command(flatten)]
    spec: Spec,
    #[arg(long, value_name = "PATH")]
    out: PathBuf,
    #[arg(long, value_name = "N", default_value_t = 8192)]
    vocab_size: usize,
    /// Texts to train on at most (default: all).
    #[arg(long, value_name = "N")]
    max_samples: Option<usize>,
}

#[derive(Args)]
struct BenchArgs {
    #[command(flatten)]
    spec: Spec,
    #[arg(long, value_name = "R", default_value_t = 224)]
    resolution: usize,
    #[arg(long, value_name = "W", default_value_t = 1)]
    workers: usize,
    #[arg(long, value_name = "K", value_parser = parse_kind, default_value = "caption")]
    kind: SampleKind,
    #[arg(long, value_name = "PATH")]
    tokenizer: PathBuf,
    #[arg(long, value_name = "T", default_value_t = 2048)]
    seq_len: usize,
    #[arg(long, value_name = "B", default_value_t = 8)]
    batch_size: usize,
    #[arg(long, value_name = "M", default_value_t = 64)]
    num_image_tokens: usize,
    #[arg(long, value_name = "N", default_value_t = 20)]
    batches: usize,
}

#[derive(Args)]
struct FuzzArgs {
    #[arg(long, value_name = "N", default_value_t = 100_000)]
    cases: u64,
    #[arg(long, value_name = "S", default_value_t = 0)]
    seed: u64,
    #[arg(long, value_name = "R", default_value_t = 32)]
    resolution: usize,
}

#[derive(Args)]
struct ProbeArgs {
    #[arg(long, value_name = "R")]
    resolution: usize,
    /// One task (stripes|patch_colour|row_index|row_colour); all of them when left out.
    #[arg(long, value_name = "TASK", value_parser = parse_task)]
    task: Option<GatedTask>,
    #[arg(long, value_name = "N")]
    native: Option<usize>,
    #[arg(long, value_name = "N")]
    train: Option<usize>,
    #[arg(long, value_name = "N")]
    test: Option<usize>,
    #[arg(long, value_name = "S")]
    seed: Option<u64>,
    #[arg(long, value_name = "N")]
    steps: Option<usize>,
}

fn parse_kind(s: &str) -> Res<SampleKind> {
    s.parse::<SampleKind>().map_err(err)
}

fn parse_task(name: &str) -> Res<GatedTask> {
    GatedTask::by_name(name).ok_or_else(|| {
        format!("--task {name:?}: not a gated task (stripes, patch_colour, row_index, row_colour)")
    })
}

fn err(e: DataError) -> String {
    e.to_string()
}

fn json<T: serde::Serialize>(value: &T, pretty: bool) -> Res<String> {
    let s = if pretty { serde_json::to_string_pretty(value) } else { serde_json::to_string(value) };
    s.map_err(|e| e.to_string())
}

fn pool(workers: usize) -> Res<rayon::ThreadPool> {
    rayon::ThreadPoolBuilder::new().num_threads(workers).build().map_err(|e| e.to_string())
}

/// The tokenizer at `path` with the default config's special tokens.
fn load_tokenizer(path: &Path) -> Res<mm1_data::TextTokenizer> {
    let d = DataConfig::default();
    let specials = [d.image_token.as_str(), d.end_of_chunk_token.as_str(), d.pad_token.as_str()];
    mm1_data::TextTokenizer::from_file(path, specials).map_err(err)
}

fn cmd_synth(a: SynthArgs) -> Res<()> {
    let base = if a.small {
        SynthConfig::small(a.out, a.seed)
    } else {
        SynthConfig { out: a.out, seed: a.seed, ..Default::default() }
    };
    let cfg = SynthConfig {
        image_size: a.image_size.unwrap_or(base.image_size),
        shards_per_kind: a.shards_per_kind.unwrap_or(base.shards_per_kind),
        samples_per_shard: a.samples_per_shard.unwrap_or(base.samples_per_shard),
        eval_vqa: a.eval_vqa.unwrap_or(base.eval_vqa),
        eval_captions: a.eval_captions.unwrap_or(base.eval_captions),
        vocab_size: a.vocab_size.unwrap_or(base.vocab_size),
        ..base
    };
    let t = Instant::now();
    let out = generate(&cfg).map_err(err)?;
    println!("{}", json(&out, true)?);
    eprintln!("synth: wrote {} in {:.1}s", cfg.out.display(), t.elapsed().as_secs_f64());
    Ok(())
}

fn cmd_inspect(a: InspectArgs) -> Res<()> {
    let tokenizer = a.tokenizer.as_deref().map(load_tokenizer).transpose()?.map(Arc::new);
    let ctx = a.decode.ctx(tokenizer);
    let workers = a.workers.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let report = inspect(a.spec.get()?, a.decode.kind, &ctx, &WdsOpener, &pool(workers)?).map_err(err)?;
    println!("{}", json(&report, !a.json)?);
    Ok(())
}

fn cmd_tokenizer_train(a: TokenizerTrainArgs) -> Res<()> {
    let texts =
        mm1_data::tokenizer::shard_texts(a.spec.get()?, &WdsOpener, a.max_samples.unwrap_or(usize::MAX))
            .map_err(err)?;
    let d = DataConfig::default();
    let specials = [d.image_token.as_str(), d.end_of_chunk_token.as_str(), d.pad_token.as_str()];
    let tok = mm1_data::tokenizer::train_bpe(texts.iter(), a.vocab_size, &specials, &a.out).map_err(err)?;
    eprintln!(
        "tokenizer: {} texts, vocabulary {} -> {}",
        texts.len(),
        tok.get_vocab_size(true),
        a.out.display()
    );
    Ok(())
}

fn cmd_preview(a: PreviewArgs) -> Res<()> {
    let ctx = a.decode.ctx(None);
    let entries = preview(a.spec.get()?, a.decode.kind, a.n, &ctx, &WdsOpener, &a.out).map_err(err)?;
    let images: usize = entries.iter().map(|e| e.images.len()).sum();
    let skipped = entries.iter().filter(|e| e.skipped.is_some()).count();
    eprintln!(
        "preview: {} samples ({images} images, {skipped} skipped) -> {} (index.json lists them)",
        entries.len(),
        a.out.display()
    );
    Ok(())
}

fn cmd_fuzz(a: FuzzArgs) -> Res<()> {
    let ctx = ProcessCtx { image_size: a.resolution, ..fuzz::default_ctx() };
    let t = Instant::now();
    let report = fuzz::run_fuzz(a.cases, a.seed, &ctx);
    println!("{}", json(&report, true)?);
    eprintln!("fuzz: {} cases in {:.1}s, no abort", report.cases, t.elapsed().as_secs_f64());
    Ok(())
}

/// Raw-pixel logistic-regression probe of the gated tasks at one resolution; one JSON line per task.
fn cmd_probe(a: ProbeArgs) -> Res<()> {
    let tasks = a.task.map_or_else(|| mm1_data::synth::GATED_TASKS.to_vec(), |t| vec![t]);
    for task in tasks {
        let d = mm1_data::probe::ProbeConfig::new(task, 64, a.resolution);
        let cfg = mm1_data::probe::ProbeConfig {
            native: a.native.unwrap_or(d.native),
            train: a.train.unwrap_or(d.train),
            test: a.test.unwrap_or(d.test),
            seed: a.seed.unwrap_or(d.seed),
            steps: a.steps.unwrap_or(d.steps),
            ..d
        };
        let r = mm1_data::probe::probe(&cfg).map_err(err)?;
        println!("{}", json(&r, false)?);
    }
    Ok(())
}

/// CPU seconds of this process so far (user + system), from /proc.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<f64> = after.split_whitespace().map(|x| x.parse().unwrap_or(0.0)).collect();
    // fields 14 and 15 of stat (utime, stime) are at 11 and 12 after the ")" ; clock ticks of 1/100 s
    (f.get(11).copied().unwrap_or(0.0) + f.get(12).copied().unwrap_or(0.0)) / 100.0
}

fn cmd_bench(a: BenchArgs) -> Res<()> {
    let kind = a.kind;
    let cfg = DataConfig {
        seq_len: a.seq_len,
        batch_size: a.batch_size,
        workers: a.workers,
        tokenizer: a.tokenizer,
        sources: vec![SourceConfig {
            name: kind.name().into(),
            kind,
            shards: a.spec.get()?.into(),
            weight: 1.0,
        }],
        ..Default::default()
    };
    let shape = PipelineShape { image_size: a.resolution, num_image_tokens: a.num_image_tokens };
    let batches = a.batches;
    let mut loader = Loader::new(&cfg, shape, 0, 1).map_err(err)?;
    loader.next_batch().map_err(err)?; // warm-up: thread start, first shard open
    let (t0, c0) = (Instant::now(), cpu_seconds());
    let (mut samples, mut images, mut tokens) = (0u64, 0u64, 0u64);
    for _ in 0..batches {
        let b = loader.next_batch().map_err(err)?;
        samples += b.sources.iter().map(|s| s.samples).sum::<u64>();
        images += b.n_images as u64;
        tokens += b.real_tokens() as u64;
    }
    let (wall, cpu) = (t0.elapsed().as_secs_f64(), cpu_seconds() - c0);
    let report = serde_json::json!({
        "workers": cfg.workers, "resolution": shape.image_size, "batches": batches,
        "samples": samples, "images": images, "tokens": tokens, "wall_s": wall, "cpu_s": cpu,
        "samples_per_s": samples as f64 / wall, "images_per_s": images as f64 / wall,
        "cpu_s_per_image": cpu / images.max(1) as f64,
    });
    println!("{report}");
    Ok(())
}

fn main() -> ExitCode {
    let r = match Cli::parse().cmd {
        Cmd::Synth(a) => cmd_synth(a),
        Cmd::Inspect(a) => cmd_inspect(a),
        Cmd::Preview(a) => cmd_preview(a),
        Cmd::Tokenizer { cmd: TokenizerCmd::Train(a) } => cmd_tokenizer_train(a),
        Cmd::Bench(a) => cmd_bench(a),
        Cmd::Fuzz(a) => cmd_fuzz(a),
        Cmd::Probe(a) => cmd_probe(a),
    };
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
