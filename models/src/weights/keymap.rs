//! Key-renaming tables between HF checkpoints and this crate's module paths, one per
//! source. A rule maps a dotted pattern to another; `*` matches one path segment and is
//! carried across in order. `transpose` marks `nn.Linear` weights (`[out, in]` in
//! PyTorch, `[in, out]` in burn). Rules are tried in order, both directions.

/// One renaming rule.
#[derive(Debug, Clone, Copy)]
pub struct Rule {
    pub hf: &'static str,
    pub ours: &'static str,
    pub transpose: bool,
}

const fn r(hf: &'static str, ours: &'static str, transpose: bool) -> Rule {
    Rule { hf, ours, transpose }
}

/// HF `CLIPVisionModel` (keys with or without the `vision_model.` prefix) → `VisionTransformer`.
pub const CLIP_VISION: &[Rule] = &[
    r("embeddings.patch_embedding.weight", "embeddings.patch_embedding.weight", false),
    r("embeddings.class_embedding", "embeddings.class_embedding", false),
    r("embeddings.position_embedding.weight", "embeddings.position_embedding", false),
    r("pre_layrnorm.weight", "pre_layrnorm.gamma", false),
    r("pre_layrnorm.bias", "pre_layrnorm.beta", false),
    r("encoder.layers.*.self_attn.*.weight", "layers.*.self_attn.*.weight", true),
    r("encoder.layers.*.self_attn.*.bias", "layers.*.self_attn.*.bias", false),
    r("encoder.layers.*.mlp.*.weight", "layers.*.mlp.*.weight", true),
    r("encoder.layers.*.mlp.*.bias", "layers.*.mlp.*.bias", false),
    r("encoder.layers.*.*.weight", "layers.*.*.gamma", false),
    r("encoder.layers.*.*.bias", "layers.*.*.beta", false),
];

/// HF `LlamaForCausalLM` → `LlmDecoder`. MoE layers use `mlp.experts.E.*` / `mlp.router`.
pub const LLAMA: &[Rule] = &[
    r("model.embed_tokens.weight", "embed_tokens.weight", false),
    r("model.norm.weight", "norm.gamma", false),
    r("lm_head.weight", "lm_head.weight", true),
    r("model.layers.*.self_attn.*.weight", "layers.*.self_attn.*.weight", true),
    r("model.layers.*.mlp.router.weight", "layers.*.mlp.Moe.router.weight", true),
    r("model.layers.*.mlp.experts.*.*.weight", "layers.*.mlp.Moe.experts.*.*.weight", true),
    r("model.layers.*.mlp.*.weight", "layers.*.mlp.Dense.*.weight", true),
    r("model.layers.*.*.weight", "layers.*.*.gamma", false),
];

/// HF keys that carry nothing this crate uses (reported separately from surprises).
pub fn ignorable(hf_key: &str) -> bool {
    const PARTS: &[&str] = &[
        "post_layernorm.",
        "position_ids",
        "rotary_emb.inv_freq",
        "text_model.",
        "text_projection",
        "visual_projection",
        "logit_scale",
    ];
    PARTS.iter().any(|p| hf_key.contains(p))
}

fn rewrite(from: &str, to: &str, key: &str) -> Option<String> {
    let (f, k): (Vec<&str>, Vec<&str>) = (from.split('.').collect(), key.split('.').collect());
    if f.len() != k.len() {
        return None;
    }
    let mut caps = Vec::new();
    for (p, s) in f.iter().zip(&k) {
        match *p {
            "*" => caps.push(*s),
            _ if p == s => {}
            _ => return None,
        }
    }
    let mut caps = caps.into_iter();
    Some(
        to.split('.')
            .map(|p| if p == "*" { caps.next().unwrap_or("*") } else { p })
            .collect::<Vec<_>>()
            .join("."),
    )
}

/// Our path and the transpose flag for an HF key.
pub fn to_ours(rules: &[Rule], hf_key: &str) -> Option<(String, bool)> {
    rules.iter().find_map(|r| rewrite(r.hf, r.ours, hf_key).map(|k| (k, r.transpose)))
}

/// The HF key and transpose flag for one of our paths.
pub fn to_hf(rules: &[Rule], ours: &str) -> Option<(String, bool)> {
    rules.iter().find_map(|r| rewrite(r.ours, r.hf, ours).map(|k| (k, r.transpose)))
}
