//! Study statistics of `mm1-report`: the t interval and the item bootstrap against known values, the
//! "effect" / "not separated" wording on constructed sweeps, and the fields of `runs.jsonl`.

use std::path::Path;

use mm1_sweep::report::{
    Interval, bootstrap_interval, collect, runs_jsonl, study, t_cdf, t_interval, t_quantile, verdict,
    write_report,
};
use mm1_sweep::{plan_file, write_plan};

/// scipy 1.x: `python -c "import scipy.stats as s; print([float(s.t.ppf(0.975, d)) for d in (1, 2, 3, 4, 9, 29)])"`
const T975: [(f64, f64); 6] = [
    (1.0, 12.706204736174694),
    (2.0, 4.302652729749462),
    (3.0, 3.1824463052837078),
    (4.0, 2.7764451051977934),
    (9.0, 2.262157162798205),
    (29.0, 2.045229642132703),
];

#[test]
fn t_quantiles_match_scipy() {
    for (df, want) in T975 {
        let got = t_quantile(0.975, df);
        assert!((got - want).abs() < 1e-9, "df {df}: {got} vs scipy {want}");
        assert!((t_quantile(0.025, df) + want).abs() < 1e-9);
    }
    // python -c "import scipy.stats as s; print(float(s.t.cdf(1.5, 3)))"
    assert!((t_cdf(1.5, 3.0) - 0.8847080673775886).abs() < 1e-12);
    assert!((t_cdf(-1.5, 3.0) - (1.0 - 0.8847080673775886)).abs() < 1e-12);
}

#[test]
fn t_interval_of_four_seeds() {
    // mean 2.5, s = sqrt(5/3), half width = t(0.975, 3) * s / 2.
    let i = t_interval(&[1.0, 2.0, 3.0, 4.0]).unwrap();
    let half = 3.1824463052837078 * (5.0f64 / 3.0).sqrt() / 2.0;
    assert_eq!(i.n, 4);
    assert!((i.mean - 2.5).abs() < 1e-12);
    assert!((i.lo - (2.5 - half)).abs() < 1e-9 && (i.hi - (2.5 + half)).abs() < 1e-9, "{i:?}");
    assert!(t_interval(&[0.7]).is_none(), "one seed has no interval");
}

#[test]
fn bootstrap_is_deterministic_and_close_to_the_normal_interval() {
    // 400 items, half right: the normal approximation gives 0.5 ± 1.96 * sqrt(0.25 / 400) = ± 0.049.
    let items: Vec<f64> = (0..400).map(|i| f64::from(u8::from(i % 2 == 0))).collect();
    let a = bootstrap_interval(&items, 2000, 7).unwrap();
    assert_eq!(a, bootstrap_interval(&items, 2000, 7).unwrap(), "same seed, same interval");
    assert_eq!(a.mean, 0.5);
    assert!((a.hi - 0.549).abs() < 0.006 && (a.lo - 0.451).abs() < 0.006, "{a:?}");
    let b = bootstrap_interval(&items, 2000, 8).unwrap();
    assert_ne!(a, b, "another seed draws other resamples");
    // Constant items: no spread at all.
    let c = bootstrap_interval(&[0.25; 50], 500, 1).unwrap();
    assert_eq!((c.lo, c.mean, c.hi), (0.25, 0.25, 0.25));
}

#[test]
fn wording_follows_the_interval() {
    let i = |lo, hi| Interval { mean: (lo + hi) / 2.0, lo, hi, n: 4 };
    assert_eq!(verdict(Some(&i(0.01, 0.2))), "effect");
    assert_eq!(verdict(Some(&i(-0.3, -0.02))), "effect");
    assert_eq!(verdict(Some(&i(-0.01, 0.2))), "not separated");
    assert_eq!(verdict(Some(&i(0.0, 0.2))), "not separated", "an end at 0 does not exclude it");
    assert_eq!(verdict(None), "not separated");
}

fn write(p: &Path, text: &str) {
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, text).unwrap();
}

/// An `eval.json` with one closed-set task scored `score` (and `n` items, the first `round(score·n)`
/// right) and one caption task.
fn eval_json(score: f64, n: usize) -> String {
    let right = (score * n as f64).round() as usize;
    let items: Vec<String> = (0..n).map(|i| if i < right { "1.0".into() } else { "0.0".into() }).collect();
    format!(
        r#"{{"scores": {{}}, "tasks": [
        {{"name": "synth_vqa_colour", "kind": "vqa", "gate": "resolution", "primary_metric": "vqa_accuracy",
          "results": [{{"shots": 0, "metrics": {{"vqa_accuracy": 0.1}}, "item_scores": []}}],
          "choice": {{"accuracy": {score}, "item_scores": [{}], "blank_accuracy": 0.2}},
          "majority": {{"answer": "red", "metrics": {{"vqa_accuracy": 0.25, "choice_accuracy": 0.25}}}}}},
        {{"name": "synth_captions", "kind": "caption", "gate": null, "primary_metric": "cider",
          "results": [{{"shots": 0, "metrics": {{"cider": 0.3}}, "item_scores": [0.2, 0.4],
                        "blank_metrics": {{"cider": 0.1}}}}],
          "choice": null, "majority": {{"answer": "x", "metrics": {{"cider": 0.05}}}}}}]}}"#,
        items.join(", ")
    )
}

#[test]
fn paired_differences_are_read_from_their_intervals_and_runs_jsonl_has_every_field() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    write(&root.join("base.toml"), "[model.vision]\nimage_size = 32\n");
    write(
        &root.join("s.toml"),
        "name = \"res\"\nbase = \"base.toml\"\nseeds = [0, 1, 2, 3]\n[axes]\n\"model.vision.image_size\" = [32, 48, 64]\n",
    );
    let plan = plan_file(&root.join("s.toml")).unwrap();
    assert_eq!(plan.arms.len(), 3);
    let out = root.join("sweep");
    write_plan(&plan, &out).unwrap();
    // Control 0.50 + 0.01·seed; 48 px adds 0.10/0.12/0.08/0.11 (an effect); 64 px adds
    // 0.10/-0.10/0.05/-0.04 (not separated).
    let add = |arm: &str, seed: u64| match arm {
        "image_size-48" => [0.10, 0.12, 0.08, 0.11][seed as usize],
        "image_size-64" => [0.10, -0.10, 0.05, -0.04][seed as usize],
        _ => 0.0,
    };
    for r in &plan.runs {
        let score = 0.5 + 0.01 * r.seed as f64 + add(&plan.arms[r.arm].name, r.seed);
        let run = out.join(&r.run_id);
        write(&run.join("eval.json"), &eval_json(score, 100));
        write(&run.join("done.json"), "{\"wall_time_s\": 1.0}");
    }
    let data = collect(&out).unwrap();
    let st = study(&data);
    assert_eq!(st.control, Some(0));
    let diff = |arm: &str, task: &str| {
        let a = plan.arms.iter().position(|x| x.name == arm).unwrap();
        st.diffs.iter().find(|d| d.arm == a && d.task == task).unwrap().clone()
    };
    let d48 = diff("image_size-48", "synth_vqa_colour");
    let s = d48.by_seed.unwrap();
    // Differences 0.10, 0.12, 0.08, 0.11: mean 0.1025, s = 0.017078, half = 3.18245·s/2 = 0.027175.
    assert!((s.mean - 0.1025).abs() < 1e-9, "{s:?}");
    assert!((s.hi - s.mean - 3.1824463052837078 * 0.017078251276599 / 2.0).abs() < 1e-6, "{s:?}");
    assert_eq!((d48.verdict, d48.seeds_used.len()), ("effect", 4));
    // Item differences: 10 more right items of 100 at every seed, except 12, 8, 11.
    assert!((d48.by_item.unwrap().mean - 0.1025).abs() < 1e-9);
    let d64 = diff("image_size-64", "synth_vqa_colour");
    assert_eq!(d64.verdict, "not separated", "{:?}", d64.by_seed);
    assert!(d64.by_seed.unwrap().lo < 0.0 && d64.by_seed.unwrap().hi > 0.0);
    // Captions: the same in every arm, no spread: a zero-width interval at 0 is not an effect.
    assert_eq!(diff("image_size-48", "synth_captions").verdict, "not separated");
    let ctrl = st.per_arm.iter().find(|t| t.arm == 0 && t.task == "synth_vqa_colour").unwrap();
    assert_eq!(
        (ctrl.gate.as_deref(), ctrl.metric.as_str(), ctrl.n_items),
        (Some("resolution"), "choice_accuracy", 100)
    );
    assert!((ctrl.mean - 0.515).abs() < 1e-12);
    assert_eq!((ctrl.blank_image, ctrl.majority), (Some(0.2), Some(0.25)));

    // runs.jsonl: one line per (run, task) with every field.
    let lines: Vec<serde_json::Value> =
        runs_jsonl(&data).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 3 * 4 * 2);
    let l = lines
        .iter()
        .find(|l| {
            l["arm"]["model.vision.image_size"] == 48 && l["seed"] == 2 && l["task"] == "synth_vqa_colour"
        })
        .unwrap();
    assert_eq!(l["study"], "res");
    assert_eq!((l["gate"].as_str(), l["metric"].as_str()), (Some("resolution"), Some("choice_accuracy")));
    assert!((l["score"].as_f64().unwrap() - 0.60).abs() < 1e-12);
    assert_eq!((l["n_items"].as_u64(), l["blank_image_score"].as_f64()), (Some(100), Some(0.2)));
    assert_eq!(l["majority_score"].as_f64(), Some(0.25));
    let cap = lines.iter().find(|l| l["task"] == "synth_captions").unwrap();
    // A task built for no gate (captions, the scene tasks) says so: null, not "none" (a control).
    assert!(cap["gate"].is_null(), "{cap}");
    assert_eq!(cap["metric"].as_str(), Some("cider"));
    assert_eq!((cap["blank_image_score"].as_f64(), cap["majority_score"].as_f64()), (Some(0.1), Some(0.05)));

    // report.md carries the wording and runs.jsonl lies beside it.
    write_report(&data).unwrap();
    let md = std::fs::read_to_string(out.join("report.md")).unwrap();
    let row = md.lines().find(|l| l.starts_with("| synth_vqa_colour | image_size-48 |")).unwrap();
    assert!(row.ends_with("| 4 | effect |"), "{row}");
    let row = md.lines().find(|l| l.starts_with("| synth_vqa_colour | image_size-64 |")).unwrap();
    assert!(row.ends_with("| 4 | not separated |"), "{row}");
    assert!(out.join("runs.jsonl").is_file());
}
