//! `mm1-data preview`: writes what the model will see of the first samples of a shard spec, so a
//! user can look at a shard before training on it. Each sample goes through `sample::process`
//! (decode, resize, centre crop, normalise: the training path), and its images are written back as
//! PNG after undoing the CLIP normalisation; the texts are written with `<image>` where each image
//! sits. Skipped samples are listed with their reasons in `index.json`.

use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::config::SampleKind;
use crate::error::{DataError, Result};
use crate::image::{CLIP_MEAN, CLIP_STD};
use crate::sample::{ProcessCtx, Unit, infer_kind, process};
use crate::shards::{RawSample, ShardItem, ShardOpener, expand_spec};

/// One previewed sample: the files written for it, or why it was skipped.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PreviewEntry {
    pub shard: String,
    pub key: String,
    pub kind: String,
    /// PNG files (one per image, in document order), relative to the output folder.
    pub images: Vec<String>,
    /// The text file (texts in order, `<image>` where each image sits), relative to the output folder.
    pub text: Option<String>,
    /// `reason: detail` when the training path skips this sample.
    pub skipped: Option<String>,
}

/// Previews the first `n` samples of `spec` into `out` (created) and writes `out/index.json`.
pub fn preview(
    spec: &str,
    kind: Option<SampleKind>,
    n: usize,
    ctx: &ProcessCtx,
    opener: &dyn ShardOpener,
    out: &Path,
) -> Result<Vec<PreviewEntry>> {
    std::fs::create_dir_all(out).map_err(|e| DataError::io(out.display().to_string(), e))?;
    let mut entries = Vec::new();
    'shards: for url in expand_spec(spec)? {
        let items = opener.open(&url).map_err(|e| DataError::Shards(format!("{url}: {e}")))?;
        for item in items {
            if entries.len() >= n {
                break 'shards;
            }
            match item {
                ShardItem::Sample(raw) => {
                    let kind = kind.unwrap_or_else(|| infer_kind(&raw));
                    entries.push(preview_one(&raw, &url, kind, ctx, entries.len(), out)?);
                }
                ShardItem::Truncated(e) => {
                    eprintln!("warning: mm1-data preview: shard {url} breaks off: {e}");
                    continue 'shards;
                }
            }
        }
    }
    let index = out.join("index.json");
    let json = serde_json::to_string_pretty(&entries).map_err(|e| DataError::Shards(e.to_string()))?;
    std::fs::write(&index, json).map_err(|e| DataError::io(index.display().to_string(), e))?;
    Ok(entries)
}

fn preview_one(
    raw: &RawSample,
    shard: &str,
    kind: SampleKind,
    ctx: &ProcessCtx,
    index: usize,
    out: &Path,
) -> Result<PreviewEntry> {
    let stem = format!("{index:04}_{}", file_safe(&raw.key));
    let mut entry = PreviewEntry {
        shard: shard.to_string(),
        key: raw.key.clone(),
        kind: kind.name().to_string(),
        images: Vec::new(),
        text: None,
        skipped: None,
    };
    let doc = match process(raw, shard, kind, ctx) {
        Ok(doc) => doc,
        Err(skip) => {
            entry.skipped = Some(format!("{}: {}", skip.reason.name(), skip.detail));
            return Ok(entry);
        }
    };
    for (i, unit) in doc.units.iter().enumerate() {
        if let Unit::Image(chw) = unit {
            let name = format!("{stem}_{i}.png");
            write_png(&out.join(&name), &denormalize(chw, ctx.image_size), ctx.image_size)?;
            entry.images.push(name);
        }
    }
    let text = document_text(raw, kind);
    let name = format!("{stem}.txt");
    let path = out.join(&name);
    std::fs::write(&path, text).map_err(|e| DataError::io(path.display().to_string(), e))?;
    entry.text = Some(name);
    Ok(entry)
}

/// The sample's texts in order with `<image>` for each image (the raw text; tokenising is the
/// loader's business). Only called on samples that `process` accepted, so the members exist.
fn document_text(raw: &RawSample, kind: SampleKind) -> String {
    let utf8 = |ext: &str| raw.get(ext).map(|b| String::from_utf8_lossy(b).into_owned()).unwrap_or_default();
    let json = || raw.get("json").and_then(|b| serde_json::from_slice::<Value>(b).ok());
    match kind {
        SampleKind::Caption => format!("<image>{}\n", utf8("txt").trim()),
        SampleKind::Interleaved => {
            let json = json().unwrap_or_default();
            let texts = json.get("texts").and_then(Value::as_array).cloned().unwrap_or_default();
            let parts: Vec<String> = texts
                .iter()
                .map(|t| t.as_str().map_or_else(|| "<image>".to_string(), str::to_string))
                .collect();
            format!("{}\n", parts.join("\n"))
        }
        SampleKind::Text => match raw.get("txt") {
            Some(_) => format!("{}\n", utf8("txt")),
            None => {
                let json = json().unwrap_or_default();
                format!("{}\n", json.get("text").and_then(Value::as_str).unwrap_or_default())
            }
        },
    }
}

/// Planar CLIP-normalised `[3, s, s]` back to interleaved RGB8 (the resized, cropped pixels).
fn denormalize(chw: &[f32], size: usize) -> Vec<u8> {
    let hw = size * size;
    let mut rgb = vec![0u8; 3 * hw];
    for (p, px) in rgb.chunks_exact_mut(3).enumerate() {
        for c in 0..3 {
            let v = (chw[c * hw + p] * CLIP_STD[c] + CLIP_MEAN[c]) * 255.0;
            px[c] = v.round().clamp(0.0, 255.0) as u8;
        }
    }
    rgb
}

fn write_png(path: &Path, rgb: &[u8], size: usize) -> Result<()> {
    image::save_buffer_with_format(
        path,
        rgb,
        size as u32,
        size as u32,
        image::ExtendedColorType::Rgb8,
        image::ImageFormat::Png,
    )
    .map_err(|e| DataError::io(path.display().to_string(), std::io::Error::other(e)))
}

/// A sample key as one file name component (`cap/s000` → `cap_s000`).
fn file_safe(key: &str) -> String {
    key.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '.' { c } else { '_' }).collect()
}
