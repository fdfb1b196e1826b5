//! Named stacks the code itself needs: the config defaults (`mm1_ablation_base`: MM1 §3's
//! ViT-L/14-336 → C-Abstractor 144 → 1.2B LLM, the twin of `configs/mm1-ablation-base.toml`),
//! the test sizes (`tiny`, `tiny_moe`) and the benchmark stack (`bench_cpu`, the twin of
//! `configs/bench-cpu.toml`, mirroring `shared/bench/torch_step_baseline.py` layer for layer).
//! The sizes of the shipped models (3B, 7B, 30B, the MoE variants, ViT-H/14-378) live only in
//! `configs/`; `trainer/config/tests/config_files.rs` checks both twins.

use crate::config::{
    Activation, CAbstractorConfig, ConnectorConfig, FreezeConfig, LlmConfig, Mm1Config, MoeConfig, Size2,
    VisionConfig,
};

fn vit(
    image: usize,
    patch: usize,
    width: usize,
    layers: usize,
    heads: usize,
    mlp: usize,
    act: Activation,
) -> VisionConfig {
    VisionConfig {
        image_size: Size2::square(image),
        patch_size: patch,
        width,
        layers,
        heads,
        mlp_dim: mlp,
        activation: act,
        layer_norm_eps: 1e-5,
        feature_layer: -1,
        pretrained_image_size: None,
    }
}

fn llm(vocab: usize, width: usize, layers: usize, heads: usize, kv_heads: usize, ffn: usize) -> LlmConfig {
    LlmConfig {
        vocab_size: vocab,
        width,
        layers,
        heads,
        kv_heads,
        ffn_dim: ffn,
        rope_theta: 10_000.0,
        rms_norm_eps: 1e-5,
        tie_embeddings: false,
        max_seq_len: 4096,
        moe: None,
    }
}

/// OpenAI CLIP ViT-L/14 at 336 px (`openai/clip-vit-large-patch14-336`).
pub fn clip_vit_l14_336() -> VisionConfig {
    vit(336, 14, 1024, 24, 16, 4096, Activation::QuickGelu)
}

/// MM1's 1.2B ablation decoder (§3): 24 layers of width 2048.
pub fn llm_1_2b() -> LlmConfig {
    llm(32_000, 2048, 24, 16, 16, 5632)
}

/// The MM1 ablation base stack: ViT-L/14-336 → C-Abstractor (144 tokens) → 1.2B LLM.
pub fn mm1_ablation_base() -> Mm1Config {
    Mm1Config {
        vision: clip_vit_l14_336(),
        connector: ConnectorConfig::CAbstractor(CAbstractorConfig::default()),
        llm: llm_1_2b(),
        freeze: FreezeConfig::default(),
        init: Default::default(),
    }
}

/// A stack that trains in seconds on a CPU (tests, quickstart): 32 px images, 16 patches,
/// 4 image tokens, width 32.
pub fn tiny() -> Mm1Config {
    Mm1Config {
        vision: vit(32, 8, 32, 2, 2, 64, Activation::QuickGelu),
        connector: ConnectorConfig::CAbstractor(CAbstractorConfig {
            num_tokens: 4,
            hidden: 32,
            depth: 1,
            mlp_depth: 2,
            pos_emb: true,
        }),
        llm: LlmConfig { max_seq_len: 256, ..llm(512, 32, 2, 4, 2, 64) },
        freeze: FreezeConfig::default(),
        init: Default::default(),
    }
}

/// `tiny` with an MoE FFN (4 experts, top-2) in every 2nd layer.
pub fn tiny_moe() -> Mm1Config {
    let mut cfg = tiny();
    cfg.llm.moe = Some(MoeConfig { num_experts: 4, top_k: 2, every: 2, ..MoeConfig::default() });
    cfg
}

/// The fixed `bench-cpu` stack, identical to `shared/bench/torch_step_baseline.py`:
/// 64 px / patch 8 ViT (192 wide, 4 layers, 3 heads, MLP 768, GELU, last-layer features),
/// C-Abstractor (hidden 192, depth 1 per stage, 16 tokens), LLM width 256, 4 layers,
/// 4 heads / 2 KV heads, SwiGLU 688, vocab 4096, untied head, sequence 256.
pub fn bench_cpu() -> Mm1Config {
    Mm1Config {
        vision: vit(64, 8, 192, 4, 3, 768, Activation::Gelu),
        connector: ConnectorConfig::CAbstractor(CAbstractorConfig {
            num_tokens: 16,
            hidden: 192,
            depth: 1,
            mlp_depth: 2,
            pos_emb: true,
        }),
        llm: LlmConfig { max_seq_len: 256, ..llm(4096, 256, 4, 4, 2, 688) },
        freeze: FreezeConfig::default(),
        init: Default::default(),
    }
}

/// Presets by name (`mm1_ablation_base`, `tiny`, `tiny_moe`, `bench_cpu`).
pub fn by_name(name: &str) -> Option<Mm1Config> {
    Some(match name.replace('-', "_").as_str() {
        "mm1_ablation_base" => mm1_ablation_base(),
        "tiny" => tiny(),
        "tiny_moe" => tiny_moe(),
        "bench_cpu" => bench_cpu(),
        _ => return None,
    })
}

/// Names accepted by [`by_name`].
pub const NAMES: &[&str] = &["mm1_ablation_base", "tiny", "tiny_moe", "bench_cpu"];
