//! Evaluation: caption and VQA metrics, few-shot prompting and the evaluation harness.
//!
//! Metrics follow the reference implementations the MM1 paper's numbers come from: CIDEr-D as
//! pycocoevalcap computes it (after its PTB tokenisation), VQA accuracy with the official VQAv2 answer
//! normalisation. Parity with the references is checked by `trainer/tests/eval_metrics.rs` on committed
//! fixtures (`scripts/eval_make_*_fixture.py`).

mod cider;
mod error;
mod ptb;
mod vqa;

pub use cider::{CIDER_N, CIDER_SIGMA, CiderScores, cider_d};
pub use error::EvalError;
pub use ptb::ptb_tokenize;
pub use vqa::{exact_match, normalize_answer, process_digit_article, process_punctuation, vqa_accuracy};
