//! Bad input: every case is skipped with a warning naming shard and key, counted per reason,
//! and training goes on; past `max_skip_fraction` the loader stops with a clear error.

mod common;

use std::path::Path;

use common::{SHAPE, config};
use mm1_data::inspect::inspect;
use mm1_data::sample::ProcessCtx;
use mm1_data::synth::{Scene, write_tar};
use mm1_data::{DataError, Loader, ResizeMode, SampleKind, SkipReason, SourceConfig, WdsOpener};

fn jpg(seed: u64) -> Vec<u8> {
    Scene::sample(&mut mm1_data::rng::Rng(seed)).render(32).encode_jpeg(85)
}

fn good_caption(key: &str, seed: u64) -> Vec<(String, Vec<u8>)> {
    vec![(format!("{key}.jpg"), jpg(seed)), (format!("{key}.txt"), format!("a caption {seed}").into_bytes())]
}

/// One shard with 10 good captions and one bad sample of every per-sample kind.
fn bad_shard(dir: &Path) -> String {
    let mut m = Vec::new();
    for i in 0..10 {
        m.extend(good_caption(&format!("good{i:02}"), i));
    }
    m.push(("corrupt.jpg".into(), vec![0xff, 0xd8, 0xff, 0xe0, 1, 2, 3, 4, 5]));
    m.push(("corrupt.txt".into(), b"header only".to_vec()));
    m.push(("nocap.jpg".into(), jpg(5)));
    m.push(("badutf.jpg".into(), jpg(6)));
    m.push(("badutf.txt".into(), vec![b'o', b'k', 0xff, 0xfe]));
    m.push(("badjson.jpg".into(), jpg(7)));
    m.push(("badjson.txt".into(), b"fine".to_vec()));
    m.push(("badjson.json".into(), b"{\"a\": [1, 2".to_vec()));
    let path = dir.join("bad.tar");
    write_tar(&path, &m).unwrap();
    path.display().to_string()
}

fn ctx(max_pixels: u64) -> ProcessCtx {
    ProcessCtx { tokenizer: None, image_size: 16, resize: ResizeMode::ShortestSideCrop, max_pixels }
}

fn pool() -> rayon::ThreadPool {
    rayon::ThreadPoolBuilder::new().num_threads(2).build().unwrap()
}

#[test]
fn every_per_sample_case_is_counted_by_reason() {
    let dir = tempfile::tempdir().unwrap();
    let spec = bad_shard(dir.path());
    let r = inspect(&spec, Some(SampleKind::Caption), &ctx(1 << 24), &WdsOpener, &pool()).unwrap();
    assert_eq!(r.samples, 10);
    assert_eq!(r.skipped.get(SkipReason::CorruptImage), 1);
    assert_eq!(r.skipped.get(SkipReason::MissingText), 1);
    assert_eq!(r.skipped.get(SkipReason::InvalidUtf8), 1);
    assert_eq!(r.skipped.get(SkipReason::MalformedJson), 1);
    assert_eq!(r.skipped.total(), 4);
}

#[test]
fn truncated_jpeg_data_is_reported_not_panicking() {
    let mut b = jpg(3);
    b.truncate(b.len() / 2);
    // zune-jpeg may decode a truncated scan with grey fill or fail; either way no panic and
    // a failure is a CorruptImage skip
    if let Err(e) = mm1_data::image::preprocess(&b, 16, ResizeMode::ShortestSideCrop, 1 << 24) {
        assert_eq!(e.reason, SkipReason::CorruptImage);
    }
    let e = mm1_data::image::preprocess(b"not an image at all", 16, ResizeMode::Squash, 1 << 24).unwrap_err();
    assert_eq!(e.reason, SkipReason::CorruptImage);
}

#[test]
fn pixel_limit_rejects_before_decoding() {
    let dir = tempfile::tempdir().unwrap();
    let spec = bad_shard(dir.path());
    // 32x32 = 1024 pixels > 1000: every image is "too large"
    let r = inspect(&spec, Some(SampleKind::Caption), &ctx(1000), &WdsOpener, &pool()).unwrap();
    assert_eq!(r.samples, 0);
    // the 10 good captions; the broken ones fail earlier checks (text, UTF-8, JSON, header)
    assert_eq!(r.skipped.get(SkipReason::ImageTooLarge), 10);
    // a PNG header announcing 100000 x 100000 pixels is rejected from the header alone
    let mut png = Vec::new();
    image::ImageEncoder::write_image(
        image::codecs::png::PngEncoder::new(&mut png),
        &[0u8; 3],
        1,
        1,
        image::ExtendedColorType::Rgb8,
    )
    .unwrap();
    png[16..20].copy_from_slice(&100_000u32.to_be_bytes());
    png[20..24].copy_from_slice(&100_000u32.to_be_bytes());
    let crc = crc32(&png[12..29]); // IHDR type + data
    png[29..33].copy_from_slice(&crc.to_be_bytes());
    let e = mm1_data::image::preprocess(&png, 16, ResizeMode::Squash, 1 << 26).unwrap_err();
    assert_eq!(e.reason, SkipReason::ImageTooLarge, "{}", e.detail);
}

#[test]
fn truncated_and_missing_shards_are_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let mut m = Vec::new();
    for i in 0..6 {
        m.extend(good_caption(&format!("k{i}"), i));
    }
    let full = dir.path().join("full.tar");
    write_tar(&full, &m).unwrap();
    let bytes = std::fs::read(&full).unwrap();
    let cut = dir.path().join("cut.tar");
    std::fs::write(&cut, &bytes[..bytes.len() / 2 + 100]).unwrap();
    let spec = format!("{}::{}::{}", full.display(), cut.display(), dir.path().join("missing.tar").display());
    let r = inspect(&spec, Some(SampleKind::Caption), &ctx(1 << 24), &WdsOpener, &pool()).unwrap();
    assert_eq!(r.skipped.get(SkipReason::TruncatedShard), 1);
    assert_eq!(r.skipped.get(SkipReason::MissingShard), 1);
    // all 6 of the full shard, and the complete samples before the cut
    assert!(r.samples > 6 && r.samples < 12, "{} samples", r.samples);
}

#[test]
fn interleaved_schema_errors_are_malformed_json_or_missing_image() {
    let dir = tempfile::tempdir().unwrap();
    let docs: Vec<(&str, serde_json::Value)> = vec![
        ("unequal", serde_json::json!({"texts": ["a", null], "images": [null]})),
        ("both", serde_json::json!({"texts": ["a"], "images": ["0.jpg"]})),
        ("nolists", serde_json::json!({"text": "a"})),
        ("noimage", serde_json::json!({"texts": ["a", null], "images": [null, "3.jpg"]})),
        ("ok", serde_json::json!({"texts": ["a", null], "images": [null, "0.jpg"]})),
    ];
    let mut m = Vec::new();
    for (k, d) in docs {
        m.push((format!("{k}.json"), d.to_string().into_bytes()));
        m.push((format!("{k}.0.jpg"), jpg(1)));
    }
    let p = dir.path().join("il.tar");
    write_tar(&p, &m).unwrap();
    let r =
        inspect(&p.display().to_string(), Some(SampleKind::Interleaved), &ctx(1 << 24), &WdsOpener, &pool())
            .unwrap();
    assert_eq!(r.samples, 1);
    assert_eq!(r.skipped.get(SkipReason::MalformedJson), 3);
    assert_eq!(r.skipped.get(SkipReason::MissingImage), 1);
}

fn loader_cfg(spec: String, max_skip: f64) -> mm1_data::DataConfig {
    let mut cfg = config(vec![SourceConfig {
        name: "bad".into(),
        kind: SampleKind::Caption,
        shards: spec,
        weight: 1.0,
    }]);
    cfg.max_skip_fraction = max_skip;
    cfg.min_samples_for_skip_check = 10;
    cfg.batch_size = 1;
    cfg
}

#[test]
fn loader_goes_on_and_counts_then_stops_past_max_skip_fraction() {
    let dir = tempfile::tempdir().unwrap();
    let spec = bad_shard(dir.path());
    // 4 bad of 14 = 0.29: allowed at 0.5
    let mut l = Loader::new(&loader_cfg(spec.clone(), 0.5), SHAPE, 0, 1).unwrap();
    for _ in 0..12 {
        l.next_batch().unwrap();
    }
    let s = l.stats();
    assert!(s.skipped.total() >= 4, "{:?}", s.skipped);
    assert!(s.skipped.get(SkipReason::CorruptImage) >= 1);
    // the same data at 0.1 stops with a clear error
    let mut l = Loader::new(&loader_cfg(spec, 0.1), SHAPE, 0, 1).unwrap();
    let err = (0..50).find_map(|_| l.next_batch().err()).expect("must stop");
    match &err {
        DataError::TooManySkipped { fraction, max, reasons, .. } => {
            assert!(*fraction > 0.1 && *max == 0.1);
            assert!(reasons.contains("corrupt_image"), "{reasons}");
        }
        other => panic!("unexpected error {other}"),
    }
    assert!(l.next_batch().is_err(), "a failed loader stays failed");
}

#[test]
fn all_shards_missing_is_an_error_not_a_hang() {
    let dir = tempfile::tempdir().unwrap();
    let spec = dir.path().join("nothing-{0..1}.tar").display().to_string();
    let mut l = Loader::new(&loader_cfg(spec, 1.0), SHAPE, 0, 1).unwrap();
    let err = l.next_batch().unwrap_err();
    assert!(err.to_string().contains("none of its 2 shards"), "{err}");
}

/// PNG chunk CRC (ISO 3309 / ITU-T V.42, bitwise).
fn crc32(bytes: &[u8]) -> u32 {
    let mut c = 0xffff_ffffu32;
    for &b in bytes {
        c ^= b as u32;
        for _ in 0..8 {
            c = if c & 1 != 0 { 0xedb8_8320 ^ (c >> 1) } else { c >> 1 };
        }
    }
    !c
}
