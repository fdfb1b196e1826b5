//! Evaluation of an `Mm1Model`: the tensor-free harness, metrics and tasks of `mm1-eval`
//! (re-exported here), run on the model by [`fewshot_eval`]; [`eval_during_training`] is the
//! hook of the training loop.

mod model;

pub use mm1_eval::*;
pub use model::{
    check_prompt_lengths, eval_during_training, fewshot_eval, fewshot_eval_split, log_likelihoods,
    synth_tasks,
};
