//! The MM1 composite (MM1 Fig. 2): image → ViT → connector → image tokens written at the
//! placeholder positions of the text embeddings → decoder → logits (+ MoE aux losses).

use crate::ModelError;
use crate::config::{FreezeConfig, Mm1Config};
use crate::connector::Connector;
use crate::llm::{DecoderOutput, ExpertDispatch, Ffn, LayerKv, LlmDecoder, MoeStats};
use crate::vit::VisionTransformer;
use burn::prelude::*;
use burn::tensor::{FloatDType, IndexingUpdateOp};
use std::sync::Arc;

#[derive(Module, Debug)]
pub struct Mm1Model {
    pub vision: VisionTransformer,
    pub connector: Connector,
    pub llm: LlmDecoder,
    /// `[h, w]` pixels the connector was built for.
    pub image_size: [usize; 2],
    /// Image tokens per image (M).
    pub num_image_tokens: usize,
    /// Longest sequence (`model.llm.max_seq_len`), cache included.
    pub max_seq_len: usize,
}

/// One batch, as described in `docs/architecture.md`.
#[derive(Debug, Clone)]
pub struct Mm1Input {
    /// `[b, t]` token ids (values at image placeholders are ignored).
    pub tokens: Tensor<2, Int>,
    /// `[b, t]`, `true` at image placeholders.
    pub image_mask: Tensor<2, Bool>,
    /// `[b, t]` document id per token; tokens only attend within their document.
    pub segment_ids: Tensor<2, Int>,
    /// `[b, t]` RoPE positions (restart at 0 per packed document).
    pub position_ids: Tensor<2, Int>,
    /// `[n, 3, h, w]` images in placeholder order (row-major over the batch).
    pub images: Option<Tensor<4>>,
}

/// [`Mm1Output`] before the LM head.
#[derive(Debug)]
pub struct Mm1Hidden {
    /// `[b, t, d]` the decoder's normed last hidden states.
    pub hidden: Tensor<3>,
    /// `[1]` weighted MoE losses (load balance + z-loss); zero for a dense LLM.
    pub aux_loss: Tensor<1>,
    /// One entry per MoE layer.
    pub moe: Vec<MoeStats>,
}

#[derive(Debug)]
pub struct Mm1Output {
    /// `[b, t, vocab]`
    pub logits: Tensor<3>,
    /// `[1]` weighted MoE losses (load balance + z-loss); zero for a dense LLM.
    pub aux_loss: Tensor<1>,
    /// One entry per MoE layer.
    pub moe: Vec<MoeStats>,
}

/// Keys/values of every decoder layer for the tokens seen so far (incremental decoding).
#[derive(Debug, Clone)]
pub struct DecodeCache {
    pub kv: Vec<LayerKv>,
    /// `[b, t_past]` segment ids of the cached tokens.
    pub segment_ids: Tensor<2, Int>,
}

impl DecodeCache {
    /// Tokens already in the cache.
    pub fn len(&self) -> usize {
        self.segment_ids.dims()[1]
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Mm1Config {
    /// Validate, then allocate the model on `device` (frozen parts get no gradients).
    pub fn init(&self, device: &Device) -> Result<Mm1Model, ModelError> {
        self.validate()?;
        let model = Mm1Model {
            vision: VisionTransformer::new(&self.vision, device),
            connector: Connector::new(&self.connector, &self.vision, self.llm.width, device),
            llm: LlmDecoder::new(&self.llm, device),
            image_size: self.vision.image_size.hw(),
            num_image_tokens: self.connector.num_tokens(),
            max_seq_len: self.llm.max_seq_len,
        };
        Ok(model.freeze(&self.freeze))
    }
}

impl Mm1Model {
    /// Stop gradients for the components `freeze` names (call again after loading weights).
    pub fn freeze(mut self, freeze: &FreezeConfig) -> Self {
        if freeze.vision {
            self.vision = self.vision.no_grad();
        }
        if freeze.connector {
            self.connector = self.connector.no_grad();
        }
        if freeze.llm {
            self.llm = self.llm.no_grad();
        }
        self
    }

    /// Mixed precision (`bf16`): the token and patch embeddings hand their blocks activations in
    /// `dtype`, and every later op follows its input's dtype; the parameters stay `f32` and are
    /// cast at use (their gradients return in `f32`). Norms, softmax, attention scores, the MoE
    /// router and the loss compute in `f32` (`docs/training.md`, "Mixed precision").
    pub fn with_compute_dtype(mut self, dtype: FloatDType) -> Self {
        self.vision.embeddings.compute_dtype = dtype;
        self.llm.compute_dtype = dtype;
        self
    }

    /// The dtype of the activations ([`Mm1Model::with_compute_dtype`]).
    pub fn compute_dtype(&self) -> FloatDType {
        self.llm.compute_dtype
    }

    /// Install an expert dispatcher (e.g. expert-parallel) in every MoE layer.
    pub fn with_expert_dispatch(mut self, dispatch: Arc<dyn ExpertDispatch>) -> Self {
        for layer in self.llm.layers.iter_mut() {
            if let Ffn::Moe(moe) = &mut layer.mlp {
                moe.dispatch = dispatch.clone();
            }
        }
        self
    }

    /// Check shapes and that placeholders match the image tokens; returns the flat
    /// placeholder positions (row-major over `[b, t]`).
    pub fn validate_input(&self, input: &Mm1Input) -> Result<Vec<i64>, ModelError> {
        self.check_input(input, 0)
    }

    fn check_input(&self, input: &Mm1Input, past: usize) -> Result<Vec<i64>, ModelError> {
        let [b, t] = input.tokens.dims();
        if past + t > self.max_seq_len {
            return Err(ModelError::Input(format!(
                "sequence length ({}) exceeds model.llm.max_seq_len ({})",
                past + t,
                self.max_seq_len
            )));
        }
        for (name, dims) in [
            ("image_mask", input.image_mask.dims()),
            ("segment_ids", input.segment_ids.dims()),
            ("position_ids", input.position_ids.dims()),
        ] {
            if dims != [b, t] {
                return Err(ModelError::Input(format!("{name} shape {dims:?} != tokens shape [{b}, {t}]")));
            }
        }
        let positions: Vec<i64> = input
            .image_mask
            .to_data()
            .iter::<bool>()
            .enumerate()
            .filter_map(|(i, m)| m.then_some(i as i64))
            .collect();
        let n = match &input.images {
            Some(images) => {
                let [n, c, h, w] = images.dims();
                if [c, h, w] != [3, self.image_size[0], self.image_size[1]] {
                    return Err(ModelError::Input(format!(
                        "images are [{n}, {c}, {h}, {w}] but the model expects [n, 3, {}, {}]",
                        self.image_size[0], self.image_size[1]
                    )));
                }
                n
            }
            None => 0,
        };
        let expected = n * self.num_image_tokens;
        if positions.len() != expected {
            return Err(ModelError::Input(format!(
                "image placeholders ({}) != connector tokens ({expected} = {n} images x {} tokens)",
                positions.len(),
                self.num_image_tokens
            )));
        }
        Ok(positions)
    }

    /// Image tokens for a batch of images.
    ///
    /// # Shapes
    /// - `images`: `[n, 3, h, w]` → `[n, m, d]`
    pub fn encode_images(&self, images: Tensor<4>) -> Tensor<3> {
        let [_, _, h, w] = images.dims();
        let patch = self.vision.embeddings.patch_size;
        let feats = self.vision.forward(images); // [n, p, dv]
        self.connector.forward(feats, [h / patch, w / patch]) // [n, m, d]
    }

    /// Text embeddings with image tokens written at the placeholders.
    ///
    /// # Shapes
    /// - output: `[b, t, d]`
    pub fn embed(&self, input: &Mm1Input) -> Result<Tensor<3>, ModelError> {
        self.embed_after(input, 0)
    }

    fn embed_after(&self, input: &Mm1Input, past: usize) -> Result<Tensor<3>, ModelError> {
        let positions = self.check_input(input, past)?;
        // text only also for an empty `[0, 3, h, w]` image batch
        let images = input.images.clone().filter(|_| !positions.is_empty());
        let img = images.map(|images| self.encode_images(images)); // [n, m, d]
        Ok(self.splice(input, positions, img))
    }

    /// [`Mm1Model::embed`] with the image tokens given (from [`Mm1Model::encode_images`], or
    /// [`Mm1Model::connect`] on the ViT's patch features; `None` for a text-only batch), for a
    /// caller that runs the vision tower itself.
    ///
    /// # Shapes
    /// - `image_tokens`: `[n, m, d]` → `[b, t, d]`
    pub fn embed_with_image_tokens(
        &self,
        input: &Mm1Input,
        image_tokens: Option<Tensor<3>>,
    ) -> Result<Tensor<3>, ModelError> {
        let positions = self.check_input(input, 0)?;
        let given = image_tokens.as_ref().map_or(0, |img| img.dims()[0] * img.dims()[1]);
        if given != positions.len() {
            return Err(ModelError::Input(format!(
                "image placeholders ({}) != image tokens given ({given})",
                positions.len()
            )));
        }
        Ok(self.splice(input, positions, image_tokens.filter(|_| given > 0)))
    }

    /// The connector on the ViT's patch features of images of the model's `image_size`.
    ///
    /// # Shapes
    /// - `feats`: `[n, p, dv]` → `[n, m, d]`
    pub fn connect(&self, feats: Tensor<3>) -> Tensor<3> {
        let patch = self.vision.embeddings.patch_size;
        let [h, w] = self.image_size;
        self.connector.forward(feats, [h / patch, w / patch])
    }

    /// Text embeddings of `input.tokens` with `img` written at the flat placeholder `positions`.
    ///
    /// # Shapes
    /// - `img`: `[n, m, d]` with `n·m = positions.len()` → `[b, t, d]`
    fn splice(&self, input: &Mm1Input, positions: Vec<i64>, img: Option<Tensor<3>>) -> Tensor<3> {
        let x = self.llm.embed(input.tokens.clone()); // [b, t, d]
        let Some(img) = img else {
            return x;
        };
        let [b, t, d] = x.dims();
        let device = x.device();
        let [n, m, _] = img.dims();
        let idx = Tensor::<1, Int>::from_data(TensorData::new(positions, [n * m]), &device);
        let scattered = Tensor::<2>::zeros([b * t, d], &device).cast(x.dtype()).select_assign(
            0,
            idx,
            img.reshape([n * m, d]),
            IndexingUpdateOp::Add,
        ); // [b*t, d]
        let mask = input.image_mask.clone().reshape([b * t, 1]).expand([b * t, d]); // [b*t, d]
        x.reshape([b * t, d]).mask_where(mask, scattered).reshape([b, t, d])
    }

    /// The training forward pass.
    pub fn forward(&self, input: Mm1Input) -> Result<Mm1Output, ModelError> {
        let out = self.forward_hidden(input)?;
        Ok(Mm1Output { logits: self.logits(out.hidden), aux_loss: out.aux_loss, moe: out.moe })
    }

    /// [`Mm1Model::forward`] up to the LM head, so that the trainer can apply the head to the
    /// scored positions only (as HF's `logits_to_keep` does for the last ones): the
    /// `[b·t, vocab]` logits of image and padding positions are never computed.
    pub fn forward_hidden(&self, input: Mm1Input) -> Result<Mm1Hidden, ModelError> {
        let x = self.embed(&input)?; // [b, t, d]
        let out = self.llm.forward_hidden(x, input.position_ids, input.segment_ids, None);
        Ok(Mm1Hidden { hidden: out.hidden, aux_loss: out.aux_loss, moe: out.moe })
    }

    /// The LM head on hidden states from [`Mm1Model::forward_hidden`] (any rows of them).
    ///
    /// # Shapes
    /// - `hidden`: `[b, n, d]` → `[b, n, vocab]`
    pub fn logits(&self, hidden: Tensor<3>) -> Tensor<3> {
        self.llm.head(hidden)
    }

    /// Incremental decoding: run `input` after the tokens in `cache` (none for the prompt)
    /// and return the logits of the new tokens plus the extended cache. Images may come
    /// with any chunk; `position_ids` continue where the cache ended.
    pub fn forward_cached(
        &self,
        input: Mm1Input,
        cache: Option<DecodeCache>,
    ) -> Result<(Mm1Output, DecodeCache), ModelError> {
        let past_len = cache.as_ref().map_or(0, DecodeCache::len);
        let x = self.embed_after(&input, past_len)?; // [b, t, d]
        let segments = input.segment_ids.clone();
        let past = cache.map(|c| (c.kv, c.segment_ids));
        let all_segments = match &past {
            Some((_, seg)) => Tensor::cat(vec![seg.clone(), segments.clone()], 1),
            None => segments.clone(),
        };
        let DecoderOutput { logits, aux_loss, moe, kv } =
            self.llm.forward(x, input.position_ids, segments, past);
        Ok((Mm1Output { logits, aux_loss, moe }, DecodeCache { kv, segment_ids: all_segments }))
    }
}
