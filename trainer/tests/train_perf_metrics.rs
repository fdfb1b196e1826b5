//! Live throughput (issue #16 item 6): the logged `perf/tflops` is the planner's FLOPs of the
//! step divided by the logged step time, `perf/mfu` is it in percent of
//! `train.device_peak_tflops`, and `perf/tokens_per_s` is the rank's positions per second.
//! Values are recomputed from the logged step time and image rate, never compared with wall
//! time.

mod train_support;

use mm1_trainer::plan::{self, PerfMeter, PlanOptions};
use mm1_trainer::run::{RunOptions, train};
use train_support::*;

#[test]
fn logged_tflops_equal_planner_flops_over_step_time() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tiny_run_file(tmp.path(), &tmp.path().join("synth"), 3, "");
    let loaded = load(&file, &["train.device_peak_tflops=2.5", "optim.grad_accum=2"]);
    let cfg = &loaded.config;
    let run_dir = tmp.path().join("run");
    train(&loaded, &RunOptions { run_dir: Some(run_dir.clone()), ..RunOptions::default() }).unwrap();

    let meter = PerfMeter::new(cfg);
    let lines = mm1_trainer::logging::read_metrics_jsonl(&run_dir.join("metrics.jsonl")).unwrap();
    assert_eq!(lines.len(), 3);
    for l in &lines {
        let get = |k: &str| l[k].as_f64().unwrap_or_else(|| panic!("{k} missing in {l:?}"));
        let dt = get("step_time_s");
        let images = (get("images_per_s") * dt).round() as usize;
        let want = meter.step_flops(images) / dt / 1e12;
        let rel = |a: f64, b: f64| (a - b).abs() / b.abs();
        assert!(rel(get("perf/tflops"), want) < 1e-9, "tflops {} vs {want}", get("perf/tflops"));
        assert!(rel(get("perf/mfu"), 100.0 * want / 2.5) < 1e-9, "mfu {}", get("perf/mfu"));
        let positions = (cfg.data.batch_size * cfg.data.seq_len * 2) as f64;
        assert!(rel(get("perf/tokens_per_s"), positions / dt) < 1e-9);
    }
    // the same keys in TensorBoard, every step
    let events = mm1_trainer::logging::event_files(&run_dir).unwrap();
    let log = mm1_trainer::logging::read_event_file(&events[0]).unwrap();
    assert_eq!(log.scalars["perf/tflops"].len(), 3);
    assert_eq!(log.scalars["perf/mfu"].len(), 3);
}

#[test]
fn meter_flops_equal_the_plan_and_mfu_needs_a_peak() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tiny_run_file(tmp.path(), &tmp.path().join("synth"), 3, "");
    let cfg = load(&file, &["optim.grad_accum=3"]).config;
    // a step whose sequences each hold `max_images_per_seq` images is what the plan assumes
    let p = plan::plan(&cfg, &PlanOptions::default()).unwrap();
    let images = cfg.data.batch_size * cfg.data.max_images_per_seq * 3;
    assert_eq!(PerfMeter::new(&cfg).step_flops(images), p.step_flops_total());
    let keys: Vec<String> = PerfMeter::new(&cfg).values(images, 0.5).into_iter().map(|(k, _)| k).collect();
    assert_eq!(keys, ["perf/tokens_per_s", "perf/tflops"], "no perf/mfu without train.device_peak_tflops");
}
