//! Evaluation without tensors: caption and VQA metrics, few-shot prompting, the tasks and the
//! harness. The trainer's `eval` module runs it on an `Mm1Model` (`fewshot_eval`,
//! `eval_during_training`); this crate never sees one.
//!
//! Metrics follow the reference implementations the MM1 paper's numbers come from: CIDEr-D as
//! pycocoevalcap computes it (after its PTB tokenisation), VQA accuracy with the official VQAv2
//! answer normalisation. Parity with the references is checked by `tests/eval_metrics.rs` on
//! committed fixtures (`scripts/eval_make_*_fixture.py`).
//!
//! The harness ([`evaluate_tasks`]) is model-agnostic: it builds few-shot prompts
//! ([`build_prompt`]), asks a `generate` callback for continuations and scores them, with a
//! blank-image and a majority-answer baseline beside every score; closed-set tasks also get a
//! 0-shot forced-choice score from a log-likelihood callback ([`forced_choice`]). [`WorkSplit`]
//! shares an evaluation among data-parallel ranks through a gather callback.

mod choice;
mod cider;
mod error;
mod harness;
mod prompt;
mod ptb;
mod split;
mod tasks;
mod vqa;

pub use choice::{ChoiceResult, Majority, argmax, forced_choice, majority};
pub use cider::{CIDER_N, CIDER_SIGMA, CiderScores, cider_d};
pub use error::EvalError;
pub use harness::{
    EvalOptions, EvalReport, Generate, LogLikelihood, Prediction, ShotResult, TaskResult, evaluate_tasks,
    evaluate_tasks_split, primary_metric, score, write_eval_json,
};
pub use prompt::{
    Prompt, PromptTemplate, Segment, ZeroShot, build_prompt, demo_indices, postprocess, tokenize_prompt,
};
pub use ptb::ptb_tokenize;
pub use split::{GatherJson, OwnedResults, WorkSplit};
pub use tasks::{
    AnswerScheme, EvalItem, EvalTask, TaskKind, load_coco_captions, load_synth_jsonl, load_vqav2,
    split_support,
};
pub use vqa::{
    alternatives_accuracy, alternatives_exact_match, exact_match, normalize_answer, process_digit_article,
    process_punctuation, vqa_accuracy,
};
