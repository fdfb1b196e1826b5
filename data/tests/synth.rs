//! Synthetic benchmark: same seed → same bytes; eval sets parse with ground truth; the trained
//! tokenizer has the special tokens; the generated shards read back with nothing skipped.

use std::collections::BTreeMap;
use std::path::Path;

use mm1_data::inspect::inspect;
use mm1_data::sample::ProcessCtx;
use mm1_data::synth::{SynthConfig, generate, is_complete};
use mm1_data::{DataConfig, ResizeMode, TextTokenizer, WdsOpener};

fn files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if p.file_name().unwrap() != "manifest.json" {
                out.insert(p.strip_prefix(dir).unwrap().display().to_string(), std::fs::read(&p).unwrap());
            }
        }
    }
    out
}

fn tiny(dir: &Path, seed: u64) -> SynthConfig {
    SynthConfig {
        image_size: 96,
        samples_per_shard: 8,
        eval_vqa: 8,
        eval_captions: 4,
        ..SynthConfig::small(dir, seed)
    }
}

#[test]
fn same_seed_same_bytes_other_seed_other_bytes() {
    let (a, b, c) =
        (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    generate(&tiny(a.path(), 3)).unwrap();
    generate(&tiny(b.path(), 3)).unwrap();
    generate(&tiny(c.path(), 4)).unwrap();
    let (fa, fb, fc) = (files(a.path()), files(b.path()), files(c.path()));
    assert_eq!(fa.keys().collect::<Vec<_>>(), fb.keys().collect::<Vec<_>>());
    for (name, bytes) in &fa {
        assert!(bytes == &fb[name], "{name} differs between two runs with the same seed");
    }
    assert_ne!(fa["caption-000000.tar"], fc["caption-000000.tar"]);
    assert!(is_complete(&tiny(a.path(), 3)));
    assert!(!is_complete(&tiny(a.path(), 5)));
}

#[test]
fn shards_read_back_clean_and_eval_sets_have_ground_truth() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = tiny(dir.path(), 1);
    let out = generate(&cfg).unwrap();
    let d = DataConfig::default();
    let tok = TextTokenizer::from_file(&out.tokenizer, [&d.image_token, &d.end_of_chunk_token, &d.pad_token])
        .unwrap();
    assert_eq!((tok.image_id, tok.end_of_chunk_id, tok.pad_id), (0, 1, 2));
    let ids = tok.encode("2 red circles and a blue square. the text reads K7Q.").unwrap();
    assert_eq!(tok.decode(&ids).unwrap(), "2 red circles and a blue square. the text reads K7Q.");
    let ctx = ProcessCtx {
        tokenizer: Some(std::sync::Arc::new(tok)),
        image_size: 32,
        resize: ResizeMode::ShortestSideCrop,
        max_pixels: 1 << 24,
    };
    let pool = rayon::ThreadPoolBuilder::new().num_threads(2).build().unwrap();
    let spec = format!("{}::{}::{}", out.caption, out.interleaved, out.text);
    let r = inspect(&spec, None, &ctx, &WdsOpener, &pool).unwrap();
    assert_eq!(r.skipped.total(), 0);
    assert_eq!(r.samples, 3 * 2 * 8);
    for k in ["caption", "interleaved", "text"] {
        assert_eq!(r.by_kind[k], 16, "{k}");
    }
    assert!(r.images >= 16 + 16 * 2);

    let vqa = std::fs::read_to_string(&out.vqa).unwrap();
    let rows: Vec<serde_json::Value> = vqa.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(rows.len(), 8);
    let tasks: std::collections::BTreeSet<&str> = rows.iter().map(|r| r["task"].as_str().unwrap()).collect();
    assert!(tasks.contains("counting") && tasks.contains("reading"));
    for r in &rows {
        assert!(out.vqa.parent().unwrap().join(r["image"].as_str().unwrap()).is_file());
        assert!(!r["answers"].as_array().unwrap().is_empty());
    }
    let caps = std::fs::read_to_string(&out.captions).unwrap();
    let first: serde_json::Value = serde_json::from_str(caps.lines().next().unwrap()).unwrap();
    assert_eq!(first["references"].as_array().unwrap().len(), 3);
}
