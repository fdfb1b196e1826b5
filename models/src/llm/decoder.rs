//! The Llama-style decoder (HF `LlamaForCausalLM`): embeddings in, logits out.
//! Takes embeddings rather than token ids so the MM1 composite can splice image tokens in.

use super::attention::LayerKv;
use super::block::DecoderLayer;
use super::mask::segment_causal_mask;
use super::moe::MoeStats;
use super::rope::{Rope, RopeTables};
use crate::config::LlmConfig;
use burn::nn::{Embedding, EmbeddingConfig, Linear, LinearConfig, RmsNorm, RmsNormConfig};
use burn::prelude::*;
use burn::tensor::FloatDType;
use mm1_kernels::{AttentionMask, linear, rms_norm};

#[derive(Module, Debug)]
pub struct LlmDecoder {
    pub embed_tokens: Embedding,
    pub layers: Vec<DecoderLayer>,
    pub norm: RmsNorm,
    /// `None` when tied to `embed_tokens`.
    pub lm_head: Option<Linear>,
    pub rope: Rope,
    /// Dtype of the activations (`bf16` under mixed precision): [`LlmDecoder::embed`] returns it
    /// and every layer follows its input's; the parameters stay `f32`
    /// ([`crate::Mm1Model::with_compute_dtype`]).
    #[module(skip)]
    pub compute_dtype: FloatDType,
}

/// Decoder output before the LM head (HF `LlamaModel`'s last hidden state, after the final norm).
#[derive(Debug)]
pub struct DecoderHidden {
    /// `[b, t, d]`
    pub hidden: Tensor<3>,
    /// Sum of the weighted MoE aux losses, `[1]` (zero if dense).
    pub aux_loss: Tensor<1>,
    pub moe: Vec<MoeStats>,
    /// Per-layer keys/values including these tokens (for incremental decoding).
    pub kv: Vec<LayerKv>,
}

/// Decoder output.
#[derive(Debug)]
pub struct DecoderOutput {
    /// `[b, t, vocab]`
    pub logits: Tensor<3>,
    /// Sum of the weighted MoE aux losses, `[1]` (zero if dense).
    pub aux_loss: Tensor<1>,
    pub moe: Vec<MoeStats>,
    /// Per-layer keys/values including these tokens (for incremental decoding).
    pub kv: Vec<LayerKv>,
}

impl LlmDecoder {
    pub fn new(cfg: &LlmConfig, device: &Device) -> Self {
        Self {
            embed_tokens: EmbeddingConfig::new(cfg.vocab_size, cfg.width).init(device),
            layers: (0..cfg.layers).map(|i| DecoderLayer::new(cfg, i, device)).collect(),
            norm: RmsNormConfig::new(cfg.width).with_epsilon(cfg.rms_norm_eps).init(device),
            lm_head: (!cfg.tie_embeddings)
                .then(|| LinearConfig::new(cfg.width, cfg.vocab_size).with_bias(false).init(device)),
            rope: Rope { head_dim: cfg.head_dim(), theta: cfg.rope_theta },
            compute_dtype: FloatDType::F32,
        }
    }

    /// The token embeddings in the compute dtype.
    ///
    /// # Shapes
    /// - `tokens`: `[b, t]` → `[b, t, d]`
    pub fn embed(&self, tokens: Tensor<2, Int>) -> Tensor<3> {
        self.embed_tokens.forward(tokens).cast(self.compute_dtype)
    }

    /// Run the layers and the LM head over `x`, optionally continuing from cached keys/values.
    ///
    /// # Shapes
    /// - `x`: `[b, t, d]`; `position_ids`, `segment_ids`: `[b, t]`;
    ///   `past_segments`: `[b, t_past]` segment ids of the cached tokens → logits `[b, t, vocab]`
    pub fn forward(
        &self,
        x: Tensor<3>,
        position_ids: Tensor<2, Int>,
        segment_ids: Tensor<2, Int>,
        past: Option<(Vec<LayerKv>, Tensor<2, Int>)>,
    ) -> DecoderOutput {
        let out = self.forward_hidden(x, position_ids, segment_ids, past);
        DecoderOutput { logits: self.head(out.hidden), aux_loss: out.aux_loss, moe: out.moe, kv: out.kv }
    }

    /// [`LlmDecoder::forward`] without the LM head: the normed hidden states, for a caller
    /// that needs the logits of some positions only ([`LlmDecoder::head`] on those rows).
    ///
    /// # Shapes
    /// - as [`LlmDecoder::forward`] → hidden `[b, t, d]`
    pub fn forward_hidden(
        &self,
        x: Tensor<3>,
        position_ids: Tensor<2, Int>,
        segment_ids: Tensor<2, Int>,
        past: Option<(Vec<LayerKv>, Tensor<2, Int>)>,
    ) -> DecoderHidden {
        let device = x.device();
        let rope = self.rope.tables(position_ids); // [b, t, 1, dh]
        let (past_kv, k_seg) = match past {
            Some((kv, seg)) => {
                (kv.into_iter().map(Some).collect(), Tensor::cat(vec![seg, segment_ids.clone()], 1))
            }
            None => (vec![None; self.layers.len()], segment_ids.clone()),
        };
        let mask = AttentionMask::new(segment_causal_mask(segment_ids, k_seg)); // [b, 1, t, tk], once for all layers
        let (mut x, mut aux, mut moe, mut kv) = (x, Tensor::<1>::zeros([1], &device), Vec::new(), Vec::new());
        for (layer, past) in self.layers.iter().zip(past_kv) {
            let out = layer.forward(x, &rope, &mask, past);
            x = out.x;
            kv.push(out.kv);
            if let Some((loss, stats)) = out.moe {
                aux = aux + loss;
                moe.push(stats);
            }
        }
        DecoderHidden { hidden: self.final_norm(x), aux_loss: aux, moe, kv }
    }

    /// What every layer of a forward pass without cache shares: the RoPE tables and the
    /// segment-causal mask (for a caller that runs the layers one at a time).
    ///
    /// # Shapes
    /// - `position_ids`, `segment_ids`: `[b, t]` → tables `[b, t, 1, dh]`, mask `[b, 1, t, t]`
    pub fn layer_inputs(
        &self,
        position_ids: Tensor<2, Int>,
        segment_ids: Tensor<2, Int>,
    ) -> (RopeTables, AttentionMask) {
        let mask = AttentionMask::new(segment_causal_mask(segment_ids.clone(), segment_ids));
        (self.rope.tables(position_ids), mask)
    }

    /// The final RMSNorm after the last layer (HF `LlamaModel.norm`).
    ///
    /// # Shapes
    /// - `x`: `[b, t, d]` → `[b, t, d]`
    pub fn final_norm(&self, x: Tensor<3>) -> Tensor<3> {
        rms_norm(&self.norm, x)
    }

    /// The LM head (or the tied embedding) on normed hidden states.
    ///
    /// # Shapes
    /// - `x`: `[b, t, d]` → `[b, t, vocab]`
    pub fn head(&self, x: Tensor<3>) -> Tensor<3> {
        match &self.lm_head {
            Some(head) => linear(head, x),
            None => {
                // tied: x · Eᵀ
                let [b, t, d] = x.dims();
                let w = self.embed_tokens.weight.val().cast(x.dtype()); // [vocab, d], at x's dtype
                let [v, _] = w.dims();
                x.reshape([b * t, d]).matmul(w.transpose()).reshape([b, t, v])
            }
        }
    }
}
