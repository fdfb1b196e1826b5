//! HF `tokenizers` wrapper with the three special tokens, and byte-level BPE training
//! (`mm1-data tokenizer train`), so a project can start without downloading a tokenizer.

use std::path::Path;

use tokenizers::models::TrainerWrapper;
use tokenizers::models::bpe::{BPE, BpeTrainerBuilder};
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::{AddedToken, Tokenizer};

use crate::config::DataConfig;
use crate::error::{DataError, Result};

/// A loaded `tokenizer.json` plus the ids of the special tokens the packer inserts.
pub struct TextTokenizer {
    tok: Tokenizer,
    pub image_id: u32,
    pub end_of_chunk_id: u32,
    pub pad_id: u32,
}

impl TextTokenizer {
    /// Loads `cfg.tokenizer` and looks up `cfg.{image,end_of_chunk,pad}_token`.
    pub fn load(cfg: &DataConfig) -> Result<Self> {
        Self::from_file(&cfg.tokenizer, [&cfg.image_token, &cfg.end_of_chunk_token, &cfg.pad_token])
    }

    pub fn from_file(path: &Path, specials: [&str; 3]) -> Result<Self> {
        let tok = Tokenizer::from_file(path)
            .map_err(|e| DataError::Tokenizer(format!("cannot load {}: {e}", path.display())))?;
        let id = |t: &str| {
            tok.token_to_id(t).ok_or_else(|| {
                DataError::Tokenizer(format!(
                    "special token {t:?} is not in the vocabulary of {}",
                    path.display()
                ))
            })
        };
        Ok(Self {
            image_id: id(specials[0])?,
            end_of_chunk_id: id(specials[1])?,
            pad_id: id(specials[2])?,
            tok,
        })
    }

    /// Token ids of `text` (no special tokens added).
    pub fn encode(&self, text: &str) -> std::result::Result<Vec<u32>, String> {
        let enc = self.tok.encode_fast(text, false).map_err(|e| e.to_string())?;
        Ok(enc.get_ids().to_vec())
    }

    pub fn decode(&self, ids: &[u32]) -> std::result::Result<String, String> {
        self.tok.decode(ids, false).map_err(|e| e.to_string())
    }

    /// Vocabulary size including added tokens (the model's `vocab_size` must be at least this).
    pub fn vocab_size(&self) -> usize {
        self.tok.get_vocab_size(true)
    }
}

/// Trains a byte-level BPE (GPT-2 style pre-tokenisation, all 256 bytes in the alphabet, so no
/// text is ever out of vocabulary) on `texts`, with `specials` as ids 0, 1, 2..., and saves it.
pub fn train_bpe<I, S>(texts: I, vocab_size: usize, specials: &[&str], out: &Path) -> Result<Tokenizer>
where
    I: Iterator<Item = S> + Send,
    S: AsRef<str> + Send,
{
    let err = |e: tokenizers::Error| DataError::Tokenizer(format!("training: {e}"));
    let mut tok = Tokenizer::new(BPE::default());
    tok.with_pre_tokenizer(Some(ByteLevel::default().add_prefix_space(false)));
    tok.with_decoder(Some(ByteLevel::default()));
    let special: Vec<AddedToken> = specials.iter().map(|s| AddedToken::from(s.to_string(), true)).collect();
    let mut trainer: TrainerWrapper = BpeTrainerBuilder::new()
        .vocab_size(vocab_size)
        .min_frequency(2)
        .show_progress(false)
        .special_tokens(special)
        .initial_alphabet(ByteLevel::alphabet().into_iter().collect())
        .build()
        .into();
    tok.train(&mut trainer, texts).map_err(err)?;
    if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| DataError::io(dir.display().to_string(), e))?;
    }
    tok.save(out, false).map_err(err)?;
    Ok(tok)
}

/// Every text of the samples in `spec` (captions `txt`, interleaved `json.texts`, text `txt` or
/// `json.text`), in shard order, for tokenizer training. Bad members are skipped silently here:
/// `inspect` is the tool that reports them.
pub fn shard_texts(
    spec: &str,
    opener: &dyn crate::shards::ShardOpener,
    max_samples: usize,
) -> Result<Vec<String>> {
    let mut out = Vec::new();
    let mut n = 0usize;
    for url in crate::shards::expand_spec(spec)? {
        let Ok(it) = opener.open(&url) else { continue };
        for item in it {
            let crate::shards::ShardItem::Sample(raw) = item else { break };
            if n >= max_samples {
                return Ok(out);
            }
            n += 1;
            if let Some(t) = raw.get("txt").and_then(|b| std::str::from_utf8(b).ok()) {
                out.push(t.to_string());
            }
            let json = raw.get("json").and_then(|b| serde_json::from_slice::<serde_json::Value>(b).ok());
            if let Some(j) = json {
                if let Some(t) = j.get("text").and_then(|t| t.as_str()) {
                    out.push(t.to_string());
                }
                if let Some(ts) = j.get("texts").and_then(|t| t.as_array()) {
                    out.extend(ts.iter().filter_map(|t| t.as_str().map(String::from)));
                }
            }
        }
    }
    if out.is_empty() {
        return Err(DataError::Tokenizer(format!("no text found in {spec}")));
    }
    Ok(out)
}
