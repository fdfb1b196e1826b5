//! `[eval]`: held-out loss per source, and `[eval.fewshot]`: the few-shot benchmark (0/4/8-shot
//! captioning CIDEr-D and VQA accuracy) run inside the training loop.

use serde::{Deserialize, Serialize};

use mm1_eval::{EvalOptions, ZeroShot};

/// `[eval]`: held-out loss per source. The held-out shards themselves are
/// `[[data.eval.sources]]` (the data crate reads them).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EvalConfig {
    /// Evaluate the held-out loss every this many steps (and at the end); `0` turns it off.
    pub every: u64,
    /// Batches per evaluation.
    pub batches: usize,
    /// `[eval.fewshot]`.
    pub fewshot: FewshotConfig,
}

impl Default for EvalConfig {
    fn default() -> Self {
        Self { every: 1000, batches: 20, fewshot: FewshotConfig::default() }
    }
}

/// `[eval.fewshot]`: the synthetic benchmark's eval sets (or `data.eval.vqa` / `data.eval.captions`)
/// prompted with k demonstrations, scored, logged as `fewshot/<task>/<k>shot/<metric>` and written to
/// `eval.json` (latest) and `eval/step-N.json`. The same keys as a sweep's `[eval]` and the flags of
/// `mm1-eval`, so a run's in-loop scores and a finished checkpoint's scores use one protocol.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FewshotConfig {
    /// Evaluate every this many steps (and at the end); `0` turns it off. Generation is slower
    /// than the held-out loss, so this is usually a multiple of `eval.every`.
    pub every: u64,
    /// Demonstration counts (MM1: 0, 4, 8).
    pub shots: Vec<usize>,
    /// 0-shot protocol: `plain` (the query alone) or `text-demos:N` (N demonstrations without their
    /// images, Flamingo's protocol).
    pub zero_shot: String,
    /// Items of each eval set kept aside as the demonstration pool.
    pub support_size: usize,
    /// Longest generated continuation.
    pub max_new_tokens: usize,
    /// Queries per task (0: all).
    pub limit: usize,
    /// Tasks also scored at the shot counts above 0 (empty: every task); the others get their
    /// 0-shot scores only.
    pub fewshot_tasks: Vec<String>,
    /// Seed of the demonstration draws (recorded in `eval.json`).
    pub seed: u64,
}

impl Default for FewshotConfig {
    fn default() -> Self {
        Self {
            every: 0,
            shots: vec![0, 4, 8],
            zero_shot: "plain".into(),
            support_size: 8,
            max_new_tokens: 24,
            limit: 0,
            fewshot_tasks: vec![],
            seed: 0,
        }
    }
}

impl FewshotConfig {
    /// The harness options; `Err` names what is wrong with `zero_shot`.
    pub fn options(&self) -> Result<EvalOptions, String> {
        Ok(EvalOptions {
            shots: self.shots.clone(),
            zero_shot: ZeroShot::parse(&self.zero_shot)?,
            seed: self.seed,
            limit: (self.limit > 0).then_some(self.limit),
            max_new_tokens: self.max_new_tokens,
            fewshot_tasks: self.fewshot_tasks.clone(),
            ..EvalOptions::default()
        })
    }

    /// Whether the few-shot evaluation runs after `step` of `total`.
    pub fn due(&self, step: u64, total: u64) -> bool {
        self.every > 0 && (step.is_multiple_of(self.every) || step == total)
    }
}
