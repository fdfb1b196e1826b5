//! Every config error names the key (and for unknown keys the section and the file).

mod config_support;

use config_support::{Files, TINY_RUN, assert_mentions, load_err};
use mm1_config::{ConfigError, ConfigSources};

#[test]
fn unknown_key_names_key_section_and_file() {
    let f = Files::new();
    let base = f.write("configs/base.toml", TINY_RUN);
    // In the file itself, at several depths.
    for (section, key) in [
        ("optim", "learning_rate"),
        ("model.vision", "imag_size"),
        ("model.llm", "hidden"),
        ("data", "seqlen"),
        ("parallel", "tp"),
        ("model.llm.moe", "experts"),
        ("data.synth", "shards"),
    ] {
        let child = f.write("child.toml", &format!("base = \"configs/base.toml\"\n[{section}]\n{key} = 1\n"));
        let err = ConfigSources::new(&child).load().unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, ConfigError::UnknownKey { .. }), "{msg}");
        assert_mentions(&msg, &[&format!("`{key}`"), &format!("[{section}]"), "child.toml"]);
        assert_eq!(err.key(), Some(key));
    }
    // A misspelt section at the top level.
    let top = f.write("top.toml", "base = \"configs/base.toml\"\n[optimizer]\nlr = 1\n");
    assert_mentions(&load_err(&ConfigSources::new(&top)), &["`optimizer`", "[top level]", "top.toml"]);
    // Inside a `kind`-tagged table and inside an array element.
    let conn = f.write("conn.toml", "base = \"configs/base.toml\"\n[model.connector]\ndepht = 2\n");
    assert_mentions(&load_err(&ConfigSources::new(&conn)), &["`depht`", "[model.connector]", "conn.toml"]);
    let src = f.write(
        "src.toml",
        "base = \"configs/base.toml\"\n[[data.sources]]\nname = \"a\"\nkind = \"text\"\nshards = \"a.tar\"\nweigth = 1\n",
    );
    assert_mentions(&load_err(&ConfigSources::new(&src)), &["`weigth`", "[data.sources.0]", "src.toml"]);
    // The unknown key sits in the base: the base is named, not the child.
    f.write("configs/typo.toml", &format!("{TINY_RUN}\n[eval]\nevery_n = 3\n"));
    let child = f.write("child2.toml", "base = \"configs/typo.toml\"\n[train]\nsteps = 5\n");
    let msg = load_err(&ConfigSources::new(&child));
    assert_mentions(&msg, &["`every_n`", "[eval]", "configs/typo.toml"]);
    assert!(!msg.contains("child2.toml"), "{msg}");
    // From the command line.
    let msg = load_err(&ConfigSources::new(&base).set("checkpoint.evry=5"));
    assert_mentions(&msg, &["`evry`", "[checkpoint]", "--set checkpoint.evry=5"]);
    // The message lists the keys that exist.
    assert_mentions(&msg, &["every", "keep_last"]);
}

#[test]
fn wrong_type_names_key_and_file() {
    let f = Files::new();
    f.write("base.toml", TINY_RUN);
    let cases = [
        ("[train]\nsteps = \"many\"\n", "train.steps", "invalid type"),
        ("[optim]\nbetas = 0.9\n", "optim.betas", "invalid type"),
        ("[log]\ntensorboard = 1\n", "log.tensorboard", "invalid type"),
        ("[model.llm]\nwidth = -4\n", "model.llm.width", "invalid value"),
        ("[data]\nbatch_size = 1.5\n", "data.batch_size", "invalid type"),
    ];
    for (body, key, needle) in cases {
        let child = f.write("child.toml", &format!("base = \"base.toml\"\n{body}"));
        let err = ConfigSources::new(&child).load().unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, ConfigError::BadValue { .. }), "{msg}");
        assert_eq!(err.key(), Some(key), "{msg}");
        assert_mentions(&msg, &[&format!("`{key}`"), "child.toml", needle]);
    }
    // A wrong type given with --set names the flag.
    let msg = load_err(&ConfigSources::new(f.path("base.toml")).set("train.seed=abc"));
    assert_mentions(&msg, &["`train.seed`", "--set train.seed=abc", "invalid type"]);
}

#[test]
fn bad_enum_value_names_key_and_choices() {
    let f = Files::new();
    let base = f.write("base.toml", TINY_RUN);
    for (arg, key, choices) in [
        ("schedule.decay=cosin", "schedule.decay", "cosine"),
        ("train.device=tpu", "train.device", "flex"),
        ("optim.lr_rule=chinchilla", "optim.lr_rule", "mm1"),
        ("log.progress=fancy", "log.progress", "plain"),
        ("data.sources.0.kind=video", "data.sources.0.kind", "interleaved"),
    ] {
        let err = ConfigSources::new(&base).set(arg).load().unwrap_err();
        let msg = err.to_string();
        assert_eq!(err.key(), Some(key), "{msg}");
        assert_mentions(&msg, &["unknown variant", choices, &format!("--set {arg}")]);
    }
    let msg = load_err(&ConfigSources::new(&base).set("model.connector.kind=mlp"));
    assert_mentions(&msg, &["model.connector", "mlp", "c_abstractor"]);
}

#[test]
fn bad_values_name_key_origin_and_numbers() {
    let f = Files::new();
    let base = f.write("base.toml", TINY_RUN);
    // (override, key in the error, text the message must hold)
    let cases: &[(&str, &str, &[&str])] = &[
        ("schedule.min_lr_ratio=1.5", "schedule.min_lr_ratio", &["1.5", "[0, 1]"]),
        ("schedule.warmup_steps=50", "schedule.warmup_steps", &["50", "train.steps (10)"]),
        ("optim.lr=0.0", "optim.lr", &["> 0", "got 0"]),
        ("optim.betas=[0.9, 1.0]", "optim.betas.1", &["[0, 1)", "got 1"]),
        ("optim.grad_accum=0", "optim.grad_accum", &["at least 1", "got 0"]),
        ("optim.grad_clip=-1.0", "optim.grad_clip", &["got -1"]),
        ("optim.lr_multipliers.vision=-0.5", "optim.lr_multipliers.vision", &["got -0.5"]),
        ("train.steps=0", "train.steps", &["at least 1"]),
        ("log.every=0", "log.every", &["at least 1"]),
        ("checkpoint.keep_last=0", "checkpoint.keep_last", &["at least 1"]),
        ("model.vision.image_size=36", "model.vision.image_size", &["36", "patch_size (8)"]),
        ("model.connector.num_tokens=5", "model.connector.num_tokens", &["(5)", "perfect square"]),
        // The model crate names the grids here, not the key: the error is keyed to [model].
        ("model.connector.num_tokens=25", "model", &["num_tokens 25", "5x5", "4x4"]),
        ("model.llm.kv_heads=3", "model.llm.heads", &["(4)", "kv_heads (3)"]),
        ("data.sources.1.weight=0.0", "data.sources.1.weight", &["\"text\"", "> 0", "got 0"]),
        ("data.max_images_per_seq=20", "data.seq_len", &["20 × 4 = 80", "data.seq_len (64)"]),
        ("data.seq_len=256", "data.seq_len", &["256", "max_seq_len (128)"]),
        ("parallel.ep=2", "parallel.ep", &["(2)", "parallel.dp (1)"]),
        ("parallel.dp=0", "parallel.dp", &["at least 1"]),
        ("train.global_batch_size=512", "train.global_batch_size", &["(512)", "2 × 1 × 1 = 2"]),
    ];
    for (arg, key, needles) in cases {
        let err = ConfigSources::new(&base).set(*arg).load().unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, ConfigError::Invalid { .. }), "{arg}: {msg}");
        assert_eq!(err.key(), Some(*key), "{arg}: {msg}");
        assert_mentions(&msg, needles);
    }
    // The origin of the offending value is named: the file when the file set it.
    let child = f.write("child.toml", "base = \"base.toml\"\n[schedule]\nmin_lr_ratio = 2.0\n");
    assert_mentions(
        &load_err(&ConfigSources::new(&child)),
        &["schedule.min_lr_ratio", "child.toml", "got 2"],
    );
    assert_mentions(
        &load_err(&ConfigSources::new(&base).set("schedule.min_lr_ratio=3")),
        &["--set schedule.min_lr_ratio=3"],
    );
}

#[test]
fn expert_parallel_needs_a_fitting_moe() {
    let f = Files::new();
    let base = f.write("base.toml", TINY_RUN);
    let moe = |s: ConfigSources| s.set("model.llm.moe.num_experts=6").set("model.llm.moe.every=2");
    let ok = moe(ConfigSources::new(&base)).set("parallel.dp=6").set("parallel.ep=3").load();
    assert!(ok.is_ok(), "{:?}", ok.err());
    let msg = load_err(&moe(ConfigSources::new(&base)).set("parallel.dp=4").set("parallel.ep=4"));
    assert_mentions(&msg, &["num_experts (6)", "parallel.ep (4)"]);
    let msg = load_err(&ConfigSources::new(&base).set("parallel.dp=2").set("parallel.ep=2"));
    assert_mentions(&msg, &["parallel.ep (2)", "[model.llm.moe]"]);
}

#[test]
fn syntax_errors_name_the_file() {
    let f = Files::new();
    let bad = f.write("broken.toml", "[train\nsteps = 1\n");
    assert_mentions(&load_err(&ConfigSources::new(&bad)), &["broken.toml", "syntax"]);
    let bad_base = f.write("bad_base.toml", "base = 3\n");
    assert_mentions(&load_err(&ConfigSources::new(&bad_base)), &["bad_base.toml", "`base`", "integer"]);
}
