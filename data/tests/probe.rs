//! Gated tasks against the loader's own resize: the 1-px stripes of `stripes` are gone after the
//! 2x downscale (the two orientations give the same pixels), so the raw-pixel probe is at chance
//! there and near 1 at the native size, while the control (the colour of a flat patch) reads at
//! both.

use mm1_data::image::preprocess;
use mm1_data::probe::{ProbeConfig, probe};
use mm1_data::synth::{GATED_TASKS, GatedScene, GatedTask};
use mm1_data::{ResizeMode, SynthConfig, synth};

fn pixels(scene: &GatedScene, native: usize, resolution: usize) -> Vec<f32> {
    preprocess(&scene.render(native).encode_png(), resolution, ResizeMode::ShortestSideCrop, u64::MAX)
        .unwrap()
}

/// Largest difference, in 8-bit grey levels, between two preprocessed images.
fn max_levels(a: &[f32], b: &[f32]) -> f32 {
    // CLIP normalisation divides by the channel's std after scaling to [0, 1]: one level is
    // 1 / (255 * std), largest in the channel with the smallest std.
    let std = mm1_data::image::CLIP_STD.iter().copied().fold(f32::INFINITY, f32::min);
    let level = 1.0 / (255.0 * std);
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max) / level
}

#[test]
fn thin_stripes_vanish_at_half_resolution_and_a_tint_does_not() {
    let n = 64;
    // (x0, y0, side, background, contrast): the benchmark's whole frame (generator 7), and squares
    // at even places.
    let cases = [
        (0, 0, n, [128, 128, 128], 90),
        (0, 0, n, [100, 156, 120], 60),
        (0, 0, 32, [128, 128, 128], 90),
        (16, 8, 32, [100, 130, 156], 60),
        (32, 32, 32, [156, 140, 101], 75),
    ];
    for (x0, y0, side, bg, contrast) in cases {
        let scene =
            |horizontal| GatedScene::Stripes { horizontal, x0, y0, w: side, h: side, bg, contrast, grain: 7 };
        let (h, v) = (scene(true), scene(false));
        // Native size: the orientations differ by twice the contrast (less the ramp) somewhere.
        assert!(max_levels(&pixels(&h, n, n), &pixels(&v, n, n)) > contrast as f32);
        // Half: nothing is left of the orientation (at most one level of rounding).
        let d = max_levels(&pixels(&h, n, n / 2), &pixels(&v, n, n / 2));
        assert!(d <= 1.01, "thin stripes at {x0},{y0}: orientations differ by {d} levels at {}", n / 2);
        // Two tints of the control's patch stay the tints' gap (96 levels) apart at half size.
        let patch = |tint| GatedScene::Patch { tint, x0, y0, side, bg: bg[0], grain: 7 };
        let d = max_levels(&pixels(&patch(0), n, n / 2), &pixels(&patch(2), n, n / 2));
        assert!(d > 90.0, "patch at {x0},{y0}: tints only {d} levels apart at {}", n / 2);
    }
}

/// Mean of the preprocessed `[3, r, r]` pixels over each cell of a `k`x`k` grid: what average
/// pooling to `k * k` tokens keeps of pixels that every patch passes on unchanged.
fn pooled(x: &[f32], r: usize, k: usize) -> Vec<f32> {
    let cell = r / k;
    let mut out = vec![0.0; 3 * k * k];
    for (i, v) in x.iter().enumerate() {
        let (c, y, xx) = (i / (r * r), (i / r) % r, i % r);
        out[c * k * k + (y / cell) * k + xx / cell] += v / (cell * cell) as f32;
    }
    out
}

/// The token gate by construction: moving the coloured row to another row of the same half
/// leaves every 2x2 (4-token) average of the pixels unchanged and changes the 8x8 (64-token) one;
/// its colour changes both.
#[test]
fn row_index_survives_64_tokens_not_4_and_its_colour_survives_both() {
    let n = 64;
    let scene = |row: usize, colour: usize, ask_index: bool| GatedScene::ColouredRow {
        greys: vec![128; 64],
        row,
        colour,
        ask_index,
    };
    let px = |s: &GatedScene| pixels(s, n, n);
    // Rows 0 and 2: the same top half.
    let (a, b, other_colour) = (px(&scene(0, 0, true)), px(&scene(2, 0, true)), px(&scene(0, 2, true)));
    let gap = |k: usize, x: &[f32], y: &[f32]| {
        pooled(x, n, k).iter().zip(pooled(y, n, k)).map(|(p, q)| (p - q).abs()).fold(0.0, f32::max)
    };
    assert!(gap(2, &a, &b) < 1e-5, "4 tokens: rows apart by {}", gap(2, &a, &b));
    assert!(gap(8, &a, &b) > 0.5, "64 tokens: rows apart by only {}", gap(8, &a, &b));
    assert!(gap(2, &a, &other_colour) > 0.05, "4 tokens lose the colour: {}", gap(2, &a, &other_colour));
    assert_eq!(scene(2, 0, true).question().answers, ["third"]);
    let colour = scene(2, 0, false);
    assert_eq!(colour.question().answers, ["red"]);
    assert_eq!(colour.task().gate, "none");
}

#[test]
fn probe_certifies_the_resolution_gate_and_its_control() {
    let run = |task: GatedTask, resolution| {
        let cfg = ProbeConfig { train: 300, test: 200, steps: 100, ..ProbeConfig::new(task, 64, resolution) };
        probe(&cfg).unwrap()
    };
    let [stripes, colour, _, _] = GATED_TASKS;
    let high = run(stripes, 64);
    let low = run(stripes, 32);
    assert!(high.test_accuracy >= 0.95, "stripes at 64: {high:?}");
    // Chance is 0.5; 200 test items give a binomial standard error of 0.035.
    assert!((low.test_accuracy - 0.5).abs() < 0.1, "stripes at 32: {low:?}");
    for r in [64, 32] {
        // A linear read-out of 12k pixels from 300 scenes overfits a little (train accuracy 1.0,
        // held-out about 0.93): the point is that both resolutions are far above chance.
        let c = run(colour, r);
        assert!(c.test_accuracy >= 0.85, "patch_colour at {r}: {c:?}");
        // Four tints: the majority answer is near 0.25.
        assert!(c.majority_accuracy < 0.4);
    }
}

/// The eval set's gated items carry their gate, and images of gated scenes are PNG.
#[test]
fn eval_items_carry_their_gate() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = SynthConfig {
        image_size: 64,
        samples_per_shard: 4,
        eval_vqa: 16,
        eval_captions: 2,
        ..SynthConfig::small(dir.path(), 0)
    };
    let out = synth::generate(&cfg).unwrap();
    let rows: Vec<serde_json::Value> = std::fs::read_to_string(&out.vqa)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let tasks: Vec<&str> = rows.iter().map(|r| r["task"].as_str().unwrap()).collect();
    // Scene tasks fall back to counting when a scene has no unique shape; the gated ones never do.
    assert_eq!(tasks[4..8], synth::VQA_ROTATION[4..]);
    assert_eq!(tasks[12..16], synth::VQA_ROTATION[4..]);
    for r in &rows {
        let (task, image) = (r["task"].as_str().unwrap(), r["image"].as_str().unwrap());
        match GatedTask::by_name(task) {
            Some(t) => {
                assert_eq!(r["gate"], t.gate, "{r}");
                assert!(image.ends_with(".png"), "{r}");
                assert!(t.classes().contains(&r["answers"][0].as_str().unwrap()), "{r}");
            }
            None => assert!(r.get("gate").is_none() && image.ends_with(".jpg"), "{r}"),
        }
    }
    let gates: Vec<&str> = rows.iter().filter_map(|r| r["gate"].as_str()).collect();
    for g in ["resolution", "none", "tokens"] {
        assert!(gates.contains(&g), "{g}");
    }
}

/// `mm1-data probe` prints one JSON object per task with the documented fields, and names a task
/// it does not know.
#[test]
fn probe_cli_prints_json_per_task() {
    let bin = env!("CARGO_BIN_EXE_mm1-data");
    let args = ["probe", "--resolution", "32", "--train", "120", "--test", "80", "--steps", "60"];
    let out = std::process::Command::new(bin).args(args).args(["--task", "patch_colour"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let lines: Vec<serde_json::Value> =
        String::from_utf8(out.stdout).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 1);
    let v = &lines[0];
    assert_eq!((v["task"].as_str(), v["gate"].as_str()), (Some("patch_colour"), Some("none")));
    assert_eq!((v["native"].as_u64(), v["resolution"].as_u64()), (Some(64), Some(32)));
    assert_eq!((v["n_train"].as_u64(), v["n_test"].as_u64()), (Some(120), Some(80)));
    assert_eq!(v["classes"], serde_json::json!(["red", "green", "blue", "yellow"]));
    assert!(v["test_accuracy"].as_f64().unwrap() >= 0.9, "{v}");
    let out = std::process::Command::new(bin).args(args).args(["--task", "digits"]).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a gated task"));
}
