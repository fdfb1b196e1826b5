//! Packed rows → `Batch`: targets, loss mask, and the placeholder checks done before a batch leaves.

use sha2::{Digest, Sha256};

use crate::batch::{Batch, SourceCounts};
use crate::error::{DataError, Result};
use crate::pack::{PackShape, Row};

/// SHA-256 (hex) of keys joined by newlines.
pub fn keys_sha256<S: AsRef<str>>(keys: &[S]) -> String {
    let mut h = Sha256::new();
    for k in keys {
        h.update(k.as_ref().as_bytes());
        h.update(b"\n");
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// Every row is exactly `seq_len` long and holds `num_image_tokens` placeholders per image, in
/// runs of whole images.
fn check_row(r: usize, row: &Row, s: &PackShape) -> Result<()> {
    let t = s.seq_len;
    let lens = [row.ids.len(), row.seg.len(), row.pos.len(), row.img.len(), row.src.len()];
    if lens.iter().any(|&l| l != t) {
        return Err(DataError::Invariant(format!("row {r}: buffer lengths {lens:?} != seq_len ({t})")));
    }
    let placeholders = row.img.iter().filter(|&&b| b).count();
    let expected = row.images.len() * s.num_image_tokens;
    if placeholders != expected {
        return Err(DataError::Invariant(format!(
            "row {r}: image placeholders ({placeholders}) != images ({}) x num_image_tokens ({}) = {expected}",
            row.images.len(),
            s.num_image_tokens
        )));
    }
    let mut run = 0usize;
    for (i, &b) in row.img.iter().chain(std::iter::once(&false)).enumerate() {
        if b {
            run += 1;
        } else if run > 0 {
            if !run.is_multiple_of(s.num_image_tokens) {
                return Err(DataError::Invariant(format!(
                    "row {r}: placeholder run of {run} ending at {i} is not a multiple of num_image_tokens ({})",
                    s.num_image_tokens
                )));
            }
            run = 0;
        }
    }
    Ok(())
}

/// Builds the batch. `targets[t] = ids[t+1]` within a segment; scored only when the target is
/// text of the same segment (not a placeholder, not padding, not the next document).
pub fn assemble(
    rows: Vec<Row>,
    shape: &PackShape,
    image_size: usize,
    names: &[String],
    dropped: (u64, u64),
    index: u64,
) -> Result<Batch> {
    let (b, t) = (rows.len(), shape.seq_len);
    for (r, row) in rows.iter().enumerate() {
        check_row(r, row, shape)?;
    }
    let mut batch = Batch {
        batch_size: b,
        seq_len: t,
        input_ids: Vec::with_capacity(b * t),
        targets: Vec::with_capacity(b * t),
        loss_mask: Vec::with_capacity(b * t),
        image_mask: Vec::with_capacity(b * t),
        segment_ids: Vec::with_capacity(b * t),
        position_ids: Vec::with_capacity(b * t),
        source_ids: Vec::with_capacity(b * t),
        n_images: rows.iter().map(|r| r.images.len()).sum(),
        image_size,
        num_image_tokens: shape.num_image_tokens,
        images: Vec::new(),
        sources: names.iter().map(|n| SourceCounts { name: n.clone(), ..Default::default() }).collect(),
        dropped_tokens: dropped.0,
        dropped_images: dropped.1,
        keys_sha256: String::new(),
        keys: Vec::new(),
        index,
    };
    let img_len = 3 * image_size * image_size;
    batch.images.reserve(batch.n_images * img_len);
    for row in rows {
        for i in 0..t {
            let same = i + 1 < t && row.seg[i] != 0 && row.seg[i + 1] == row.seg[i];
            batch.targets.push(if same { row.ids[i + 1] } else { shape.pad_id });
            batch.loss_mask.push(same && !row.img[i + 1]);
        }
        batch.input_ids.extend_from_slice(&row.ids);
        batch.image_mask.extend_from_slice(&row.img);
        batch.segment_ids.extend_from_slice(&row.seg);
        batch.position_ids.extend_from_slice(&row.pos);
        batch.source_ids.extend_from_slice(&row.src);
        for im in &row.images {
            if im.len() != img_len {
                return Err(DataError::Invariant(format!(
                    "image has {} values, expected 3*{image_size}^2 = {img_len}",
                    im.len()
                )));
            }
            batch.images.extend_from_slice(im);
        }
        for (acc, c) in batch.sources.iter_mut().zip(&row.per_source) {
            acc.samples += c.samples;
            acc.tokens += c.tokens;
            acc.images += c.images;
        }
        batch.keys.extend(row.keys);
    }
    batch.keys_sha256 = keys_sha256(&batch.keys);
    Ok(batch)
}
