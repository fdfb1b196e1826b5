//! Fuzzing the sample path: random and mutated tar, JSON, text and image bytes go through exactly
//! what training runs on a shard (tar reading and grouping, `sample::process` with the kind that
//! `inspect` infers), and each case's outcome is counted. A panic that escapes the per-sample
//! guards, or an abort, ends the caller: `tests/fuzz.rs` runs 10 000 cases, `mm1-data fuzz` more.
//!
//! Cases start from small valid shards (caption samples with PNG, JPEG and WebP images of random
//! sizes, OBELICS-style interleaved documents, text) and then either replace the shard by random
//! bytes, flip bits, overwrite or insert runs of bytes, truncate it, or mutate a single member
//! (an image, the JSON, the text) inside a well-formed tar so that the decoders are reached.

use serde::{Deserialize, Serialize};

use crate::config::ResizeMode;
use crate::rng::Rng;
use crate::sample::{ProcessCtx, infer_kind, process};
use crate::shards::{ShardItem, read_tar_bytes};
use crate::skip::{SkipCounts, SkipReason};

/// What the cases became.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FuzzReport {
    pub cases: u64,
    /// Cases whose bytes the tar reader refused outright (not a tar at all).
    pub unreadable_shards: u64,
    /// Samples that came through whole (a mutation may leave a sample valid).
    pub good_samples: u64,
    /// Skips per reason, `panicked` included (a panic the guards turned into a skip).
    pub skipped: SkipCounts,
}

/// The members of one valid sample, before any mutation.
type Members = Vec<(String, Vec<u8>)>;

/// Runs `cases` cases from `seed` through the sample path with `ctx`.
pub fn run_fuzz(cases: u64, seed: u64, ctx: &ProcessCtx) -> FuzzReport {
    let mut report = FuzzReport::default();
    for case in 0..cases {
        let mut rng = Rng::from_words(&[seed, 0xf022, case]);
        let shard = fuzz_case(&mut rng);
        report.cases += 1;
        let Ok(items) = read_tar_bytes(shard) else {
            report.unreadable_shards += 1;
            continue;
        };
        for item in items {
            match item {
                ShardItem::Sample(raw) => match process(&raw, "fuzz", infer_kind(&raw), ctx) {
                    Ok(_) => report.good_samples += 1,
                    Err(skip) => report.skipped.add(skip.reason),
                },
                ShardItem::Truncated(_) => report.skipped.add(SkipReason::TruncatedShard),
            }
        }
    }
    report
}

/// The decode context the fuzz cases use without a tokenizer (`inspect`'s, at a CPU scale).
pub fn default_ctx() -> ProcessCtx {
    ProcessCtx { tokenizer: None, image_size: 32, resize: ResizeMode::ShortestSideCrop, max_pixels: 1 << 22 }
}

/// One case's shard bytes.
fn fuzz_case(rng: &mut Rng) -> Vec<u8> {
    let mut samples: Vec<(String, Members)> =
        (0..1 + rng.below(3)).map(|i| (format!("s{i:03}"), valid_sample(rng))).collect();
    match rng.below(6) {
        0 => {
            let n = rng.below(4096);
            random_bytes(rng, n)
        }
        1 => {
            // one member of one sample mutated, the tar around it intact
            let s = rng.below(samples.len());
            let members = &mut samples[s].1;
            let m = rng.below(members.len());
            mutate(rng, &mut members[m].1);
            write_tar(&samples)
        }
        _ => {
            let mut bytes = write_tar(&samples);
            mutate(rng, &mut bytes);
            bytes
        }
    }
}

/// A valid caption, interleaved or text sample with images of random size and format.
fn valid_sample(rng: &mut Rng) -> Members {
    match rng.below(3) {
        0 => {
            let (ext, bytes) = random_image(rng);
            vec![(ext.into(), bytes), ("txt".into(), b"a red square on a blue field".to_vec())]
        }
        1 => {
            let (e0, i0) = random_image(rng);
            let (e1, i1) = random_image(rng);
            let (n0, n1) = (format!("0.{e0}"), format!("1.{e1}"));
            let doc = serde_json::json!({
                "texts": ["before", null, "between", null, "after"],
                "images": [null, n0, null, n1, null],
            });
            vec![("json".into(), doc.to_string().into_bytes()), (n0, i0), (n1, i1)]
        }
        _ => vec![("txt".into(), "plain text, \u{e9}t\u{e9} \u{1f600} and more".as_bytes().to_vec())],
    }
}

/// A PNG, JPEG or WebP of 1-48 px per side with smooth content.
fn random_image(rng: &mut Rng) -> (&'static str, Vec<u8>) {
    let (w, h) = (1 + rng.below(48) as u32, 1 + rng.below(48) as u32);
    let phase = rng.below(256) as u32;
    let img = image::RgbImage::from_fn(w, h, |x, y| {
        image::Rgb([((x * 7 + phase) % 256) as u8, ((y * 5 + phase) % 256) as u8, ((x + y) * 3 % 256) as u8])
    });
    let mut out = std::io::Cursor::new(Vec::new());
    let (ext, format) = match rng.below(3) {
        0 => ("png", image::ImageFormat::Png),
        1 => ("jpg", image::ImageFormat::Jpeg),
        _ => ("webp", image::ImageFormat::WebP),
    };
    img.write_to(&mut out, format).expect("encoding a small RGB image in memory cannot fail");
    (ext, out.into_inner())
}

fn random_bytes(rng: &mut Rng, n: usize) -> Vec<u8> {
    (0..n).map(|_| rng.next_u64() as u8).collect()
}

/// Flips bits, overwrites or inserts a run, or truncates.
fn mutate(rng: &mut Rng, bytes: &mut Vec<u8>) {
    if bytes.is_empty() {
        let n = 1 + rng.below(64);
        bytes.extend(random_bytes(rng, n));
        return;
    }
    match rng.below(4) {
        0 => {
            for _ in 0..1 + rng.below(16) {
                let i = rng.below(bytes.len());
                bytes[i] ^= 1 << rng.below(8);
            }
        }
        1 => {
            let at = rng.below(bytes.len());
            let n = 1 + rng.below(64);
            let run = random_bytes(rng, n);
            for (k, b) in run.into_iter().enumerate() {
                if let Some(x) = bytes.get_mut(at + k) {
                    *x = b;
                }
            }
        }
        2 => {
            let at = rng.below(bytes.len() + 1);
            let n = 1 + rng.below(64);
            let run = random_bytes(rng, n);
            bytes.splice(at..at, run);
        }
        _ => bytes.truncate(rng.below(bytes.len())),
    }
}

/// A plain tar as webdataset's `TarWriter` writes it: `key.ext` members in sample order.
fn write_tar(samples: &[(String, Members)]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for (key, members) in samples {
        for (ext, bytes) in members {
            let mut header = tar::Header::new_gnu();
            header.set_size(bytes.len() as u64);
            header.set_mode(0o644);
            header.set_cksum();
            builder
                .append_data(&mut header, format!("{key}.{ext}"), bytes.as_slice())
                .expect("writing a tar into a Vec cannot fail");
        }
    }
    builder.into_inner().expect("finishing a tar into a Vec cannot fail")
}
