//! Connector output shapes over grids (square and not) and token counts, and the
//! construction errors for impossible combinations.

use burn::prelude::*;
use mm1_models::connector::Connector;
use mm1_models::{
    AttnPoolConfig, AvgPoolConfig, CAbstractorConfig, ConnectorConfig, Mm1Config, Size2, presets,
};

fn vision(h: usize, w: usize) -> mm1_models::VisionConfig {
    let mut v = presets::tiny().vision;
    v.image_size = Size2 { h, w };
    v
}

#[test]
fn every_connector_gives_m_tokens_of_llm_width() {
    let device = Device::flex();
    let llm_width = 24;
    for (h, w) in [(32, 32), (24, 40), (48, 64)] {
        let v = vision(h, w);
        let [gh, gw] = v.grid();
        for m in [1usize, 4, 9] {
            if m.isqrt() > gh.min(gw) {
                continue;
            }
            let kinds = [
                ConnectorConfig::AvgPool(AvgPoolConfig { num_tokens: m }),
                ConnectorConfig::AttnPool(AttnPoolConfig { num_tokens: m, heads: 2 }),
                ConnectorConfig::CAbstractor(CAbstractorConfig {
                    num_tokens: m,
                    hidden: 16,
                    depth: 2,
                    mlp_depth: 2,
                    pos_emb: true,
                }),
            ];
            for kind in kinds {
                let conn = Connector::new(&kind, &v, llm_width, &device);
                let x = Tensor::<3>::ones([2, gh * gw, v.width], &device);
                let y = conn.forward(x, [gh, gw]);
                assert_eq!(y.dims(), [2, m, llm_width], "{} on {gh}x{gw} grid, m={m}", kind.kind());
            }
        }
    }
}

#[test]
fn avg_pool_averages_the_right_cells() {
    // 2x4 grid pooled to 1x1 is the mean of all 8 patches; with an identity-like projection
    // check against the mean computed by hand.
    let device = Device::flex();
    let v = vision(16, 32); // 2x4 grid with patch 8
    let conn = Connector::new(&ConnectorConfig::AvgPool(AvgPoolConfig { num_tokens: 1 }), &v, 5, &device);
    let Connector::AvgPool(pool) = &conn else { unreachable!() };
    let x = Tensor::<1, Int>::arange(0..(8 * v.width) as i64, &device).float().reshape([1, 8, v.width]);
    let got = conn.forward(x.clone(), [2, 4]);
    let want = pool.proj.forward(x.mean_dim(1)); // [1, 1, d]
    assert!((got - want).abs().max().into_scalar::<f32>() < 1e-4);
}

fn err(cfg: &Mm1Config) -> String {
    cfg.validate().expect_err("invalid config accepted").to_string()
}

#[test]
fn bad_combinations_fail_with_both_numbers() {
    let mut cfg = presets::tiny();
    cfg.connector =
        ConnectorConfig::CAbstractor(CAbstractorConfig { num_tokens: 143, ..CAbstractorConfig::default() });
    let e = err(&cfg);
    assert!(e.contains("143") && e.contains("144"), "{e}");

    cfg.connector = ConnectorConfig::AvgPool(AvgPoolConfig { num_tokens: 25 }); // 5x5 > 4x4 grid
    let e = err(&cfg);
    assert!(e.contains("5x5") && e.contains("4x4"), "{e}");

    cfg.connector = ConnectorConfig::AttnPool(AttnPoolConfig { num_tokens: 4, heads: 5 });
    let e = err(&cfg);
    assert!(e.contains("32") && e.contains("(5)"), "{e}");

    let mut cfg = presets::tiny();
    cfg.vision.image_size = Size2::square(36);
    let e = err(&cfg);
    assert!(e.contains("36") && e.contains("(8)"), "{e}");

    let mut cfg = presets::tiny();
    cfg.llm.kv_heads = 3;
    let e = err(&cfg);
    assert!(e.contains("(4)") && e.contains("(3)"), "{e}");

    let mut cfg = presets::tiny_moe();
    cfg.llm.moe.as_mut().unwrap().top_k = 6;
    let e = err(&cfg);
    assert!(e.contains("(6)") && e.contains("(4)"), "{e}");

    let mut cfg = presets::tiny();
    cfg.vision.feature_layer = -4;
    let e = err(&cfg);
    assert!(e.contains("-4") && e.contains("2 layers"), "{e}");
}

#[test]
fn toml_section_round_trips_and_rejects_unknown_keys() {
    let cfg = Mm1Config::from_toml_str(
        r#"
        [vision]
        image_size = [32, 48]
        patch_size = 8
        width = 32
        layers = 2
        heads = 2
        mlp_dim = 64
        feature_layer = -2
        [connector]
        kind = "attn_pool"
        num_tokens = 4
        [llm]
        vocab_size = 100
        width = 32
        layers = 2
        heads = 4
        kv_heads = 2
        ffn_dim = 64
        [llm.moe]
        num_experts = 4
        [freeze]
        vision = true
        "#,
    )
    .unwrap();
    assert_eq!(cfg.vision.image_size, Size2 { h: 32, w: 48 });
    assert_eq!(cfg.connector, ConnectorConfig::AttnPool(AttnPoolConfig { num_tokens: 4, heads: 8 }));
    assert_eq!(cfg.llm.moe.as_ref().unwrap().top_k, 2);
    assert!(cfg.freeze.vision && !cfg.freeze.llm);
    let again = Mm1Config::from_toml_str(&toml::to_string(&cfg).unwrap()).unwrap();
    assert_eq!(again, cfg);

    let e = Mm1Config::from_toml_str("[connector]\nkind = \"c_abstractor\"\nnum_token = 4\n").unwrap_err();
    assert!(e.to_string().contains("num_token"), "{e}");
    let e = Mm1Config::from_toml_str("[vision]\nwidht = 4\n").unwrap_err();
    assert!(e.to_string().contains("widht"), "{e}");
}

#[test]
fn presets_validate() {
    for name in presets::NAMES {
        presets::by_name(name).unwrap().validate().unwrap_or_else(|e| panic!("{name}: {e}"));
    }
    let b = presets::bench_cpu();
    assert_eq!((b.vision.grid(), b.num_image_tokens(), b.llm.head_dim()), ([8, 8], 16, 64));
}
