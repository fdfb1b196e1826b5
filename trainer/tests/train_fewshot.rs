//! Few-shot evaluation inside the training loop (`[eval.fewshot]`): scores logged every N steps
//! and at the end, `eval.json` + `eval/step-N.json` written, and the final scores equal
//! `mm1-eval`'s path (checkpoint loaded from disk, same protocol).

mod train_support;

use burn::tensor::Device;
use mm1_trainer::eval::{fewshot_eval, synth_tasks};
use mm1_trainer::run::{RunOptions, train};
use train_support::*;

#[test]
fn fewshot_scores_are_logged_and_match_a_standalone_eval_of_the_checkpoint() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tiny_run_file(tmp.path(), &tmp.path().join("synth"), 4, "");
    let sets = [
        "eval.fewshot.every=2",
        "eval.fewshot.shots=[0, 1]",
        "eval.fewshot.support_size=2",
        "eval.fewshot.limit=2",
        "eval.fewshot.max_new_tokens=4",
        "eval.fewshot.seed=5",
    ];
    let loaded = load(&file, &sets);
    let run_dir = tmp.path().join("run");
    let s = train(&loaded, &RunOptions { run_dir: Some(run_dir.clone()), ..Default::default() }).unwrap();

    // 1. logged at steps 2 and 4, every task x shot x metric with its baselines (no average over shots)
    let lines = mm1_trainer::logging::read_metrics_jsonl(&run_dir.join("metrics.jsonl")).unwrap();
    let key = "fewshot/synth_captions/0shot/cider";
    let steps: Vec<u64> =
        lines.iter().filter(|l| l.contains_key(key)).map(|l| l["step"].as_u64().unwrap()).collect();
    assert_eq!(steps, [2, 4]);
    for k in [
        "fewshot/synth_vqa_counting/0shot/vqa_accuracy",
        "fewshot/synth_vqa_counting/1shot/vqa_accuracy",
        "fewshot/synth_vqa_counting/1shot/vqa_accuracy_blank",
        "fewshot/synth_vqa_counting/majority/vqa_accuracy",
        "fewshot/synth_captions/0shot/cider_blank",
        "fewshot/synth_captions/majority/cider",
    ] {
        assert!(lines[3].contains_key(k), "step 4 line lacks {k}: {:?}", lines[3].keys());
    }
    assert!(lines[3].keys().all(|k| !k.contains("/avg/")));
    // 2. files: latest and per step
    assert!(run_dir.join("eval/step-2.json").is_file());
    let latest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run_dir.join("eval.json")).unwrap()).unwrap();
    assert_eq!(latest["step"], 4);
    assert_eq!(latest["protocol"]["seed"], 5);
    // 3. the same protocol on the saved checkpoint gives the same scores
    let device = Device::flex();
    let (model, cfg) = mm1_trainer::generate::load_checkpoint(&run_dir, &device).unwrap();
    let opts = cfg.eval.fewshot.options().unwrap();
    let tasks = synth_tasks(&cfg, cfg.eval.fewshot.support_size).unwrap();
    let standalone = fewshot_eval(&model, &cfg, &tasks, &opts, Some(4), &device).unwrap();
    assert_eq!(s.fewshot.len(), standalone.scores.len());
    for (k, v) in &s.fewshot {
        let want = standalone.scores[k.strip_prefix("fewshot/").unwrap()];
        assert!((v - want).abs() < 1e-12, "{k}: in-loop {v} vs standalone {want}");
    }
}

#[test]
fn fewshot_settings_are_checked_before_training() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tiny_run_file(tmp.path(), &tmp.path().join("synth"), 4, "");
    let src = |sets: &[&str]| {
        let mut c = mm1_trainer::config::ConfigSources::new(&file);
        for s in sets {
            c = c.set(*s);
        }
        c.load().unwrap_err().to_string()
    };
    let e = src(&["eval.fewshot.every=2", "eval.fewshot.shots=[0, 8]", "eval.fewshot.support_size=4"]);
    assert!(e.contains("eval.fewshot.shots") && e.contains("support_size"), "{e}");
    let e = src(&["eval.fewshot.every=2", "eval.fewshot.zero_shot=\"text demos\""]);
    assert!(e.contains("eval.fewshot.zero_shot") && e.contains("text-demos:N"), "{e}");
}

#[test]
fn prompts_longer_than_the_context_stop_the_run_before_step_0() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tiny_run_file(tmp.path(), &tmp.path().join("synth"), 4, "");
    // 8 demonstrations of 4 image tokens + text each overflow max_seq_len = 64.
    let sets = [
        "data.synth.eval_vqa=12",
        "data.synth.eval_captions=12",
        "eval.fewshot.every=2",
        "eval.fewshot.shots=[0, 8]",
        "eval.fewshot.support_size=8",
    ];
    let run_dir = tmp.path().join("run");
    let opts = RunOptions { run_dir: Some(run_dir.clone()), ..Default::default() };
    let err = train(&load(&file, &sets), &opts).unwrap_err().to_string();
    assert!(err.contains("8-shot prompts reach") && err.contains("eval.fewshot.shots"), "{err}");
    assert!(!run_dir.join("metrics.jsonl").exists(), "no step may run before the check");
}
