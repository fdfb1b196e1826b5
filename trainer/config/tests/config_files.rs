//! Every shipped run file (configs/, ablations/) loads and validates, alone and shrunk by
//! every scale overlay; ablation arms differ from their base in exactly the intended keys;
//! docs/training.md documents every key.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use mm1_config::{ConfigSources, LoadedConfig, RunConfig};
use mm1_models::{ConnectorConfig, MoeConfig, Size2};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().expect("workspace root")
}

fn toml_files(dir: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    out.sort();
    out
}

/// Run files: configs/*.toml and ablations/*.toml (overlays live in configs/scale/).
fn run_files() -> Vec<PathBuf> {
    let mut files = toml_files(&repo().join("configs"));
    files.extend(toml_files(&repo().join("ablations")));
    assert!(files.len() >= 8 + 15, "expected the 8 configs and 15 ablations, found {}", files.len());
    files
}

fn load(file: &Path, overlays: &[PathBuf]) -> LoadedConfig {
    let mut s = ConfigSources::new(file);
    for o in overlays {
        s = s.overlay(o);
    }
    s.load().unwrap_or_else(|e| panic!("{} {overlays:?}: {e}", file.display()))
}

/// Dotted path → value of every leaf of the resolved config.
fn leaves(cfg: &RunConfig) -> BTreeMap<String, toml::Value> {
    fn walk(prefix: &str, v: &toml::Value, out: &mut BTreeMap<String, toml::Value>) {
        match v {
            toml::Value::Table(t) => {
                for (k, v) in t {
                    walk(&if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") }, v, out);
                }
            }
            other => {
                out.insert(prefix.to_string(), other.clone());
            }
        }
    }
    let mut out = BTreeMap::new();
    walk("", &toml::Value::try_from(cfg).unwrap(), &mut out);
    out
}

fn changed_keys(a: &RunConfig, b: &RunConfig) -> Vec<String> {
    let (la, lb) = (leaves(a), leaves(b));
    let mut keys: Vec<String> = la.keys().chain(lb.keys()).cloned().collect();
    keys.sort();
    keys.dedup();
    keys.into_iter().filter(|k| la.get(k) != lb.get(k)).collect()
}

#[test]
fn every_run_file_validates_alone_and_shrunk() {
    let overlays = toml_files(&repo().join("configs/scale"));
    assert!(!overlays.is_empty());
    for file in run_files() {
        let full = load(&file, &[]);
        for overlay in &overlays {
            let tiny = load(&file, std::slice::from_ref(overlay)).config;
            // Shrunk: a laptop-sized stack with one device.
            assert!(tiny.model.llm.width <= 128 && tiny.model.vision.width <= 64, "{}", file.display());
            assert!(tiny.model.image_size()[0] <= 64, "{}", file.display());
            assert!(tiny.data.seq_len <= 256 && tiny.parallel.dp == 1, "{}", file.display());
            assert_eq!(tiny.train.device.name(), "flex");
            // The mixture of the file survives (same kinds and weights, other shards).
            let mix = |c: &RunConfig| c.data.sources.iter().map(|s| (s.kind, s.weight)).collect::<Vec<_>>();
            assert_eq!(mix(&tiny), mix(&full.config), "{}", file.display());
            assert_eq!(tiny.model.connector.kind(), full.config.model.connector.kind());
        }
    }
}

#[test]
fn ablation_arms_change_exactly_their_axis() {
    let base = load(&repo().join("configs/mm1-ablation-base.toml"), &[]).config;
    let tiny_overlay = repo().join("configs/scale/cpu-tiny.toml");
    let tiny_base =
        load(&repo().join("configs/mm1-ablation-base.toml"), std::slice::from_ref(&tiny_overlay)).config;
    let expect: &[(&str, &[&str])] = &[
        ("res224", &["model.vision.image_size"]),
        ("res336", &[]),
        ("res378", &["model.vision.image_size"]),
        ("res448", &["model.vision.image_size"]),
        ("tokens64", &["model.connector.num_tokens"]),
        ("tokens144", &[]),
        ("tokens256", &["model.connector.num_tokens"]),
        (
            "conn_avg_pool",
            &[
                "model.connector.depth",
                "model.connector.hidden",
                "model.connector.kind",
                "model.connector.mlp_depth",
                "model.connector.pos_emb",
            ],
        ),
        (
            "conn_attn_pool",
            &[
                "model.connector.depth",
                "model.connector.heads",
                "model.connector.hidden",
                "model.connector.kind",
                "model.connector.mlp_depth",
                "model.connector.pos_emb",
            ],
        ),
        ("conn_c_abstractor", &[]),
        ("mix_45_45_10", &[]),
        (
            "moe",
            &[
                "model.llm.moe.capacity_factor",
                "model.llm.moe.every",
                "model.llm.moe.load_balance_coef",
                "model.llm.moe.num_experts",
                "model.llm.moe.top_k",
                "model.llm.moe.upcycle",
                "model.llm.moe.z_loss_coef",
            ],
        ),
    ];
    for (arm, keys) in expect {
        let file = repo().join(format!("ablations/{arm}.toml"));
        let cfg = load(&file, &[]).config;
        assert_eq!(changed_keys(&base, &cfg), *keys, "{arm}");
        // Shrunk, the arm still differs from the shrunk base in the same way (resolution,
        // tokens and connector map to tiny values instead of collapsing into one).
        let tiny = load(&file, std::slice::from_ref(&tiny_overlay)).config;
        let tiny_changed = changed_keys(&tiny_base, &tiny);
        assert_eq!(tiny_changed.is_empty(), keys.is_empty(), "{arm}: {tiny_changed:?}");
    }
    // Mixture arms change only data.sources (an array: compare it directly).
    for arm in ["mix_caption_only", "mix_interleaved_only", "mix_50_50_0"] {
        let cfg = load(&repo().join(format!("ablations/{arm}.toml")), &[]).config;
        let mut stripped = cfg.clone();
        stripped.data.sources = base.data.sources.clone();
        assert_eq!(stripped, base, "{arm} changes more than data.sources");
        assert_ne!(cfg.data.sources, base.data.sources, "{arm}");
    }
    // The tiny resolutions keep their order: 224 < 336 < 378 < 448.
    let side = |arm: &str| {
        load(&repo().join(format!("ablations/{arm}.toml")), std::slice::from_ref(&tiny_overlay))
            .config
            .model
            .image_size()[0]
    };
    assert_eq!(["res224", "res336", "res378", "res448"].map(side), [32, 48, 56, 64]);
}

#[test]
fn recipes_match_the_paper() {
    let c = |name: &str| load(&repo().join(format!("configs/{name}.toml")), &[]).config;
    for name in ["mm1-3b", "mm1-7b", "mm1-30b", "mm1-3b-moe", "mm1-7b-moe"] {
        let r = c(name);
        assert_eq!(r.data.batch_size * r.parallel.dp * r.optim.grad_accum, 512, "{name}");
        assert_eq!((r.data.seq_len, r.data.max_images_per_seq, r.train.steps), (4096, 16, 200_000), "{name}");
        assert_eq!((r.schedule.warmup_steps, r.schedule.min_lr_ratio), (2000, 0.1), "{name}");
        assert_eq!(r.optim.lr_rule, mm1_config::LrRule::Mm1, "{name}");
        assert_eq!(r.model.vision.image_size, Size2::square(378), "{name}");
        assert_eq!(r.model.num_image_tokens(), 144, "{name}");
        let w: Vec<f64> = r.data.sources.iter().map(|s| s.weight).collect();
        assert_eq!(w, [0.45, 0.45, 0.10], "{name}");
        assert!(matches!(r.model.connector, ConnectorConfig::CAbstractor(_)));
    }
    let moe = |name: &str| c(name).model.llm.moe.unwrap();
    let m3 = moe("mm1-3b-moe");
    let m7 = moe("mm1-7b-moe");
    assert_eq!((m3.num_experts, m3.every, m3.top_k), (64, 2, 2));
    assert_eq!((m7.num_experts, m7.every, m7.top_k), (32, 4, 2));
    for m in [&m3, &m7] {
        assert_eq!((m.load_balance_coef, m.z_loss_coef), (0.01, 0.001));
    }
    let base = c("mm1-ablation-base");
    assert_eq!((base.model.vision.image_size, base.model.vision.patch_size), (Size2::square(336), 14));
    // The TOML twin of the model defaults (it also names the checkpoint's resolution).
    let mut twin = mm1_models::presets::mm1_ablation_base();
    twin.vision.pretrained_image_size = Some(Size2::square(336));
    assert_eq!(base.model, twin);
    assert_eq!(base.model.num_image_tokens(), 144);
    let bench = c("bench-cpu");
    assert_eq!(bench.model, mm1_models::presets::bench_cpu());
    assert_eq!((bench.data.seq_len, bench.data.batch_size, bench.data.max_images_per_seq), (256, 8, 1));
    let quick = c("quickstart");
    assert_eq!(quick.log.every, 1);
    assert_eq!(quick.train.device.name(), "flex");
}

/// Dotted keys of every section, with all optional parts present and every connector kind.
fn all_keys() -> Vec<String> {
    let mut cfg = RunConfig::default();
    cfg.model.llm.moe = Some(MoeConfig::default());
    cfg.model.vision.pretrained_image_size = Some(Size2::square(336));
    cfg.data.synth = Some(mm1_data::SynthConfig::default());
    let source = mm1_data::SourceConfig {
        name: "caption".into(),
        kind: mm1_data::SampleKind::Caption,
        shards: "x.tar".into(),
        weight: 1.0,
    };
    cfg.data.sources = vec![source.clone()];
    cfg.data.eval.sources = vec![source];
    cfg.data.eval.vqa = Some("vqa.jsonl".into());
    cfg.data.eval.captions = Some("captions.jsonl".into());
    let mut keys: Vec<String> = Vec::new();
    let connectors = [
        ConnectorConfig::CAbstractor(Default::default()),
        ConnectorConfig::AvgPool(Default::default()),
        ConnectorConfig::AttnPool(Default::default()),
    ];
    for conn in connectors {
        cfg.model.connector = conn;
        for k in leaves(&cfg).into_keys() {
            // Array elements: data.sources.<i>.name is documented as data.sources.name.
            let k = k.replace("sources.0.", "sources.");
            if !keys.contains(&k) {
                keys.push(k);
            }
        }
    }
    // leaves() stops at arrays of tables; add their element keys.
    for prefix in ["data.sources", "data.eval.sources"] {
        keys.retain(|k| k != prefix);
        for k in ["name", "kind", "shards", "weight"] {
            keys.push(format!("{prefix}.{k}"));
        }
    }
    keys
}

/// Default value of every key outside arrays (all connector kinds, optional sections present).
fn all_defaults() -> BTreeMap<String, toml::Value> {
    let mut cfg = RunConfig::default();
    cfg.model.llm.moe = Some(MoeConfig::default());
    cfg.data.synth = Some(mm1_data::SynthConfig::default());
    let mut out = BTreeMap::new();
    for conn in [
        ConnectorConfig::AttnPool(Default::default()),
        ConnectorConfig::AvgPool(Default::default()),
        ConnectorConfig::CAbstractor(Default::default()),
    ] {
        cfg.model.connector = conn;
        out.extend(leaves(&cfg));
    }
    out.remove("model.connector.kind");
    out.insert("model.connector.kind".into(), toml::Value::String("c_abstractor".into()));
    out
}

#[test]
fn docs_defaults_are_the_real_defaults() {
    let docs = std::fs::read_to_string(repo().join("docs/training.md")).expect("docs/training.md");
    let defaults = all_defaults();
    let mut checked = 0;
    let mut wrong = Vec::new();
    // Rows `| `key` | `default` | meaning |`; defaults not in backticks (unset, required) are skipped.
    for line in docs.lines().filter(|l| l.starts_with("| `")) {
        let cols: Vec<&str> = line.split(" | ").collect();
        let (Some(key), Some(doc)) = (cols.first(), cols.get(1)) else { continue };
        let key = key.trim_start_matches("| ").trim_matches('`');
        let (Some(real), Some(doc)) =
            (defaults.get(key), doc.strip_prefix('`').and_then(|d| d.strip_suffix('`')))
        else {
            continue;
        };
        let parsed =
            format!("v = {}", doc.replace("\\|", "|")).parse::<toml::Table>().map(|mut t| t.remove("v"));
        checked += 1;
        if parsed.ok().flatten().as_ref() != Some(real) {
            wrong.push(format!("{key}: docs say {doc}, the default is {real}"));
        }
    }
    assert!(wrong.is_empty(), "docs/training.md defaults are stale:\n{}", wrong.join("\n"));
    assert!(checked >= 80, "only {checked} default values found in docs/training.md");
}

#[test]
fn docs_name_every_key() {
    let docs = std::fs::read_to_string(repo().join("docs/training.md")).expect("docs/training.md");
    let missing: Vec<String> = all_keys().into_iter().filter(|k| !docs.contains(&format!("`{k}`"))).collect();
    assert!(
        missing.is_empty(),
        "docs/training.md does not document these keys (as `key`):\n{}",
        missing.join("\n")
    );
}
