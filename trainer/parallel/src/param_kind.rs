//! What each parameter is, from its path and rank: the one rule that weight decay and freezing
//! (the trainer's `optim::groups`), N of the MM1 learning-rate rule (the trainer's
//! `run::non_embedding_params`), expert sharding (`expert_shard`) and expert-parallel gradient
//! reduction (`expert_parallel`) read (issue 18, item 2).
//!
//! Paths are burn's module field names (and enum variants) from the model's root, as
//! [`list_params`](crate::params::list_params) joins them (`llm.layers.0.mlp.Moe.experts.3.up_proj.weight`), so the rules
//! follow `mm1-models`' field names: `vision.embeddings.{patch,position,class}_embedding`,
//! `llm.embed_tokens`, `llm.lm_head`, `Moe.router`, `Moe.experts.<i>`, the norms' `gamma` and
//! `beta`, the linears' `bias`. Learnt queries and positions that are not named `embed` (the
//! attention pool's `queries`, the C-Abstractor's `pos_emb`) are weights.

/// The MM1 part a parameter belongs to: its path's first segment (`[model.freeze]` and
/// `[optim.lr_multipliers]` name these).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Component {
    Vision,
    Connector,
    Llm,
    /// Any other first segment (modules other than `Mm1Model`, e.g. in tests).
    Other,
}

/// The component's name in a dotted path: its first segment (`vision`, `connector`, `llm`), the
/// name that freezing and the learning-rate multipliers match.
pub fn component_name(path: &str) -> &str {
    path.split('.').next().unwrap_or("")
}

impl Component {
    fn of(first: &str) -> Self {
        match first {
            "vision" => Component::Vision,
            "connector" => Component::Connector,
            "llm" => Component::Llm,
            _ => Component::Other,
        }
    }
}

/// What a parameter is. The variants are tried in this order and the first that matches wins,
/// so an expert's tensors are all `Expert` whatever their rank or name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParamKind {
    /// A tensor of MoE expert `i`: under `experts.<i>`. Expert parallelism shards them and
    /// reduces their gradients over the expert's replicas only.
    Expert(usize),
    /// A path containing `embed` or `cls_token`: the token embedding and the ViT's whole
    /// `embeddings` module (class and position embeddings, and the patch convolution).
    Embedding,
    /// A path containing `head`: the LM head (`lm_head`).
    Head,
    /// A MoE router (`router`).
    Router,
    /// Any other rank-1 tensor named `bias`.
    Bias,
    /// Any other rank-1 tensor: a normalisation layer's gain or shift (`gamma`, `beta`).
    Norm,
    /// Everything else: projection matrices and convolution kernels.
    Weight,
}

/// A parameter's component and kind, and its rank (weight decay reads it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParamClass {
    pub component: Component,
    pub kind: ParamKind,
    pub rank: usize,
}

impl ParamClass {
    /// The class of the parameter at dotted `path` with `rank` dimensions.
    pub fn of(path: &str, rank: usize) -> Self {
        Self::of_segments(&path.split('.').collect::<Vec<_>>(), rank)
    }

    /// The class of the parameter whose path is `segments` (module names from the root, then
    /// the field), with `rank` dimensions.
    pub fn of_segments<S: AsRef<str>>(segments: &[S], rank: usize) -> Self {
        let seg = |i: usize| segments.get(i).map(|s| s.as_ref());
        let any = |f: &dyn Fn(&str) -> bool| segments.iter().any(|s| f(s.as_ref()));
        let expert = segments
            .iter()
            .rposition(|s| s.as_ref() == "experts")
            .and_then(|at| seg(at + 1)?.parse::<usize>().ok());
        let kind = if let Some(i) = expert {
            ParamKind::Expert(i)
        } else if any(&|s| s.contains("embed") || s.contains("cls_token")) {
            ParamKind::Embedding
        } else if any(&|s| s.contains("head")) {
            ParamKind::Head
        } else if any(&|s| s == "router") {
            ParamKind::Router
        } else if rank < 2 && segments.last().is_some_and(|s| s.as_ref() == "bias") {
            ParamKind::Bias
        } else if rank < 2 {
            ParamKind::Norm
        } else {
            ParamKind::Weight
        };
        Self { component: Component::of(seg(0).unwrap_or("")), kind, rank }
    }

    /// The expert index of an expert's tensor.
    pub fn expert(&self) -> Option<usize> {
        match self.kind {
            ParamKind::Expert(i) => Some(i),
            _ => None,
        }
    }

    /// Whether AdamW decays it (nanoGPT / HF Trainer): tensors of rank < 2 (norm gains, biases,
    /// the class embedding) only with `decay_norms_and_biases` (MM1/LLaVA: no), embeddings only
    /// with `decay_embeddings` (nanoGPT/HF Trainer: yes).
    pub fn decays(&self, decay_norms_and_biases: bool, decay_embeddings: bool) -> bool {
        (self.rank >= 2 || decay_norms_and_biases) && (decay_embeddings || self.kind != ParamKind::Embedding)
    }

    /// Whether it counts in N of the MM1 learning-rate rule: LLM parameters other than the
    /// token embedding and the head.
    pub fn counts_in_lr_rule(&self) -> bool {
        self.component == Component::Llm && !matches!(self.kind, ParamKind::Embedding | ParamKind::Head)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(path: &str, rank: usize) -> ParamKind {
        ParamClass::of(path, rank).kind
    }

    #[test]
    fn mm1_model_paths() {
        use ParamKind::*;
        let cases = [
            ("vision.embeddings.patch_embedding.weight", 4, Embedding),
            ("vision.embeddings.class_embedding", 1, Embedding),
            ("vision.embeddings.position_embedding", 2, Embedding),
            ("vision.pre_layrnorm.gamma", 1, Norm),
            ("vision.layers.0.layer_norm1.beta", 1, Norm),
            ("vision.layers.0.self_attn.q_proj.weight", 2, Weight),
            ("vision.layers.0.self_attn.q_proj.bias", 1, Bias),
            ("connector.CAbstractor.pos_emb", 2, Weight), // not `embed`: a weight, as before
            ("connector.CAbstractor.stage1.0.norm1.norm.gamma", 1, Norm),
            ("connector.CAbstractor.readout.0.bias", 1, Bias),
            ("connector.AttnPool.queries", 2, Weight),
            ("llm.embed_tokens.weight", 2, Embedding),
            ("llm.layers.1.input_layernorm.gamma", 1, Norm),
            ("llm.layers.1.mlp.Moe.router.weight", 2, Router),
            ("llm.layers.1.mlp.Moe.experts.3.up_proj.weight", 2, Expert(3)),
            ("llm.layers.1.mlp.Moe.experts.12.down_proj.bias", 1, Expert(12)),
            ("llm.layers.1.mlp.Dense.gate_proj.weight", 2, Weight),
            ("llm.norm.gamma", 1, Norm),
            ("llm.lm_head.weight", 2, Head),
        ];
        for (path, rank, want) in cases {
            assert_eq!(kind(path, rank), want, "{path}");
        }
    }

    #[test]
    fn components_are_the_first_segment() {
        let c = |p: &str| ParamClass::of(p, 2).component;
        assert_eq!(c("vision.layers.0.mlp.fc1.weight"), Component::Vision);
        assert_eq!(c("connector.proj.weight"), Component::Connector);
        assert_eq!(c("llm.lm_head.weight"), Component::Llm);
        assert_eq!(c("weight"), Component::Other);
        // segments and the dotted path agree
        let segs =
            ["llm", "layers", "0", "mlp", "Moe", "experts", "1", "up_proj", "weight"].map(String::from);
        assert_eq!(ParamClass::of_segments(&segs, 2), ParamClass::of(&segs.join("."), 2));
    }

    #[test]
    fn experts_need_an_index_and_the_innermost_wins() {
        assert_eq!(kind("llm.mlp.experts.weight", 2), ParamKind::Weight); // no index
        assert_eq!(kind("a.experts.1.b.experts.2.weight", 2), ParamKind::Expert(2));
        assert_eq!(ParamClass::of("llm.layers.0.mlp.Moe.experts.7.up_proj.weight", 2).expert(), Some(7));
        assert_eq!(ParamClass::of("llm.layers.0.mlp.Moe.router.weight", 2).expert(), None);
    }

    #[test]
    fn weight_decay_follows_rank_and_embedding() {
        let d = |p: &str, rank, norms, embeds| ParamClass::of(p, rank).decays(norms, embeds);
        // defaults (decay_norms_and_biases = false, decay_embeddings = true)
        assert!(d("llm.layers.0.attn.q_proj.weight", 2, false, true));
        assert!(!d("llm.norm.gamma", 1, false, true));
        assert!(!d("vision.layers.0.mlp.fc1.bias", 1, false, true));
        assert!(d("llm.embed_tokens.weight", 2, false, true));
        assert!(!d("vision.embeddings.class_embedding", 1, false, true)); // rank 1
        assert!(d("llm.layers.0.mlp.experts.0.up_proj.weight", 2, false, true));
        // the two switches
        assert!(d("llm.norm.gamma", 1, true, true));
        assert!(!d("llm.embed_tokens.weight", 2, false, false));
        assert!(!d("vision.embeddings.class_embedding", 1, true, false));
        assert!(d("vision.embeddings.class_embedding", 1, true, true));
    }

    #[test]
    fn lr_rule_counts_llm_without_embedding_and_head() {
        let n = |p: &str, rank| ParamClass::of(p, rank).counts_in_lr_rule();
        assert!(n("llm.layers.0.attn.q_proj.weight", 2));
        assert!(n("llm.layers.0.mlp.experts.1.up_proj.weight", 2));
        assert!(n("llm.layers.0.mlp.router.weight", 2));
        assert!(n("llm.norm.gamma", 1));
        assert!(!n("llm.embed_tokens.weight", 2));
        assert!(!n("llm.lm_head.weight", 2));
        assert!(!n("vision.layers.0.mlp.fc1.weight", 2));
        assert!(!n("connector.proj.weight", 2));
    }
}
