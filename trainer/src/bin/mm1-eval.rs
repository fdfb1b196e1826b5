//! `mm1-eval`: few-shot evaluation of a checkpoint (captioning → CIDEr-D, VQA → accuracy and exact
//! match), written as `eval.json`. See `docs/ablations.md` "Evaluation".
//!
//! ```text
//! mm1-eval --checkpoint RUN_DIR|CHECKPOINT_DIR [--shots 0,4,8] [--zero-shot plain|text-demos:N]
//!          [--seed S] [--limit N] [--support-size N] [--max-new-tokens N] [--out FILE]
//!          [--no-blank] [--max-choices N] [--fewshot-tasks TASK,TASK]
//!          [--coco-captions ANN.json --coco-images DIR]
//!          [--vqav2-questions Q.json --vqav2-annotations A.json --vqav2-images DIR [--vqav2-image-pattern P]]
//! ```
//! Without `--coco-*`/`--vqav2-*` the synthetic benchmark's eval sets of the run config are used.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use burn::tensor::Device;
use mm1_trainer::eval::{
    AnswerScheme, EvalError, EvalOptions, EvalTask, TaskKind, ZeroShot, fewshot_eval, load_coco_captions,
    load_vqav2, split_support, synth_tasks, write_eval_json,
};

#[derive(Default)]
struct Args {
    checkpoint: Option<PathBuf>,
    out: Option<PathBuf>,
    opts: EvalOptions,
    support_size: usize,
    coco: [Option<PathBuf>; 2],
    vqav2: [Option<PathBuf>; 3],
    vqav2_pattern: String,
}

fn parse(mut it: impl Iterator<Item = String>) -> Result<Args, String> {
    let mut a =
        Args { support_size: 8, vqav2_pattern: "COCO_val2014_{image_id:012}.jpg".into(), ..Args::default() };
    let num = |flag: &str, v: Option<String>| -> Result<u64, String> {
        let v = v.ok_or(format!("{flag} needs a value"))?;
        v.parse().map_err(|_| format!("{flag} {v}: not a non-negative integer"))
    };
    while let Some(flag) = it.next() {
        match flag.as_str() {
            "--checkpoint" => a.checkpoint = it.next().map(PathBuf::from),
            "--out" => a.out = it.next().map(PathBuf::from),
            "--shots" => {
                let v = it.next().ok_or("--shots needs a list like 0,4,8")?;
                a.opts.shots = v
                    .split(',')
                    .map(|s| s.trim().parse().map_err(|_| format!("--shots {v}: `{s}` is not a number")))
                    .collect::<Result<_, _>>()?;
            }
            "--zero-shot" => {
                let v = it.next().ok_or("--zero-shot needs plain or text-demos:N")?;
                a.opts.zero_shot = ZeroShot::parse(&v).map_err(|e| format!("--zero-shot {e}"))?;
            }
            "--seed" => a.opts.seed = num("--seed", it.next())?,
            "--limit" => a.opts.limit = Some(num("--limit", it.next())? as usize),
            "--support-size" => a.support_size = num("--support-size", it.next())? as usize,
            "--no-blank" => a.opts.blank_baseline = false,
            "--fewshot-tasks" => {
                let v =
                    it.next().ok_or("--fewshot-tasks needs a list like synth_vqa_stripes,synth_captions")?;
                a.opts.fewshot_tasks = v.split(',').map(|s| s.trim().to_string()).collect();
            }
            "--max-choices" => a.opts.max_choices = num("--max-choices", it.next())? as usize,
            "--max-new-tokens" => a.opts.max_new_tokens = num("--max-new-tokens", it.next())? as usize,
            "--coco-captions" => a.coco[0] = it.next().map(PathBuf::from),
            "--coco-images" => a.coco[1] = it.next().map(PathBuf::from),
            "--vqav2-questions" => a.vqav2[0] = it.next().map(PathBuf::from),
            "--vqav2-annotations" => a.vqav2[1] = it.next().map(PathBuf::from),
            "--vqav2-images" => a.vqav2[2] = it.next().map(PathBuf::from),
            "--vqav2-image-pattern" => {
                a.vqav2_pattern = it.next().ok_or("--vqav2-image-pattern needs a value")?
            }
            other => return Err(format!("unknown argument `{other}`")),
        }
    }
    if a.checkpoint.is_none() {
        return Err("--checkpoint RUN_DIR|CHECKPOINT_DIR is required".into());
    }
    Ok(a)
}

fn tasks(a: &Args, cfg: &mm1_trainer::config::RunConfig) -> Result<Vec<EvalTask>, EvalError> {
    let mut out = Vec::new();
    if let [Some(ann), Some(images)] = &a.coco {
        let (queries, support) = split_support(load_coco_captions(ann, images)?, a.support_size, ann)?;
        out.push(EvalTask::new("coco", TaskKind::Caption, queries, support));
    }
    if let [Some(q), Some(ann), Some(images)] = &a.vqav2 {
        let items = load_vqav2(q, ann, images, &a.vqav2_pattern)?;
        let (queries, support) = split_support(items, a.support_size, q)?;
        // VQAv2's answers are open (thousands of distinct strings): no forced choice by default.
        out.push(EvalTask::new(
            "vqav2",
            TaskKind::Vqa { scheme: AnswerScheme::Annotators },
            queries,
            support,
        ));
    }
    if out.is_empty() {
        out = synth_tasks(cfg, a.support_size)?;
    }
    if out.is_empty() {
        return Err(EvalError::Invalid(
            "no eval sets: the run config names none and no --coco-*/--vqav2-* given".into(),
        ));
    }
    Ok(out)
}

fn run(a: &Args) -> Result<PathBuf, String> {
    let ckpt = a.checkpoint.as_deref().expect("checked in parse");
    let device = Device::flex();
    let (model, cfg) = mm1_trainer::generate::load_checkpoint(ckpt, &device).map_err(|e| e.to_string())?;
    let tasks = tasks(a, &cfg).map_err(|e| e.to_string())?;
    let step = std::fs::read_to_string(latest_state(ckpt))
        .ok()
        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok().and_then(|v| v["step"].as_u64()));
    let report = fewshot_eval(&model, &cfg, &tasks, &a.opts, step, &device).map_err(|e| e.to_string())?;
    let out = a.out.clone().unwrap_or_else(|| {
        if ckpt.join("checkpoints").is_dir() { ckpt.join("eval.json") } else { PathBuf::from("eval.json") }
    });
    write_eval_json(&report, &out).map_err(|e| e.to_string())?;
    for (k, v) in &report.scores {
        println!("{k} = {v:.4}");
    }
    Ok(out)
}

/// `state.json` of a checkpoint folder, or of the newest `checkpoints/step-N` of a run folder.
fn latest_state(path: &Path) -> PathBuf {
    if path.join("state.json").is_file() {
        return path.join("state.json");
    }
    let mut steps: Vec<(u64, PathBuf)> = std::fs::read_dir(path.join("checkpoints"))
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let n = e.file_name().to_string_lossy().strip_prefix("step-")?.parse().ok()?;
            Some((n, e.path().join("state.json")))
        })
        .collect();
    steps.sort();
    steps.pop().map(|s| s.1).unwrap_or_default()
}

fn main() -> ExitCode {
    let args = match parse(std::env::args().skip(1)) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("mm1-eval: {e}\n(see the usage in trainer/src/bin/mm1-eval.rs or docs/ablations.md)");
            return ExitCode::from(2);
        }
    };
    match run(&args) {
        Ok(out) => {
            println!("wrote {}", out.display());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("mm1-eval: {e}");
            ExitCode::FAILURE
        }
    }
}
