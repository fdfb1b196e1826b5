//! The harness on a real model: prompts are tokenised with the run's tokenizer, images preprocessed
//! as the data pipeline does (`mm1_data::image::preprocess`, CLIP-normalised), continuations decoded
//! greedily with the KV cache (`generate::generate_ids`) until `<end_of_chunk>`. Forced choice scores
//! every answer of a closed set in one batched forward pass per query ([`log_likelihoods`]); the
//! blank-image baseline feeds zeros in place of the query image's normalised pixels (an image at
//! the CLIP mean colour).
//!
//! [`fewshot_eval`] is what the training loop calls every N steps and what `mm1-eval` calls on a
//! checkpoint; [`synth_tasks`] loads the synthetic benchmark's eval sets named by the run config.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use burn::tensor::activation::log_softmax;
use burn::tensor::{Bool, Device, Int, Tensor, TensorData};
use mm1_data::TextTokenizer;
use mm1_models::{Mm1Input, Mm1Model};

use mm1_eval::{
    EvalError, EvalOptions, EvalReport, EvalTask, Prompt, TaskKind, WorkSplit, build_prompt,
    evaluate_tasks_split, load_synth_jsonl, split_support, tokenize_prompt, write_eval_json,
};

use crate::config::RunConfig;
use crate::generate::{GenerateOptions, generate_ids};

/// The synthetic benchmark's eval sets of a run config (`data.eval.vqa` / `data.eval.captions`, else
/// the `eval/` folder of `[data.synth]`), each with its last `support_size` items as the pool. VQA
/// queries are split by their `task` field (`synth_vqa_counting`, ...; the pool is shared), so each
/// task is scored on its own: with the benchmark's 4 tasks in rotation, `data.synth.eval_vqa = 4 n +
/// support_size` gives `n` queries per task.
pub fn synth_tasks(cfg: &RunConfig, support_size: usize) -> Result<Vec<EvalTask>, EvalError> {
    let synth = cfg.data.synth.as_ref().map(mm1_data::synth::SynthOutput::of);
    let vqa = cfg.data.eval.vqa.clone().or_else(|| synth.as_ref().map(|s| s.vqa.clone()));
    let captions = cfg.data.eval.captions.clone().or_else(|| synth.as_ref().map(|s| s.captions.clone()));
    let mut tasks = Vec::new();
    for (name, path) in [("synth_vqa", vqa), ("synth_captions", captions)] {
        let Some(path) = path else { continue };
        let (kind, items) = load_synth_jsonl(&path)?;
        let (queries, support) = split_support(items, support_size, &path)?;
        tasks.extend(EvalTask::new(name, kind, queries, support).split_by_task());
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

    /// `[n, 3, h, w]` pixels of a prompt's images in placeholder order (zeros for a blank query).
    fn prompt_pixels(&mut self, p: &Prompt, cfg: &RunConfig) -> Result<Vec<f32>, EvalError> {
        let per = 3 * self.size * self.size;
        let mut pixels = Vec::with_capacity(p.images.len() * per);
        for (i, im) in p.images.iter().enumerate() {
            if p.blank_query && i + 1 == p.images.len() {
                pixels.extend(std::iter::repeat_n(0.0, per));
            } else {
                pixels.extend_from_slice(self.get(im, cfg)?);
            }
        }
        Ok(pixels)
    }
}

/// Fail early (before training) when `opts.fewshot_tasks` names a task there is not, or a few-shot
/// prompt of `opts` does not leave at least `MIN_ROOM` tokens of `model.llm.max_seq_len` to
/// generate; the error names the task, the shot count and the lengths. Tokenises every prompt the
/// evaluation will build, nothing else.
pub fn check_prompt_lengths(
    cfg: &RunConfig,
    tasks: &[EvalTask],
    opts: &EvalOptions,
) -> Result<(), EvalError> {
    opts.check_fewshot_tasks(tasks)?;
    let tok = TextTokenizer::load(&cfg.data).map_err(|e| EvalError::Invalid(format!("tokenizer: {e}")))?;
    let encode = |s: &str| tok.encode(s);
    let m = cfg.model.num_image_tokens();
    let max_len = cfg.model.llm.max_seq_len;
    for task in tasks {
        let queries = &task.queries[..opts.limit.unwrap_or(usize::MAX).min(task.queries.len())];
        for k in opts.shots_for(&task.name).into_iter().filter(|&k| k <= task.support.len()) {
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
    // Shared by the generative and the forced-choice scorer (each image decoded once).
    let images = std::cell::RefCell::new(Images { size: h, cache: HashMap::new() });
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
        let pixels = images.borrow_mut().prompt_pixels(p, cfg)?;
        // [n, 3, h, w] in placeholder order.
        let tensor = Tensor::<4>::from_data(TensorData::new(pixels, [p.images.len(), 3, h, h]), device);
        let mut out = generate_ids(model, &ids, &mask, Some(tensor), &gen_opts, device)
            .map_err(|e| EvalError::Invalid(format!("generate: {e}")))?;
        if out.last() == Some(&tok.end_of_chunk_id) {
            out.pop();
        }
        tok.decode(&out).map_err(EvalError::Invalid)
    };
    let mut loglik = |p: &Prompt, conts: &[String]| -> Result<Vec<f64>, EvalError> {
        let (ids, mask) =
            tokenize_prompt(p, &encode, tok.image_id, tok.end_of_chunk_id, m).map_err(EvalError::Invalid)?;
        let pixels = images.borrow_mut().prompt_pixels(p, cfg)?;
        let mut rows = Vec::with_capacity(conts.len());
        for c in conts {
            let mut cont = encode(c).map_err(EvalError::Invalid)?;
            cont.push(tok.end_of_chunk_id);
            rows.push(cont);
        }
        let images = (pixels.as_slice(), p.images.len(), h);
        log_likelihoods(model, (&ids, &mask), images, &rows, cfg.model.llm.max_seq_len, device)
    };
    evaluate_tasks_split(tasks, opts, step, &mut generate, Some(&mut loglik), split)
}

/// Summed log-probability of each continuation (token ids) after the prompt `ids`/`mask` with
/// `n_images` images of `side`² pixels (`pixels`, `[n_images, 3, side, side]` flattened): one forward pass over a batch of
/// rows `prompt ++ continuation`, right-padded (causal attention: padding never reaches the scored
/// positions).
///
/// # Shapes
/// - rows: `[c, t]`, `t` = prompt + longest continuation; images repeated per row: `[c·n, 3, h, w]`
/// - logits: `[c, t, vocab]`; the token at position `p` is scored by the row's logits at `p − 1`
pub fn log_likelihoods(
    model: &Mm1Model,
    (ids, mask): (&[u32], &[bool]),
    (pixels, n_images, side): (&[f32], usize, usize),
    continuations: &[Vec<u32>],
    max_seq_len: usize,
    device: &Device,
) -> Result<Vec<f64>, EvalError> {
    let c = continuations.len();
    let longest = continuations.iter().map(Vec::len).max().unwrap_or(0);
    let t = ids.len() + longest;
    if t > max_seq_len {
        return Err(EvalError::Invalid(format!(
            "forced choice: prompt ({}) + longest answer ({longest}) tokens exceed model.llm.max_seq_len ({max_seq_len})",
            ids.len()
        )));
    }
    if c == 0 || ids.is_empty() {
        return Ok(vec![0.0; c]);
    }
    let (mut tokens, mut image_mask, mut segments) = (Vec::with_capacity(c * t), Vec::new(), Vec::new());
    for cont in continuations {
        let pad = t - ids.len() - cont.len();
        tokens.extend(ids.iter().chain(cont).map(|&x| x as i64));
        tokens.extend(std::iter::repeat_n(0i64, pad));
        image_mask.extend(mask.iter().copied().chain(std::iter::repeat_n(false, cont.len() + pad)));
        segments.extend(std::iter::repeat_n(1i64, ids.len() + cont.len()).chain(std::iter::repeat_n(0, pad)));
    }
    let ints = |v: Vec<i64>| Tensor::<2, Int>::from_data(TensorData::new(v, [c, t]), device);
    let images = (n_images > 0).then(|| {
        let all: Vec<f32> = (0..c).flat_map(|_| pixels.iter().copied()).collect();
        Tensor::<4>::from_data(TensorData::new(all, [c * n_images, 3, side, side]), device) // [c·n, 3, h, w]
    });
    let input = Mm1Input {
        tokens: ints(tokens.clone()),
        image_mask: Tensor::<2, Bool>::from_data(TensorData::new(image_mask, [c, t]), device),
        segment_ids: ints(segments),
        position_ids: ints((0..c).flat_map(|_| 0..t as i64).collect()),
        images,
    };
    let out = model.forward(input).map_err(|e| EvalError::Invalid(format!("forced choice: {e}")))?;
    let logp = log_softmax(out.logits.cast(burn::tensor::FloatDType::F32), 2); // [c, t, vocab], f32 also under bf16
    let [_, _, vocab] = logp.dims();
    let logp: Vec<f32> = logp.into_data().iter::<f32>().collect();
    Ok(continuations
        .iter()
        .enumerate()
        .map(|(r, cont)| {
            (0..cont.len())
                .map(|j| {
                    let pos = ids.len() + j; // position of the scored token
                    logp[(r * t + pos - 1) * vocab + cont[j] as usize] as f64
                })
                .sum()
        })
        .collect())
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
