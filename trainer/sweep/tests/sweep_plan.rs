//! Sweep planning: run ids are a stable function of (delta, seed); one-at-a-time vs grid counts;
//! base values dedupe the control; bad sweep files fail with the key named.

use std::path::Path;

use mm1_sweep::{Mode, plan_file, run_id};
use toml::Value;

fn write(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

const BASE: &str =
    "[model.vision]\nimage_size = 224\n[model.connector]\nkind = \"c_abstractor\"\nnum_tokens = 144\n";

fn sweep(mode: &str, axes: &str) -> String {
    format!("base = \"base.toml\"\nmode = \"{mode}\"\nseeds = [0, 1]\n[axes]\n{axes}")
}

const AXES: &str =
    "\"model.vision.image_size\" = [224, 336, 448]\n\"model.connector.num_tokens\" = [64, 144, 256]\n";

#[test]
fn one_at_a_time_and_grid_counts() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "base.toml", BASE);
    let one = plan_file(&write(dir.path(), "one.toml", &sweep("one_at_a_time", AXES))).unwrap();
    // control + (3 - 1 at base) + (3 - 1 at base) arms.
    assert_eq!(one.mode, Mode::OneAtATime);
    assert_eq!(one.arms.len(), 5);
    assert_eq!(one.runs.len(), 10);
    assert_eq!(one.arms[0].name, "base");
    assert!(one.arms[0].delta.is_empty());
    assert_eq!(one.base_values["model.vision.image_size"], Some(Value::Integer(224)));
    // Every non-control arm changes exactly one key, and it is never the base value.
    for arm in &one.arms[1..] {
        assert_eq!(arm.delta.len(), 1, "{arm:?}");
        let (k, v) = &arm.delta[0];
        assert_ne!(Some(v), one.base_values[k].as_ref());
        assert_eq!(arm.varies.as_deref(), Some(k.as_str()));
        // The other axis sits at the base value.
        assert_eq!(arm.axis_values.len(), 2);
    }
    let grid = plan_file(&write(dir.path(), "grid.toml", &sweep("grid", AXES))).unwrap();
    assert_eq!(grid.arms.len(), 9);
    assert_eq!(grid.runs.len(), 18);
    assert!(grid.arms.iter().all(|a| a.delta.len() == 2 && a.varies.is_none()));
    let ids: std::collections::HashSet<_> = grid.runs.iter().map(|r| &r.run_id).collect();
    assert_eq!(ids.len(), 18, "run ids are unique");
}

/// A key the sweep's `[set]` changes is the control's value of that axis: the base file's value
/// becomes an arm of its own (here 224 px, with the control at 448).
#[test]
fn the_control_value_of_an_axis_comes_from_set() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "base.toml", BASE);
    let text = format!(
        "{}[set]\n\"model.vision.image_size\" = 448\n",
        sweep("one_at_a_time", "\"model.vision.image_size\" = [224, 336]\n")
    );
    let plan = plan_file(&write(dir.path(), "set.toml", &text)).unwrap();
    assert_eq!(plan.base_values["model.vision.image_size"], Some(Value::Integer(448)));
    let sizes: Vec<&Value> = plan.arms[1..].iter().map(|a| &a.delta[0].1).collect();
    assert_eq!(sizes, [&Value::Integer(224), &Value::Integer(336)]);

    // A table axis shows the control's section with the `[set]` keys below it.
    let text = format!(
        "{}[set]\n\"model.connector.num_tokens\" = 16\n",
        sweep("one_at_a_time", "\"model.connector\" = [{ kind = \"avg_pool\", num_tokens = 16 }]\n")
    );
    let plan = plan_file(&write(dir.path(), "table.toml", &text)).unwrap();
    let control = plan.base_values["model.connector"].as_ref().unwrap();
    assert_eq!(control.get("num_tokens"), Some(&Value::Integer(16)), "{control}");
    assert_eq!(control.get("kind").and_then(Value::as_str), Some("c_abstractor"));
}

#[test]
fn run_ids_are_stable_and_depend_only_on_delta_and_seed() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "base.toml", BASE);
    let a = plan_file(&write(dir.path(), "a.toml", &sweep("grid", AXES))).unwrap();
    let again = plan_file(&dir.path().join("a.toml")).unwrap();
    assert_eq!(a.runs, again.runs);
    // Same axes written in the other order, with nested instead of quoted keys, and another seed list:
    // runs with equal (delta, seed) get equal ids.
    let reordered = "base = \"base.toml\"\nmode = \"grid\"\nseeds = [1, 7]\n[axes.model.connector]\nnum_tokens = [256, 144, 64]\n[axes.model.vision]\nimage_size = [448, 336, 224]\n";
    let b = plan_file(&write(dir.path(), "b.toml", reordered)).unwrap();
    let by_key = |p: &mm1_sweep::Plan| {
        p.runs
            .iter()
            .map(|r| ((format!("{:?}", p.arms[r.arm].delta), r.seed), r.run_id.clone()))
            .collect::<std::collections::HashMap<_, _>>()
    };
    let (ka, kb) = (by_key(&a), by_key(&b));
    let common: Vec<_> = ka.keys().filter(|k| kb.contains_key(*k)).collect();
    assert_eq!(common.len(), 9, "seed 1 of every arm is in both");
    for k in common {
        assert_eq!(ka[k], kb[k]);
    }
    // The id is readable and its hash is SHA-256 of the canonical delta (empty for the control).
    assert_eq!(run_id("base", &[], 0), "base-e3b0c442-s0");
    let id = run_id("image_size-336", &[("model.vision.image_size".into(), Value::Integer(336))], 2);
    assert!(id.starts_with("image_size-336-") && id.ends_with("-s2"), "{id}");
    assert_ne!(id, run_id("image_size-336", &[("model.vision.image_size".into(), Value::Integer(337))], 2));
}

#[test]
fn tables_and_bundles() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "base.toml", BASE);
    let axes = "\"model.connector\" = [{ kind = \"avg_pool\" }, { kind = \"attn_pool\" }]\n\
                mix = [{ label = \"caption-heavy\", set = { \"data.sources.0.weight\" = 0.9, \"data.sources.1.weight\" = 0.1 } }]\n";
    let p = plan_file(&write(dir.path(), "t.toml", &sweep("grid", axes))).unwrap();
    assert_eq!(p.arms.len(), 2);
    let arm = &p.arms[0];
    assert_eq!(arm.name, "mix-caption-heavy_connector-avg_pool"); // axes in key order
    // Keys sorted: a parent table is set before any child key.
    let keys: Vec<_> = arm.delta.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(keys, ["data.sources.0.weight", "data.sources.1.weight", "model.connector"]);
    assert_eq!(arm.axis_values["mix"], Value::String("caption-heavy".into()));
}

#[test]
fn bad_sweep_files_name_the_problem() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "base.toml", BASE);
    let cases = [
        ("base = \"base.toml\"\n[axes]\nx = []\n", "axes.x: empty list"),
        ("base = \"base.toml\"\n[axes]\nx = 3\n", "axes.x: expected a list"),
        ("base = \"base.toml\"\n[axes]\nx = [1, 1]\n", "listed twice"),
        ("base = \"base.toml\"\nmode = \"diagonal\"\n[axes]\nx = [1]\n", "diagonal"),
        ("base = \"base.toml\"\nsteeps = 3\n[axes]\nx = [1]\n", "steeps"),
        ("base = \"nope.toml\"\n[axes]\nx = [1]\n", "nope.toml not found"),
        ("base = \"base.toml\"\nseeds = []\n[axes]\nx = [1]\n", "`seeds` is empty"),
        ("base = \"base.toml\"\n[axes]\n", "names no axis"),
    ];
    for (i, (text, expected)) in cases.iter().enumerate() {
        let path = write(dir.path(), &format!("bad{i}.toml"), text);
        let err = plan_file(&path).unwrap_err().to_string();
        assert!(err.contains(expected) && err.contains(&format!("bad{i}.toml")), "{err}");
    }
}

#[test]
fn shipped_sweeps_plan_and_every_arm_config_validates() {
    let root = &Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().unwrap();
    let dir = root.join("ablations/sweeps");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".toml"))
        .collect();
    names.sort();
    for full in ["resolution", "connector", "mixture", "moe"] {
        for name in [format!("{full}.toml"), format!("{full}_cpu.toml")] {
            assert!(names.contains(&name), "missing ablations/sweeps/{name}");
        }
        let a = plan_file(&dir.join(format!("{full}.toml"))).unwrap();
        let b = plan_file(&dir.join(format!("{full}_cpu.toml"))).unwrap();
        let axes = |p: &mm1_sweep::Plan| p.axes.iter().map(|(k, _)| k.clone()).collect::<Vec<_>>();
        assert_eq!(axes(&a), axes(&b), "{full}: the CPU version sweeps the same axes");
        assert_eq!((a.mode, a.arms.len()), (b.mode, b.arms.len()), "{full}: same design at both scales");
    }
    for name in &names {
        let plan = plan_file(&dir.join(name)).unwrap();
        mm1_sweep::check_arms(&plan).unwrap_or_else(|e| panic!("{name}: {e}"));
    }
}

#[test]
fn invalid_arm_configs_fail_before_running() {
    let root = &Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        "base = \"{}\"\n[axes]\n\"model.vision.image_sise\" = [224]\n\"model.connector.num_tokens\" = [150]\n",
        root.join("configs/mm1-ablation-base.toml").display()
    );
    let plan = plan_file(&write(dir.path(), "typo.toml", &text)).unwrap();
    let err = mm1_sweep::check_arms(&plan).unwrap_err().to_string();
    assert!(err.contains("typo.toml") && err.contains("image_sise"), "{err}");
    assert!(err.contains("arm num_tokens-150"), "{err}");
}
