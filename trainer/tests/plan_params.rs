//! The planner's parameter counts (`mm1_trainer::plan::ParamCounts`, computed from the
//! config alone) equal the allocated model's `num_params()`, component by component, for a
//! dense and an MoE decoder, every connector kind and the shape options that change a count
//! (tied head, feature layer, pretrained grid, C-Abstractor depth / readout / pos_emb).
//! Also: the planner's bytes match its own arithmetic (f32: 16 bytes per trainable
//! parameter; ZeRO-1 under dp 4 divides the optimizer state by 4; ZeRO-2 under activation
//! checkpointing holds a quarter of the gradients plus the largest unit's, and that unit count
//! equals the allocated model's largest unit).

use burn::module::Module;
use mm1_models::Mm1Config;
use mm1_models::llm::Ffn;
use mm1_trainer::config::{DeviceKind, RunConfig};
use mm1_trainer::plan::{self, ParamCounts, PlanOptions, Precision};

/// A tiny model: 32 px / patch 8 ViT, LLM 64 wide; `extra` is TOML appended inside `[model]`.
fn tiny(connector: &str, llm_extra: &str, vision_extra: &str) -> Mm1Config {
    let text = format!(
        "[vision]\nimage_size = 32\npatch_size = 8\nwidth = 48\nlayers = 3\nheads = 3\nmlp_dim = 96\n{vision_extra}\n\
         [connector]\n{connector}\n\
         [llm]\nvocab_size = 300\nwidth = 64\nlayers = 4\nheads = 4\nkv_heads = 2\nffn_dim = 160\nmax_seq_len = 64\n{llm_extra}\n"
    );
    Mm1Config::from_toml_str(&text).unwrap_or_else(|e| panic!("{e}\n{text}"))
}

fn real_counts(m: &Mm1Config) -> ParamCounts {
    let device = mm1_trainer::run::train_device(DeviceKind::Flex).expect("flex device");
    let model = m.init(&device).expect("model");
    let experts: usize = model
        .llm
        .layers
        .iter()
        .map(|l| match &l.mlp {
            Ffn::Moe(moe) => moe.experts.iter().map(|e| e.num_params()).sum(),
            Ffn::Dense(_) => 0,
        })
        .sum();
    ParamCounts {
        vision: model.vision.num_params() as u64,
        connector: model.connector.num_params() as u64,
        llm_dense: (model.llm.num_params() - experts) as u64,
        experts: experts as u64,
        experts_active: 0,
    }
}

fn check(name: &str, m: &Mm1Config) {
    let planned = ParamCounts::of(m);
    let real = real_counts(m);
    let strip = |p: ParamCounts| ParamCounts { experts_active: 0, ..p };
    assert_eq!(strip(planned), real, "{name}: planner (left) vs allocated model (right)");
}

#[test]
fn counts_equal_the_allocated_model() {
    let cabs = "kind = \"c_abstractor\"\nnum_tokens = 4\nhidden = 40\ndepth = 1\nmlp_depth = 2";
    check("c_abstractor dense", &tiny(cabs, "", ""));
    check("avg_pool", &tiny("kind = \"avg_pool\"\nnum_tokens = 4", "", ""));
    check("attn_pool", &tiny("kind = \"attn_pool\"\nnum_tokens = 5\nheads = 3", "", ""));
    check(
        "c_abstractor deep, no pos_emb, 3-layer readout",
        &tiny(
            "kind = \"c_abstractor\"\nnum_tokens = 4\nhidden = 48\ndepth = 2\nmlp_depth = 3\npos_emb = false",
            "",
            "",
        ),
    );
    check("tied head", &tiny(cabs, "tie_embeddings = true", ""));
    check(
        "feature layer -2, pretrained 48 px",
        &tiny(cabs, "", "feature_layer = -2\npretrained_image_size = 48"),
    );
    let moe = "[llm.moe]\nnum_experts = 4\ntop_k = 2\nevery = 2";
    check("moe every 2", &tiny(cabs, moe, ""));
    check("moe every layer, top-1", &tiny(cabs, "[llm.moe]\nnum_experts = 3\ntop_k = 1\nevery = 1", ""));
}

#[test]
fn active_parameters_count_top_k_experts() {
    let m =
        tiny("kind = \"avg_pool\"\nnum_tokens = 4", "[llm.moe]\nnum_experts = 4\ntop_k = 2\nevery = 2", "");
    let p = ParamCounts::of(&m);
    assert_eq!(p.experts_active * 2, p.experts, "top-2 of 4 experts: half the expert parameters");
    assert_eq!(p.active(), p.total() - p.experts / 2);
}

#[test]
fn state_bytes_follow_precision_and_zero() {
    let mut cfg =
        RunConfig { model: tiny("kind = \"avg_pool\"\nnum_tokens = 4", "", ""), ..Default::default() };
    cfg.data.seq_len = 32;
    cfg.data.batch_size = 2;
    cfg.data.max_images_per_seq = 1;
    cfg.parallel.dp = 4;
    let n = ParamCounts::of(&cfg.model).total() as f64;
    let f32_plan = plan::plan(&cfg, &PlanOptions::default()).unwrap();
    let m = f32_plan.memory;
    assert_eq!([m.weights, m.gradients, m.optimizer, m.master], [4.0 * n, 4.0 * n, 8.0 * n, 0.0]);
    // bf16 (read from train.precision): bf16 copies at use, f32 master = the parameters, f32
    // gradients; ZeRO-1 shards the moments over the 4 ranks
    cfg.train.precision = Precision::Bf16;
    cfg.parallel.zero = 1;
    let bf16 = plan::plan(&cfg, &PlanOptions::default()).unwrap();
    let m = bf16.memory;
    assert_eq!([m.weights, m.gradients, m.optimizer, m.master], [2.0 * n, 4.0 * n, 2.0 * n, 4.0 * n]);
    assert!(m.activations < f32_plan.memory.activations, "bf16 activations {}", m.activations);
    let header = plan::render(&bf16, &PlanOptions::default());
    assert!(header.starts_with("plan per rank: dp 4 ep 1, precision bf16,"), "{header}");
    cfg.parallel.zero = 2;
    let m = plan::plan(&cfg, &PlanOptions::default()).unwrap().memory;
    assert_eq!([m.gradients, m.optimizer], [4.0 * n, 2.0 * n], "ZeRO-2: the local gradient stays whole");
    // under activation checkpointing ZeRO-2 reduces unit by unit: own quarter + one unit's
    cfg.train.activation_checkpointing = mm1_trainer::config::ActivationCheckpointing::Blocks;
    let unit = plan::largest_unit_gradients(&cfg.model) as f64;
    let m = plan::plan(&cfg, &PlanOptions::default()).unwrap().memory;
    assert_eq!(m.gradients, 4.0 * (n / 4.0 + unit), "ZeRO-2 with checkpointed blocks");
    cfg.train.activation_checkpointing = mm1_trainer::config::ActivationCheckpointing::None;
    cfg.parallel.zero = 0;
    cfg.train.precision = Precision::F32;
    // activation checkpointing is read from the config: every block keeps less than every 2nd
    cfg.train.activation_checkpointing = mm1_trainer::config::ActivationCheckpointing::EveryN;
    let every_2nd = plan::plan(&cfg, &PlanOptions::default()).unwrap().memory.activations;
    cfg.train.activation_checkpointing = mm1_trainer::config::ActivationCheckpointing::Blocks;
    let every = plan::plan(&cfg, &PlanOptions::default()).unwrap().memory.activations;
    let none = f32_plan.memory.activations;
    assert!(
        every < every_2nd && every_2nd < none,
        "activations: every block {every}, every 2nd {every_2nd}, none {none}"
    );
}

/// The most gradient values the segmented backward pass holds unreduced (`recompute/finish.rs`):
/// the largest unit of the allocated model (ViT stem, a ViT block, connector, embedding, a
/// decoder layer, final norm + head), with a tied head's embedding term held through the layers;
/// a frozen tower's units hold none.
#[test]
fn largest_unit_gradients_equal_the_allocated_units() {
    let avg = "kind = \"avg_pool\"\nnum_tokens = 4";
    let device = mm1_trainer::run::train_device(DeviceKind::Flex).expect("flex device");
    let real = |m: &Mm1Config| -> u64 {
        let model = m.init(&device).expect("model");
        let n = |x: usize| if m.freeze.vision { 0 } else { x as u64 };
        let vit = &model.vision;
        let stem = n(vit.embeddings.num_params() + vit.pre_layrnorm.num_params());
        let blocks = vit.layers.iter().map(|b| n(b.num_params())).max().unwrap_or(0);
        let llm = &model.llm;
        let embed = llm.embed_tokens.num_params() as u64;
        let pending = if m.llm.tie_embeddings { embed } else { 0 };
        let layers = llm.layers.iter().map(|l| l.num_params() as u64).max().unwrap() + pending;
        let head =
            (llm.norm.num_params() + llm.lm_head.as_ref().map_or(0, |h| h.num_params())) as u64 + pending;
        [stem, blocks, model.connector.num_params() as u64, embed + pending, layers, head]
            .into_iter()
            .max()
            .unwrap()
    };
    let moe = "[llm.moe]\nnum_experts = 4\ntop_k = 2\nevery = 2";
    let mut wide_vit = tiny(avg, "", "");
    (wide_vit.vision.width, wide_vit.vision.mlp_dim) = (192, 768); // a ViT block is the largest unit
    let mut frozen = wide_vit.clone();
    frozen.freeze.vision = true;
    for (name, m) in [
        ("dense", tiny(avg, "", "")),
        ("tied head", tiny(avg, "tie_embeddings = true", "")),
        ("moe every 2", tiny(avg, moe, "")),
        ("wide ViT", wide_vit),
        ("frozen wide ViT", frozen),
    ] {
        assert_eq!(plan::largest_unit_gradients(&m), real(&m), "{name}: planner (left) vs allocated model");
    }
}
