//! A sweep's seeds vary initialisation and data order: each run gets `train.seed` and `data.seed`
//! from its seed, unless the sweep fixes `data.seed` itself.

use std::path::Path;

use mm1_sweep::{plan_file, set_pairs};

fn seeds_of(dir: &Path, set: &str) -> Vec<Vec<(String, String)>> {
    std::fs::write(dir.join("base.toml"), "[model.vision]\nimage_size = 32\n").unwrap();
    std::fs::write(
        dir.join("s.toml"),
        format!(
            "base = \"base.toml\"\nseeds = [0, 3]\n{set}[axes]\n\"model.vision.image_size\" = [32, 48]\n"
        ),
    )
    .unwrap();
    let plan = plan_file(&dir.join("s.toml")).unwrap();
    plan.runs
        .iter()
        .map(|r| set_pairs(&plan, r).into_iter().filter(|(k, _)| k.ends_with(".seed")).collect())
        .collect()
}

#[test]
fn each_seed_sets_initialisation_and_data_order() {
    let dir = tempfile::tempdir().unwrap();
    let pair = |k: &str, v: &str| (k.to_string(), v.to_string());
    let runs = seeds_of(dir.path(), "");
    assert_eq!(runs.len(), 4);
    assert_eq!(runs[0], [pair("train.seed", "0"), pair("data.seed", "0")]);
    assert_eq!(runs[1], [pair("train.seed", "3"), pair("data.seed", "3")]);
    // A sweep that fixes the data order keeps it (once, its own value).
    let runs = seeds_of(dir.path(), "[set]\n\"data.seed\" = 7\n");
    assert_eq!(runs[1], [pair("data.seed", "7"), pair("train.seed", "3")]);
}
