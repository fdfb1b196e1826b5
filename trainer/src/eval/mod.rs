//! Evaluation of an `Mm1Model`, all of it: the tensor-free harness, metrics and tasks of
//! `mm1-eval` (re-exported here) run on the model by [`fewshot_eval`], and the held-out loss per
//! source ([`heldout`]). [`eval_during_training`] is the few-shot hook of the training loop;
//! when the loop calls either is `run/evals.rs`.

pub mod heldout;
mod model;

pub use mm1_eval::*;
pub use model::{
    check_prompt_lengths, eval_during_training, fewshot_eval, fewshot_eval_split, log_likelihoods,
    synth_tasks,
};
