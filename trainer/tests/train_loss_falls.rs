//! A short run on synthetic data: the loss falls, and the run folder holds what the docs
//! promise (resolved config, metrics.jsonl with step+loss per step, TensorBoard, checkpoint,
//! held-out loss per source).

mod train_support;

use mm1_trainer::run::{RunOptions, train};
use train_support::*;

#[test]
fn loss_falls_and_run_folder_is_complete() {
    let tmp = tempfile::tempdir().unwrap();
    let synth = tmp.path().join("synth");
    let file = tiny_run_file(tmp.path(), &synth, 40, "");
    let loaded = load(&file, &["eval.every=40", "eval.batches=2"]);
    let run_dir = tmp.path().join("run");
    let opts = RunOptions { run_dir: Some(run_dir.clone()), ..RunOptions::default() };
    let s = train(&loaded, &opts).unwrap();

    assert_eq!((s.start_step, s.end_step, s.skipped_steps), (0, 40, 0));
    let first: f64 = s.losses[..5].iter().map(|l| l.1).sum::<f64>() / 5.0;
    let last: f64 = s.losses[35..].iter().map(|l| l.1).sum::<f64>() / 5.0;
    // Initial loss is about ln(320) = 5.77; the synthetic captions are very regular.
    assert!(first > 5.0, "first losses {first}");
    assert!(last < first - 1.5, "loss did not fall: first 5 mean {first:.3}, last 5 mean {last:.3}");

    // metrics.jsonl: every step, with the same loss the loop returned.
    let logged = logged_losses(&run_dir);
    assert_eq!(logged.len(), s.losses.len());
    for (l, r) in logged.iter().zip(&s.losses) {
        assert_eq!(l.0, r.0);
        assert!((l.1 - r.1).abs() <= 1e-12 * r.1.abs(), "step {}: logged {} vs {}", l.0, l.1, r.1);
    }
    // training loss per source: logged when the source had scored tokens in the step
    let lines = mm1_trainer::logging::read_metrics_jsonl(&run_dir.join("metrics.jsonl")).unwrap();
    for name in ["caption", "interleaved", "text"] {
        let key = format!("loss/{name}");
        let vals: Vec<f64> = lines.iter().filter_map(|l| l.get(&key)?.as_f64()).collect();
        assert!(vals.len() >= 10, "{key} logged on {} of 40 steps", vals.len());
        assert!(vals.iter().all(|v| v.is_finite() && *v > 0.0), "{key}: {vals:?}");
    }
    // held-out loss per source, below the initial loss
    let names: Vec<&str> = s.eval.iter().map(|e| e.0.as_str()).collect();
    assert_eq!(names, ["caption", "text"]);
    assert!(s.eval.iter().all(|e| e.1.is_finite() && e.1 < first), "{:?}", s.eval);
    // resolved config, TensorBoard events, the final checkpoint
    assert!(run_dir.join("config.toml").is_file());
    let events = mm1_trainer::logging::event_files(&run_dir).unwrap();
    assert_eq!(events.len(), 1);
    let log = mm1_trainer::logging::read_event_file(&events[0]).unwrap();
    let tb: Vec<(i64, f32)> = log.scalars["loss"].clone();
    assert_eq!(tb.len(), 40);
    assert_eq!((tb[39].0, tb[39].1), (40, s.losses[39].1 as f32));
    assert_eq!(log.scalars["eval/loss/text"].len(), 1);
    assert!(run_dir.join("checkpoints/step-00000040/state.json").is_file());
}

#[test]
fn moe_run_logs_expert_load_and_aux_loss() {
    let tmp = tempfile::tempdir().unwrap();
    let moe = "\n[model.llm.moe]\nnum_experts = 4\ntop_k = 2\nevery = 1\ncapacity_factor = 0.0\n";
    let file = tiny_run_file(tmp.path(), &tmp.path().join("synth"), 4, "");
    // The MoE table belongs to [model.llm]: append it as its own section after the others.
    let text = std::fs::read_to_string(&file).unwrap() + moe;
    std::fs::write(&file, text).unwrap();
    let run_dir = tmp.path().join("run");
    let s = train(&load(&file, &[]), &RunOptions { run_dir: Some(run_dir.clone()), ..Default::default() })
        .unwrap();
    assert_eq!(s.end_step, 4);
    let lines = mm1_trainer::logging::read_metrics_jsonl(&run_dir.join("metrics.jsonl")).unwrap();
    let l = &lines[0];
    assert!(l["aux_loss"].as_f64().unwrap() > 0.0, "{l:?}");
    let max = l["moe/layer0/max_over_mean"].as_f64().unwrap();
    let min = l["moe/layer0/min_over_mean"].as_f64().unwrap();
    assert!(max >= 1.0 && (0.0..=1.0).contains(&min), "{max} {min}");
}
