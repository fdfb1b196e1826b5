//! Raw grouped members → a parsed document (`Doc`) for each sample kind (formats in docs/data.md).
//! Runs on the decode workers: images are decoded, texts tokenised here.

use std::sync::Arc;

use serde_json::Value;

use crate::config::{ResizeMode, SampleKind};
use crate::image::{IMAGE_EXTS, preprocess};
use crate::shards::RawSample;
use crate::skip::{Skip, SkipReason, guard};
use crate::tokenizer::TextTokenizer;

/// One packing unit: a tokenised text chunk (ending with `<|endofchunk|>`) or one image.
#[derive(Debug, Clone, PartialEq)]
pub enum Unit {
    Text(Vec<u32>),
    /// `[3, s, s]` f32, CLIP-normalised.
    Image(Vec<f32>),
}

/// A parsed, decoded and tokenised sample.
#[derive(Debug, Clone, PartialEq)]
pub struct Doc {
    pub kind: SampleKind,
    /// `shard/key`, used in logs and the batch key hash.
    pub key: String,
    pub units: Vec<Unit>,
}

impl Doc {
    pub fn n_images(&self) -> usize {
        self.units.iter().filter(|u| matches!(u, Unit::Image(_))).count()
    }
}

/// What the decode workers need.
#[derive(Clone)]
pub struct ProcessCtx {
    /// `None` in `inspect` without a tokenizer: texts are checked but not tokenised.
    pub tokenizer: Option<Arc<TextTokenizer>>,
    pub image_size: usize,
    pub resize: ResizeMode,
    pub max_pixels: u64,
}

/// Infers the kind from the members (used by `inspect` without `--kind`).
pub fn infer_kind(raw: &RawSample) -> SampleKind {
    if let Some(j) = raw.get("json")
        && let Ok(Value::Object(m)) = serde_json::from_slice::<Value>(j)
        && m.contains_key("texts")
        && m.contains_key("images")
    {
        return SampleKind::Interleaved;
    }
    if IMAGE_EXTS.iter().any(|e| raw.get(e).is_some()) { SampleKind::Caption } else { SampleKind::Text }
}

struct Parse<'a> {
    raw: &'a RawSample,
    shard: &'a str,
    ctx: &'a ProcessCtx,
}

impl Parse<'_> {
    fn skip(&self, reason: SkipReason, detail: impl Into<String>) -> Skip {
        Skip { reason, shard: self.shard.to_string(), key: self.raw.key.clone(), detail: detail.into() }
    }

    fn utf8<'b>(&self, bytes: &'b [u8], member: &str) -> Result<&'b str, Skip> {
        std::str::from_utf8(bytes)
            .map_err(|e| self.skip(SkipReason::InvalidUtf8, format!("member {member}: {e}")))
    }

    fn json(&self) -> Result<Option<Value>, Skip> {
        let Some(bytes) = self.raw.get("json") else { return Ok(None) };
        let text = self.utf8(bytes, "json")?;
        serde_json::from_str(text)
            .map(Some)
            .map_err(|e| self.skip(SkipReason::MalformedJson, format!("member json: {e}")))
    }

    fn text_unit(&self, text: &str, member: &str) -> Result<Unit, Skip> {
        let Some(tok) = &self.ctx.tokenizer else { return Ok(Unit::Text(Vec::new())) };
        let mut ids = tok.encode(text).map_err(|e| {
            self.skip(SkipReason::MissingText, format!("member {member}: tokenizer failed: {e}"))
        })?;
        ids.push(tok.end_of_chunk_id);
        Ok(Unit::Text(ids))
    }

    fn image_unit(&self, member: &str) -> Result<Unit, Skip> {
        let bytes = self
            .raw
            .get(member)
            .ok_or_else(|| self.skip(SkipReason::MissingImage, format!("no member {member:?}")))?;
        preprocess(bytes, self.ctx.image_size, self.ctx.resize, self.ctx.max_pixels)
            .map(Unit::Image)
            .map_err(|e| self.skip(e.reason, format!("member {member}: {}", e.detail)))
    }

    fn caption(&self) -> Result<Vec<Unit>, Skip> {
        let member = IMAGE_EXTS.iter().find(|e| self.raw.get(e).is_some()).ok_or_else(|| {
            self.skip(SkipReason::MissingImage, format!("no image member ({})", IMAGE_EXTS.join("/")))
        })?;
        let txt = self.raw.get("txt").ok_or_else(|| self.skip(SkipReason::MissingText, "no txt member"))?;
        let caption = self.utf8(txt, "txt")?.trim();
        if caption.is_empty() {
            return Err(self.skip(SkipReason::MissingText, "empty caption"));
        }
        self.json()?; // metadata only, but it must be valid JSON
        Ok(vec![self.image_unit(member)?, self.text_unit(caption, "txt")?])
    }

    fn interleaved(&self) -> Result<Vec<Unit>, Skip> {
        let bad = |d: String| self.skip(SkipReason::MalformedJson, d);
        let json = self.json()?.ok_or_else(|| bad("no json member".into()))?;
        let (Some(Value::Array(texts)), Some(Value::Array(images))) = (json.get("texts"), json.get("images"))
        else {
            return Err(bad("json needs lists \"texts\" and \"images\"".into()));
        };
        if texts.len() != images.len() {
            return Err(bad(format!("texts has {} entries but images has {}", texts.len(), images.len())));
        }
        let mut units = Vec::with_capacity(texts.len());
        for (i, (t, im)) in texts.iter().zip(images).enumerate() {
            match (t, im) {
                (Value::String(t), Value::Null) => {
                    units.push(self.text_unit(t, &format!("json texts[{i}]"))?)
                }
                (Value::Null, Value::String(name)) => {
                    units.push(self.image_unit(&name.to_ascii_lowercase())?)
                }
                _ => {
                    return Err(bad(format!(
                        "position {i}: exactly one of texts/images must be a non-null string"
                    )));
                }
            }
        }
        if units.is_empty() {
            return Err(self.skip(SkipReason::Empty, "document has no texts and no images"));
        }
        Ok(units)
    }

    fn text(&self) -> Result<Vec<Unit>, Skip> {
        let text = match (self.raw.get("txt"), self.json()?) {
            (Some(txt), _) => self.utf8(txt, "txt")?.to_string(),
            (None, Some(json)) => match json.get("text") {
                Some(Value::String(t)) => t.clone(),
                _ => return Err(self.skip(SkipReason::MalformedJson, "json has no string field \"text\"")),
            },
            (None, None) => {
                return Err(self.skip(SkipReason::MissingText, "no txt member and no json member"));
            }
        };
        if text.trim().is_empty() {
            return Err(self.skip(SkipReason::Empty, "empty text"));
        }
        Ok(vec![self.text_unit(&text, "txt")?])
    }
}

/// Parses, decodes and tokenises one sample as `kind`; a bad sample comes back as a `Skip`.
///
/// A panic anywhere below (image decoders, resizer, tokenizer, JSON) becomes a `Panicked` skip
/// naming the shard and key: third-party decoders fed arbitrary bytes are not trusted to return
/// errors only. (Aborts cannot be caught; `tests/fuzz.rs` feeds mutated shards to find them.)
pub fn process(raw: &RawSample, shard: &str, kind: SampleKind, ctx: &ProcessCtx) -> Result<Doc, Skip> {
    let p = Parse { raw, shard, ctx };
    let units = guard(
        || match kind {
            SampleKind::Caption => p.caption(),
            SampleKind::Interleaved => p.interleaved(),
            SampleKind::Text => p.text(),
        },
        |message| p.skip(SkipReason::Panicked, format!("panic: {message}")),
    )?;
    Ok(Doc { kind, key: format!("{shard}/{}", raw.key), units })
}
