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
//! mm1-data probe --resolution R [--task stripes|stripes_colour|grid] [--native N] [--train N]
//!                [--test N] [--seed S] [--steps N]
//! ```

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use mm1_data::fuzz;
use mm1_data::inspect::inspect;
use mm1_data::preview::preview;
use mm1_data::sample::ProcessCtx;
use mm1_data::synth::{SynthConfig, generate};
use mm1_data::{
    DataConfig, DataError, Loader, PipelineShape, ResizeMode, SampleKind, SourceConfig, WdsOpener,
};

type Res<T> = Result<T, String>;

/// `--flag value` pairs, boolean `--flag`s and positionals.
struct Args {
    pos: Vec<String>,
    opts: HashMap<String, String>,
    flags: Vec<String>,
}

const BOOL_FLAGS: [&str; 2] = ["--json", "--small"];

fn parse(args: &[String]) -> Res<Args> {
    let mut a = Args { pos: Vec::new(), opts: HashMap::new(), flags: Vec::new() };
    let mut it = args.iter();
    while let Some(x) = it.next() {
        if BOOL_FLAGS.contains(&x.as_str()) {
            a.flags.push(x.clone());
        } else if x == "-n" {
            let v = it.next().ok_or("-n needs a value")?;
            a.opts.insert("n".to_string(), v.clone());
        } else if let Some(name) = x.strip_prefix("--") {
            let v = it.next().ok_or_else(|| format!("--{name} needs a value"))?;
            a.opts.insert(name.to_string(), v.clone());
        } else {
            a.pos.push(x.clone());
        }
    }
    Ok(a)
}

impl Args {
    fn get<T: std::str::FromStr>(&self, name: &str) -> Res<Option<T>> {
        self.opts
            .get(name)
            .map(|v| v.parse::<T>().map_err(|_| format!("--{name}: cannot parse {v:?}")))
            .transpose()
    }
    fn or<T: std::str::FromStr>(&self, name: &str, default: T) -> Res<T> {
        Ok(self.get(name)?.unwrap_or(default))
    }
    fn flag(&self, name: &str) -> bool {
        self.flags.iter().any(|f| f == name)
    }
    fn spec(&self) -> Res<&str> {
        self.pos.first().map(String::as_str).ok_or_else(|| "missing SHARD_SPEC".to_string())
    }
}

fn err(e: DataError) -> String {
    e.to_string()
}

fn kind_arg(a: &Args) -> Res<Option<SampleKind>> {
    a.opts.get("kind").map(|k| k.parse::<SampleKind>().map_err(err)).transpose()
}

fn pool(workers: usize) -> Res<rayon::ThreadPool> {
    rayon::ThreadPoolBuilder::new().num_threads(workers).build().map_err(|e| e.to_string())
}

fn cmd_synth(a: &Args) -> Res<()> {
    let out: PathBuf = a.get("out")?.ok_or("synth needs --out DIR")?;
    let seed = a.or("seed", 0u64)?;
    let base = if a.flag("--small") {
        SynthConfig::small(out, seed)
    } else {
        SynthConfig { out, seed, ..Default::default() }
    };
    let cfg = SynthConfig {
        image_size: a.or("image-size", base.image_size)?,
        shards_per_kind: a.or("shards-per-kind", base.shards_per_kind)?,
        samples_per_shard: a.or("samples-per-shard", base.samples_per_shard)?,
        eval_vqa: a.or("eval-vqa", base.eval_vqa)?,
        eval_captions: a.or("eval-captions", base.eval_captions)?,
        vocab_size: a.or("vocab-size", base.vocab_size)?,
        ..base
    };
    let t = Instant::now();
    let out = generate(&cfg).map_err(err)?;
    println!("{}", serde_json::to_string_pretty(&out).map_err(|e| e.to_string())?);
    eprintln!("synth: wrote {} in {:.1}s", cfg.out.display(), t.elapsed().as_secs_f64());
    Ok(())
}

/// What `inspect` and `preview` decode with: `--resolution` (224), `--max-image-pixels`.
fn decode_ctx(a: &Args, tokenizer: Option<Arc<mm1_data::TextTokenizer>>) -> Res<ProcessCtx> {
    Ok(ProcessCtx {
        tokenizer,
        image_size: a.or("resolution", 224usize)?,
        resize: ResizeMode::ShortestSideCrop,
        max_pixels: a.or("max-image-pixels", DataConfig::default().max_image_pixels)?,
    })
}

fn cmd_inspect(a: &Args) -> Res<()> {
    let tokenizer = match a.get::<PathBuf>("tokenizer")? {
        Some(p) => {
            let d = DataConfig::default();
            let specials = [d.image_token.as_str(), d.end_of_chunk_token.as_str(), d.pad_token.as_str()];
            Some(Arc::new(mm1_data::TextTokenizer::from_file(&p, specials).map_err(err)?))
        }
        None => None,
    };
    let ctx = decode_ctx(a, tokenizer)?;
    let workers = a.or("workers", std::thread::available_parallelism().map_or(1, |n| n.get()))?;
    let report = inspect(a.spec()?, kind_arg(a)?, &ctx, &WdsOpener, &pool(workers)?).map_err(err)?;
    if a.flag("--json") {
        println!("{}", serde_json::to_string(&report).map_err(|e| e.to_string())?);
    } else {
        println!("{}", serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?);
    }
    Ok(())
}

fn cmd_tokenizer(a: &Args) -> Res<()> {
    if a.pos.first().map(String::as_str) != Some("train") {
        return Err("usage: mm1-data tokenizer train SHARD_SPEC --out PATH [--vocab-size N]".into());
    }
    let spec = a.pos.get(1).ok_or("missing SHARD_SPEC")?;
    let out: PathBuf = a.get("out")?.ok_or("tokenizer train needs --out PATH")?;
    let texts =
        mm1_data::tokenizer::shard_texts(spec, &WdsOpener, a.or("max-samples", usize::MAX)?).map_err(err)?;
    let d = DataConfig::default();
    let specials = [d.image_token.as_str(), d.end_of_chunk_token.as_str(), d.pad_token.as_str()];
    let tok = mm1_data::tokenizer::train_bpe(texts.iter(), a.or("vocab-size", 8192usize)?, &specials, &out)
        .map_err(err)?;
    eprintln!(
        "tokenizer: {} texts, vocabulary {} -> {}",
        texts.len(),
        tok.get_vocab_size(true),
        out.display()
    );
    Ok(())
}

fn cmd_preview(a: &Args) -> Res<()> {
    let out: PathBuf = a.get("out")?.ok_or("preview needs --out DIR")?;
    let ctx = decode_ctx(a, None)?;
    let entries =
        preview(a.spec()?, kind_arg(a)?, a.or("n", 16usize)?, &ctx, &WdsOpener, &out).map_err(err)?;
    let images: usize = entries.iter().map(|e| e.images.len()).sum();
    let skipped = entries.iter().filter(|e| e.skipped.is_some()).count();
    eprintln!(
        "preview: {} samples ({images} images, {skipped} skipped) -> {} (index.json lists them)",
        entries.len(),
        out.display()
    );
    Ok(())
}

fn cmd_fuzz(a: &Args) -> Res<()> {
    let ctx = ProcessCtx { image_size: a.or("resolution", 32usize)?, ..fuzz::default_ctx() };
    let t = Instant::now();
    let report = fuzz::run_fuzz(a.or("cases", 100_000u64)?, a.or("seed", 0u64)?, &ctx);
    println!("{}", serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?);
    eprintln!("fuzz: {} cases in {:.1}s, no abort", report.cases, t.elapsed().as_secs_f64());
    Ok(())
}

/// Raw-pixel logistic-regression probe of the gated tasks at one resolution; one JSON line per task.
fn cmd_probe(a: &Args) -> Res<()> {
    let resolution: usize = a.get("resolution")?.ok_or("probe needs --resolution R")?;
    let tasks =
        match a.opts.get("task") {
            Some(name) => vec![mm1_data::synth::GatedTask::by_name(name).ok_or_else(|| {
                format!("--task {name:?}: not a gated task (stripes, stripes_colour, grid)")
            })?],
            None => mm1_data::synth::GATED_TASKS.to_vec(),
        };
    for task in tasks {
        let d = mm1_data::probe::ProbeConfig::new(task, 64, resolution);
        let cfg = mm1_data::probe::ProbeConfig {
            native: a.or("native", d.native)?,
            train: a.or("train", d.train)?,
            test: a.or("test", d.test)?,
            seed: a.or("seed", d.seed)?,
            steps: a.or("steps", d.steps)?,
            ..d
        };
        let r = mm1_data::probe::probe(&cfg).map_err(err)?;
        println!("{}", serde_json::to_string(&r).map_err(|e| e.to_string())?);
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

fn cmd_bench(a: &Args) -> Res<()> {
    let kind = kind_arg(a)?.unwrap_or(SampleKind::Caption);
    let cfg = DataConfig {
        seq_len: a.or("seq-len", 2048usize)?,
        batch_size: a.or("batch-size", 8usize)?,
        workers: a.or("workers", 1usize)?,
        tokenizer: a.get("tokenizer")?.ok_or("bench needs --tokenizer PATH")?,
        sources: vec![SourceConfig { name: kind.name().into(), kind, shards: a.spec()?.into(), weight: 1.0 }],
        ..Default::default()
    };
    let shape = PipelineShape {
        image_size: a.or("resolution", 224usize)?,
        num_image_tokens: a.or("num-image-tokens", 64usize)?,
    };
    let batches = a.or("batches", 20usize)?;
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
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(cmd) = args.first() else {
        eprintln!(
            "usage: mm1-data synth|inspect|preview|tokenizer train|bench|fuzz|probe ... (see docs/data.md)"
        );
        return ExitCode::from(2);
    };
    let r = parse(&args[1..]).and_then(|a| match cmd.as_str() {
        "synth" => cmd_synth(&a),
        "inspect" => cmd_inspect(&a),
        "tokenizer" => cmd_tokenizer(&a),
        "bench" => cmd_bench(&a),
        "preview" => cmd_preview(&a),
        "fuzz" => cmd_fuzz(&a),
        "probe" => cmd_probe(&a),
        other => {
            Err(format!("unknown command {other:?} (synth, inspect, preview, tokenizer, bench, fuzz, probe)"))
        }
    });
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
