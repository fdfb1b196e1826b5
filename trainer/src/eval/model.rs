//! The harness on a real model: prompts are tokenised with the run's tokenizer, images preprocessed
//! as the data pipeline does (`mm1_data::image::preprocess`, CLIP-normalised), continuations decoded
//! greedily with the KV cache (`generate::generate_ids`) until `<end_of_chunk>`.
//!
//! [`fewshot_eval`] is what the training loop calls every N steps and what `mm1-eval` calls on a
//! checkpoint; [`synth_tasks`] loads the synthetic benchmark's eval sets named by the run config.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use burn::tensor::{Device, Tensor, TensorData};
use mm1_data::TextTokenizer;
use mm1_models::Mm1Model;

use super::EvalError;
use super::harness::{EvalOptions, EvalReport, evaluate_tasks_split, write_eval_json};
use super::prompt::{Prompt, build_prompt, tokenize_prompt};
use super::split::WorkSplit;
use super::tasks::{EvalTask, TaskKind, load_synth_jsonl, split_support};
use crate::config::RunConfig;
use crate::generate::{GenerateOptions, generate_ids};

/// The synthetic benchmark's eval sets of a run config (`data.eval.vqa` / `data.eval.captions`, else
/// the `eval/` folder of `[data.synth]`), each with its last `support_size` items as the pool.
pub fn synth_tasks(cfg: &RunConfig, support_size: usize) -> Result<Vec<EvalTask>, EvalError> {
    let synth = cfg.data.synth.as_ref().map(mm1_data::synth::SynthOutput::of);
    let vqa = cfg.data.eval.vqa.clone().or_else(|| synth.as_ref().map(|s| s.vqa.clone()));
    let captions = cfg.data.eval.captions.clone().or_else(|| synth.as_ref().map(|s| s.captions.clone()));
    let mut tasks = Vec::new();
    for (name, path) in [("synth_vqa", vqa), ("synth_captions", captions)] {
        let Some(path) = path else { continue };
        let (kind, items) = load_synth_jsonl(&path)?;
        let (queries, support) = split_support(items, support_size, &path)?;
        tasks.push(EvalTask { name: name.into(), kind, queries, support });
    }
    Ok(tasks)
}

/// Preprocessed pixels per image file (each image is decoded once per evaluation).
struct Images {
    size: usize,
    cache: HashMap<PathBuf, Vec<f32>>,
}

impl Images {
    fn get(&mut self, path: &Path, cfg: &RunConfig) -> Result<&[f32], EvalError> {
        if !self.cache.contains_key(path) {
            let bytes = std::fs::read(path).map_err(|e| EvalError::io(path, e))?;
            let px =
                mm1_data::image::preprocess(&bytes, self.size, cfg.data.resize, cfg.data.max_image_pixels)
                    .map_err(|e| EvalError::parse(path, format!("{:?}: {}", e.reason, e.detail)))?;
            self.cache.insert(path.to_path_buf(), px);
        }
        Ok(&self.cache[path])
    }
}

/// Fail early (before training) when a few-shot prompt of `opts` does not leave at least
/// `MIN_ROOM` tokens of `model.llm.max_seq_len` to generate; the error names the task, the shot
/// count and the lengths. Tokenises every prompt the evaluation will build, nothing else.
pub fn check_prompt_lengths(
    cfg: &RunConfig,
    tasks: &[EvalTask],
    opts: &EvalOptions,
) -> Result<(), EvalError> {
    let tok = TextTokenizer::load(&cfg.data).map_err(|e| EvalError::Invalid(format!("tokenizer: {e}")))?;
    let encode = |s: &str| tok.encode(s);
    let m = cfg.model.num_image_tokens();
    let max_len = cfg.model.llm.max_seq_len;
    for task in tasks {
        let queries = &task.queries[..opts.limit.unwrap_or(usize::MAX).min(task.queries.len())];
        for &k in opts.shots.iter().filter(|&&k| k <= task.support.len()) {
            let mut longest = 0;
            for (i, q) in queries.iter().enumerate() {
                let p = build_prompt(
                    task.kind,
                    q,
                    i,
                    &task.support,
                    k,
                    opts.zero_shot,
                    &opts.template,
                    opts.seed,
                );
                let (ids, _) = tokenize_prompt(&p, &encode, tok.image_id, tok.end_of_chunk_id, m)
                    .map_err(EvalError::Invalid)?;
                longest = longest.max(ids.len());
            }
            if longest + MIN_ROOM > max_len {
                return Err(EvalError::Invalid(format!(
                    "task {}: {k}-shot prompts reach {longest} tokens, leaving {} of model.llm.max_seq_len \
                     ({max_len}) to generate (at least {MIN_ROOM} needed); use fewer shots (eval.fewshot.shots) \
                     or a longer context",
                    task.name,
                    max_len.saturating_sub(longest)
                )));
            }
        }
    }
    Ok(())
}

/// Fewest tokens a prompt must leave the model to generate.
const MIN_ROOM: usize = 4;

/// Runs the few-shot protocol of `opts` on `tasks` with `model` and returns the report.
pub fn fewshot_eval(
    model: &Mm1Model,
    cfg: &RunConfig,
    tasks: &[EvalTask],
    opts: &EvalOptions,
    step: Option<u64>,
    device: &Device,
) -> Result<EvalReport, EvalError> {
    fewshot_eval_split(model, cfg, tasks, opts, step, device, &WorkSplit::single())
}

/// [`fewshot_eval`] shared among ranks (each generates for its queries, all get the report).
pub fn fewshot_eval_split(
    model: &Mm1Model,
    cfg: &RunConfig,
    tasks: &[EvalTask],
    opts: &EvalOptions,
    step: Option<u64>,
    device: &Device,
    split: &WorkSplit,
) -> Result<EvalReport, EvalError> {
    let tok = TextTokenizer::load(&cfg.data).map_err(|e| EvalError::Invalid(format!("tokenizer: {e}")))?;
    let [h, w] = cfg.model.image_size();
    if h != w {
        return Err(EvalError::Invalid(format!(
            "evaluation needs square images, model.vision.image_size is {h}x{w}"
        )));
    }
    let m = cfg.model.num_image_tokens();
    let mut images = Images { size: h, cache: HashMap::new() };
    let gen_opts = GenerateOptions {
        max_new_tokens: opts.max_new_tokens,
        stop_ids: vec![tok.end_of_chunk_id],
        ..GenerateOptions::default()
    };
    let encode = |s: &str| tok.encode(s);
    let mut generate = |_: TaskKind, p: &Prompt| -> Result<String, EvalError> {
        let (ids, mask) =
            tokenize_prompt(p, &encode, tok.image_id, tok.end_of_chunk_id, m).map_err(EvalError::Invalid)?;
        // Long few-shot prompts leave less room to generate; below 4 new tokens the shot count is
        // too large for the model's context.
        let max_len = cfg.model.llm.max_seq_len;
        let room = max_len.saturating_sub(ids.len());
        if room < MIN_ROOM {
            return Err(EvalError::Invalid(format!(
                "prompt of {} tokens leaves {room} of model.llm.max_seq_len ({max_len}) to generate; use fewer shots",
                ids.len()
            )));
        }
        let gen_opts = GenerateOptions { max_new_tokens: opts.max_new_tokens.min(room), ..gen_opts.clone() };
        let mut pixels = Vec::with_capacity(p.images.len() * 3 * h * h);
        for im in &p.images {
            pixels.extend_from_slice(images.get(im, cfg)?);
        }
        // [n, 3, h, w] in placeholder order.
        let tensor = Tensor::<4>::from_data(TensorData::new(pixels, [p.images.len(), 3, h, h]), device);
        let mut out = generate_ids(model, &ids, &mask, Some(tensor), &gen_opts, device)
            .map_err(|e| EvalError::Invalid(format!("generate: {e}")))?;
        if out.last() == Some(&tok.end_of_chunk_id) {
            out.pop();
        }
        tok.decode(&out).map_err(EvalError::Invalid)
    };
    evaluate_tasks_split(tasks, opts, step, &mut generate, split)
}

/// The training-loop hook: evaluate the synthetic benchmark of the run config, write
/// `run_dir/eval.json` (the latest) and `run_dir/eval/step-N.json` when `run_dir` is given (the
/// main rank), and return `(name, value)` pairs (`fewshot/<task>/<k>shot/<metric>`) for
/// `metrics.jsonl` and TensorBoard. The queries are shared among ranks as `split` says.
#[allow(clippy::too_many_arguments)]
pub fn eval_during_training(
    model: &Mm1Model,
    cfg: &RunConfig,
    step: u64,
    run_dir: Option<&Path>,
    opts: &EvalOptions,
    support_size: usize,
    device: &Device,
    split: &WorkSplit,
) -> Result<Vec<(String, f64)>, EvalError> {
    let tasks = synth_tasks(cfg, support_size)?;
    if tasks.is_empty() {
        return Ok(vec![]);
    }
    let report = fewshot_eval_split(model, cfg, &tasks, opts, Some(step), device, split)?;
    if let Some(run_dir) = run_dir {
        let dir = run_dir.join("eval");
        std::fs::create_dir_all(&dir).map_err(|e| EvalError::io(&dir, e))?;
        write_eval_json(&report, &dir.join(format!("step-{step}.json")))?;
        write_eval_json(&report, &run_dir.join("eval.json"))?;
    }
    Ok(report.scores.iter().map(|(k, v)| (format!("fewshot/{k}"), *v)).collect())
}
