//! End to end with the real binaries: a two-arm CPU sweep (control 48 px vs 32 px, cpu-tiny scale,
//! 12 steps) trained by `mm1-train`, evaluated by `mm1-eval`, reported by `mm1-report`; a second
//! `mm1-sweep run` finds both arms finished and starts nothing.

use std::path::Path;
use std::process::Command;

#[test]
fn two_tiny_arms_train_evaluate_and_report() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    // cpu-tiny names its synthetic data relative to the repository root.
    std::env::set_current_dir(root).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let sweep = dir.path().join("tiny.toml");
    std::fs::write(
        &sweep,
        format!(
            "name = \"tiny\"\nbase = \"configs/mm1-ablation-base.toml\"\noverlay = \"configs/scale/cpu-tiny.toml\"\n\
             seeds = [0]\nsteps = 12\ntrainer = [\"{}\"]\n\
             [set]\n\"schedule.warmup_steps\" = 2\n\"eval.every\" = 6\n\"checkpoint.every\" = 6\n\"log.progress\" = \"off\"\n\
             \"model.llm.max_seq_len\" = 512\n\
             [axes]\n\"model.vision.image_size\" = [32]\n\
             [eval]\nshots = [0, 1]\nsupport_size = 4\nlimit = 4\nmax_new_tokens = 8\ncommand = [\"{}\"]\n\
             fewshot_tasks = [\"synth_vqa_counting\", \"synth_captions\"]\n",
            env!("CARGO_BIN_EXE_mm1-train"),
            env!("CARGO_BIN_EXE_mm1-eval")
        ),
    )
    .unwrap();
    let out = dir.path().join("out");
    let sweep_bin = env!("CARGO_BIN_EXE_mm1-sweep");
    let run = |args: &[&str]| {
        let o = Command::new(sweep_bin).args(args).output().unwrap();
        assert!(
            o.status.success(),
            "{}\n{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    let first = run(&["run", sweep.to_str().unwrap(), "--out", out.to_str().unwrap()]);
    assert!(first.contains("2 runs, 0 already finished, 2 ran, 0 failed"), "{first}");
    let plan: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("sweep.json")).unwrap()).unwrap();
    for r in plan["runs"].as_array().unwrap() {
        let run_dir = out.join(r["run_id"].as_str().unwrap());
        let metrics = std::fs::read_to_string(run_dir.join("metrics.jsonl")).unwrap();
        assert_eq!(metrics.lines().count(), 12);
        let eval: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(run_dir.join("eval.json")).unwrap()).unwrap();
        assert_eq!(eval["step"], 12);
        assert!(eval["scores"]["synth_vqa_counting/1shot/vqa_accuracy"].is_number());
        // `fewshot_tasks`: the other tasks are scored 0-shot only.
        assert!(eval["scores"]["synth_vqa_colour/0shot/vqa_accuracy"].is_number());
        assert!(eval["scores"].get("synth_vqa_colour/1shot/vqa_accuracy").is_none());
        assert!(eval["scores"]["synth_vqa_counting/0shot/choice_accuracy_blank"].is_number());
        assert!(eval["scores"]["synth_captions/majority/cider"].is_number());
        // The resolved config of the arm carries its delta.
        let cfg = std::fs::read_to_string(run_dir.join("config.toml")).unwrap();
        let size = if r["arm"] == 0 { 48 } else { 32 };
        assert!(cfg.contains(&format!("image_size = {size}")), "{cfg}");
    }
    let second = run(&["run", sweep.to_str().unwrap(), "--out", out.to_str().unwrap()]);
    assert!(second.contains("2 runs, 2 already finished, 0 ran"), "{second}");

    let o = Command::new(env!("CARGO_BIN_EXE_mm1-report")).arg(&out).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let md = std::fs::read_to_string(out.join("report.md")).unwrap();
    for needle in [
        "| base |",
        "| image_size-32 |",
        "synth_vqa_counting/choice_accuracy",
        "## Paired differences against the control `base`",
        "eval/loss/caption",
        "plots/loss.svg",
        "image_size: 48 → 32",
    ] {
        assert!(md.contains(needle), "report.md lacks {needle:?}:\n{md}");
    }
    let loss = std::fs::read_to_string(out.join("plots/loss.svg")).unwrap();
    assert_eq!(loss.matches("<polyline").count(), 2);
    // runs.jsonl: one line per (run, task), the same tasks for both runs (captions and the
    // VQA tasks of the benchmark, whose list grows with it)
    let runs = std::fs::read_to_string(out.join("runs.jsonl")).unwrap();
    let mut per_run: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    for l in runs.lines() {
        let v: serde_json::Value = serde_json::from_str(l).unwrap();
        assert_eq!(v["study"], "tiny");
        assert!(v["arm"]["model.vision.image_size"].is_number() && v["score"].is_number(), "{l}");
        per_run.entry(v["arm"].to_string()).or_default().push(v["task"].as_str().unwrap().to_string());
    }
    assert_eq!(per_run.len(), 2, "{runs}");
    let tasks: Vec<&Vec<String>> = per_run.values().collect();
    assert_eq!(tasks[0], tasks[1], "both runs report the same tasks");
    assert!(tasks[0].contains(&"synth_captions".to_string()) && tasks[0].len() >= 5, "{runs}");
    assert!(std::fs::read_to_string(out.join("report.html")).unwrap().contains("<svg"));
}
