//! Layering of run configs: `base` chains, deep merge, `kind` replacement, overlays,
//! `[[patch]]`, `--set`, and the resolved config that round-trips.

mod config_support;

use config_support::{Files, TINY_RUN, assert_mentions, load_err};
use mm1_config::{ConfigSources, LoadedConfig, RunConfig, config_hash, parse_set_value};
use mm1_data::SampleKind;
use mm1_models::ConnectorConfig;

#[test]
fn base_chain_child_wins_key_by_key() {
    let f = Files::new();
    f.write("configs/base.toml", TINY_RUN);
    // Two levels: mid changes two keys, leaf changes one of them back and another one.
    f.write(
        "configs/mid.toml",
        "base = \"base.toml\"\n[optim]\nlr = 0.002\ngrad_clip = 0.5\n[train]\nsteps = 20\n",
    );
    let leaf = f.write("ablations/leaf.toml", "base = \"../configs/mid.toml\"\n[optim]\nlr = 0.003\n");
    let loaded = ConfigSources::new(&leaf).load().unwrap();
    let c = &loaded.config;
    assert_eq!(c.optim.lr, 0.003); // leaf
    assert_eq!(c.optim.grad_clip, 0.5); // mid, sibling of a leaf key: deep merge kept it
    assert_eq!(c.train.steps, 20); // mid
    assert_eq!(c.model.llm.width, 32); // base
    assert_eq!(c.optim.betas, [0.9, 0.95]); // default
    // Origins name the file that set each key; paths are cleaned of `..`.
    assert!(loaded.origin_of("optim.lr").unwrap().ends_with("ablations/leaf.toml"));
    assert!(loaded.origin_of("optim.grad_clip").unwrap().ends_with("configs/mid.toml"));
    assert!(loaded.origin_of("model.llm.width").unwrap().ends_with("configs/base.toml"));
    assert_eq!(loaded.origin_of("optim.eps"), None);
    assert_eq!(loaded.files().len(), 3);
}

#[test]
fn arrays_are_replaced_not_merged() {
    let f = Files::new();
    f.write("base.toml", TINY_RUN);
    let child = f.write(
        "child.toml",
        "base = \"base.toml\"\n[[data.sources]]\nname = \"only\"\nkind = \"interleaved\"\nshards = \"x.tar\"\n",
    );
    let c = ConfigSources::new(&child).load().unwrap().config;
    assert_eq!(c.data.sources.len(), 1);
    assert_eq!(c.data.sources[0].name, "only");
    assert_eq!(c.data.sources[0].kind, SampleKind::Interleaved);
    assert_eq!(c.data.sources[0].weight, 1.0); // default of the new element
}

#[test]
fn a_different_kind_replaces_the_table() {
    let f = Files::new();
    f.write("base.toml", TINY_RUN); // c_abstractor with hidden/depth
    let child = f.write(
        "child.toml",
        "base = \"base.toml\"\n[model.connector]\nkind = \"avg_pool\"\nnum_tokens = 4\n",
    );
    let c = ConfigSources::new(&child).load().unwrap().config;
    match &c.model.connector {
        ConnectorConfig::AvgPool(a) => assert_eq!(a.num_tokens, 4),
        other => panic!("expected avg_pool, got {other:?}"),
    }
    // Same kind: merged key by key (hidden from the base survives).
    let same = f.write(
        "same.toml",
        "base = \"base.toml\"\n[model.connector]\nkind = \"c_abstractor\"\nnum_tokens = 1\n",
    );
    match ConfigSources::new(&same).load().unwrap().config.model.connector {
        ConnectorConfig::CAbstractor(a) => assert_eq!((a.num_tokens, a.hidden, a.depth), (1, 32, 1)),
        other => panic!("expected c_abstractor, got {other:?}"),
    }
    // --set of a new kind does the same.
    let set = ConfigSources::new(f.path("base.toml"))
        .set("model.connector.kind=attn_pool")
        .set("model.connector.num_tokens=4");
    let loaded = set.load().unwrap();
    match &loaded.config.model.connector {
        ConnectorConfig::AttnPool(a) => assert_eq!((a.num_tokens, a.heads), (4, 8)),
        other => panic!("expected attn_pool, got {other:?}"),
    }
    assert_eq!(loaded.origin_of("model.connector.kind").unwrap(), "--set model.connector.kind=attn_pool");
    assert_eq!(loaded.origin_of("model.connector.heads"), None); // a default of the new kind
    assert_eq!(loaded.origin_of("model.connector.hidden"), None); // the old kind's key is gone
}

#[test]
fn cycles_are_detected_and_named() {
    let f = Files::new();
    f.write("a.toml", "base = \"b.toml\"\n");
    f.write("b.toml", "base = \"sub/c.toml\"\n");
    f.write("sub/c.toml", "base = \"../a.toml\"\n");
    let msg = load_err(&ConfigSources::new(f.path("a.toml")));
    assert_mentions(&msg, &["cycle", "a.toml -> ", "b.toml -> ", "c.toml -> "]);
    // Self-inclusion too.
    f.write("self.toml", "base = \"self.toml\"\n");
    assert_mentions(&load_err(&ConfigSources::new(f.path("self.toml"))), &["cycle", "self.toml -> "]);
}

#[test]
fn missing_base_names_both_files() {
    let f = Files::new();
    let child = f.write("child.toml", "base = \"nope.toml\"\n");
    assert_mentions(
        &load_err(&ConfigSources::new(&child)),
        &["child.toml", "base = \"nope.toml\"", "cannot read", "nope.toml"],
    );
}

#[test]
fn overlay_then_set_in_order() {
    let f = Files::new();
    let run = f.write("run.toml", TINY_RUN);
    let overlay = f.write("scale/small.toml", "[train]\nsteps = 7\nseed = 3\n[data]\nbatch_size = 1\n");
    let loaded = ConfigSources::new(&run)
        .overlay(&overlay)
        .set("train.steps=9")
        .set("train.device=cuda") // not TOML: taken as a string
        .set("data.sources.1.weight=0.25") // numeric segment indexes the array
        .set("optim.betas=[0.8, 0.9]")
        .load()
        .unwrap();
    let c = &loaded.config;
    assert_eq!(c.train.steps, 9); // --set after the overlay
    assert_eq!(c.train.seed, 3); // overlay
    assert_eq!(c.data.batch_size, 1); // overlay
    assert_eq!(c.train.device.name(), "cuda");
    assert_eq!(c.data.sources[1].weight, 0.25);
    assert_eq!(c.data.sources[0].weight, 0.5);
    assert_eq!(c.optim.betas, [0.8, 0.9]);
    assert!(loaded.origin_of("train.seed").unwrap().ends_with("scale/small.toml"));
    assert_eq!(loaded.origin_of("train.steps").unwrap(), "--set train.steps=9");
}

#[test]
fn set_values_are_toml_with_string_fallback() {
    assert_eq!(parse_set_value("448"), toml::Value::Integer(448));
    assert_eq!(parse_set_value("0.1"), toml::Value::Float(0.1));
    assert_eq!(parse_set_value("true"), toml::Value::Boolean(true));
    assert_eq!(parse_set_value("\"a b\""), toml::Value::String("a b".into()));
    assert_eq!(parse_set_value("data/x.json"), toml::Value::String("data/x.json".into()));
    assert_eq!(parse_set_value(" cuda "), toml::Value::String("cuda".into()));
}

#[test]
fn bad_set_arguments_are_named() {
    let f = Files::new();
    let run = f.write("run.toml", TINY_RUN);
    let cases = [
        ("train.steps", "expected section.key=value"),
        ("data.sources.5.weight=1", "out of range"),
        ("data.sources.x.weight=1", "use a number"),
        ("train.steps.deeper=1", "below a integer"),
        ("base=other.toml", "only be written in a file"),
    ];
    for (arg, needle) in cases {
        let msg = load_err(&ConfigSources::new(&run).set(arg));
        assert_mentions(&msg, &[&format!("--set {arg}"), needle]);
    }
}

#[test]
fn patches_apply_only_where_they_match() {
    let f = Files::new();
    let run = f.write("run.toml", TINY_RUN);
    let overlay = f.write(
        "overlay.toml",
        r#"
[[patch]]
at = "data.sources"
where = { kind = "caption" }
set = { shards = "synth/caption.tar" }

[[patch]]
at = "model.connector"
where = { kind = "avg_pool" }
set = { num_tokens = 1 }

[[patch]]
at = "model.llm.moe"
set = { num_experts = 2 }

[[patch]]
at = "model.vision"
where = { image_size = 32 }
set = { image_size = 16 }
"#,
    );
    let loaded = ConfigSources::new(&run).overlay(&overlay).load().unwrap();
    let c = &loaded.config;
    assert_eq!(c.data.sources[0].shards, "synth/caption.tar");
    assert_eq!(c.data.sources[1].shards, "shards/text-{000000..000001}.tar");
    assert_eq!(c.model.num_image_tokens(), 4); // c_abstractor: the avg_pool patch does not apply
    assert!(c.model.llm.moe.is_none()); // a missing target is left alone
    assert_eq!(c.model.image_size(), [16, 16]);
    assert!(loaded.origin_of("data.sources.0.shards").unwrap().ends_with("overlay.toml"));
    // A patch matches defaults too: `eps` is not written anywhere.
    let eps =
        f.write("eps.toml", "[[patch]]\nat = \"optim\"\nwhere = { eps = 1e-8 }\nset = { eps = 1e-6 }\n");
    assert_eq!(ConfigSources::new(&run).overlay(&eps).load().unwrap().config.optim.eps, 1e-6);
    // Malformed patches name the file.
    let bad = f.write("bad.toml", "[[patch]]\nat = \"optim\"\nsett = {}\n");
    assert_mentions(&load_err(&ConfigSources::new(&run).overlay(&bad)), &["bad.toml", "[[patch]]", "sett"]);
}

#[test]
fn resolved_config_round_trips_and_hash_is_stable() {
    let f = Files::new();
    let run = f.write("run.toml", TINY_RUN);
    let loaded = ConfigSources::new(&run)
        .set("model.llm.moe.num_experts=4")
        .set("model.llm.moe.every=2")
        .load()
        .unwrap();
    let out = f.path("runs/x");
    let written = loaded.write_resolved(&out).unwrap();
    let text = std::fs::read_to_string(&written.toml).unwrap();
    assert_eq!(written.hash, config_hash(&text));
    assert_eq!(written.hash.len(), 64);
    let sums = std::fs::read_to_string(out.join("config.sha256")).unwrap();
    assert_eq!(sums, format!("{}  config.toml\n", written.hash));
    let sources = std::fs::read_to_string(out.join("config.sources.txt")).unwrap();
    assert!(sources.contains("--set model.llm.moe.every=2"), "{sources}");
    // Path 1: the loaded config. Path 2: the resolved file loaded on its own. Must agree.
    let again = LoadedConfig::from_file(&written.toml).unwrap();
    assert_eq!(again.config, loaded.config);
    assert_eq!(again.config.hash().unwrap(), written.hash);
    // Every default is written out.
    let tree: toml::Table = text.parse().unwrap();
    assert_eq!(tree["optim"]["eps"].as_float(), Some(1e-8));
    assert_eq!(tree["model"]["llm"]["moe"]["num_experts"].as_integer(), Some(4));
    // A different config has a different hash; the run name carries it.
    let other = ConfigSources::new(&run).set("train.seed=1").load().unwrap();
    assert_ne!(other.config.hash().unwrap(), written.hash);
    assert_eq!(loaded.run_name().unwrap(), format!("run-{}", &written.hash[..8]));
}

#[test]
fn default_run_config_serialises() {
    let text = RunConfig::default().to_resolved_toml().unwrap();
    let back: RunConfig = toml::from_str(&text).unwrap();
    assert_eq!(back, RunConfig::default());
}
