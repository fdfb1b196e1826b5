//! Named presets: encoders, decoders and whole stacks people start from.
//!
//! Sizes follow the public checkpoints (OpenAI CLIP ViT-L/14-336, DFN5B-CLIP ViT-H/14-378,
//! Llama) and the MM1 paper (§3: 1.2B ablation LLM; §3.4: 3B/7B/30B and the MoE variants).
//! `bench_cpu` mirrors `shared/bench/torch_step_baseline.py` layer for layer.

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

/// ViT-H/14 at 378 px (MM1's final encoder, DFN-5B CLIP), GELU as in OpenCLIP.
pub fn clip_vit_h14_378() -> VisionConfig {
    vit(378, 14, 1280, 32, 16, 5120, Activation::Gelu)
}

/// MM1's 1.2B ablation decoder (§3): 24 layers of width 2048.
pub fn llm_1_2b() -> LlmConfig {
    llm(32_000, 2048, 24, 16, 16, 5632)
}

/// ~3B decoder (MM1-3B scale).
pub fn llm_3b() -> LlmConfig {
    llm(32_000, 2560, 32, 20, 20, 6912)
}

/// ~7B decoder (Llama-2-7B shape).
pub fn llm_7b() -> LlmConfig {
    llm(32_000, 4096, 32, 32, 32, 11008)
}

/// ~30B decoder (LLaMA-33B shape; 52 query heads share 4 KV heads).
pub fn llm_30b() -> LlmConfig {
    llm(32_000, 6656, 60, 52, 4, 17920)
}

/// MM1 3B-MoE: 64 experts in every 2nd layer, top-2.
pub fn llm_3b_moe() -> LlmConfig {
    LlmConfig { moe: Some(MoeConfig { num_experts: 64, every: 2, ..MoeConfig::default() }), ..llm_3b() }
}

/// MM1 7B-MoE: 32 experts in every 4th layer, top-2.
pub fn llm_7b_moe() -> LlmConfig {
    LlmConfig { moe: Some(MoeConfig { num_experts: 32, every: 4, ..MoeConfig::default() }), ..llm_7b() }
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

/// Whole-stack presets by name (`mm1_ablation_base`, `tiny`, `tiny_moe`, `bench_cpu`, and
/// `mm1_3b`, `mm1_7b`, `mm1_30b`, `mm1_3b_moe`, `mm1_7b_moe` with ViT-H/14-378).
pub fn by_name(name: &str) -> Option<Mm1Config> {
    let big = |llm: LlmConfig| Mm1Config { vision: clip_vit_h14_378(), llm, ..mm1_ablation_base() };
    Some(match name.replace('-', "_").as_str() {
        "mm1_ablation_base" => mm1_ablation_base(),
        "tiny" => tiny(),
        "tiny_moe" => tiny_moe(),
        "bench_cpu" => bench_cpu(),
        "mm1_3b" => big(llm_3b()),
        "mm1_7b" => big(llm_7b()),
        "mm1_30b" => big(llm_30b()),
        "mm1_3b_moe" => big(llm_3b_moe()),
        "mm1_7b_moe" => big(llm_7b_moe()),
        _ => return None,
    })
}

/// Names accepted by [`by_name`].
pub const NAMES: &[&str] = &[
    "mm1_ablation_base",
    "tiny",
    "tiny_moe",
    "bench_cpu",
    "mm1_3b",
    "mm1_7b",
    "mm1_30b",
    "mm1_3b_moe",
    "mm1_7b_moe",
];
