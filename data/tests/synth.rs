//! Synthetic benchmark: same seed → same bytes; no sample, image or text document repeats and the
//! held-out shard shares none with the training shards; eval sets parse with ground truth; the
//! trained tokenizer has the special tokens; the generated shards read back with nothing skipped;
//! runs started together generate the benchmark once.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;

use mm1_data::inspect::inspect;
use mm1_data::sample::ProcessCtx;
use mm1_data::synth::{GENERATOR_VERSION, SynthConfig, ensure, generate, is_complete};
use mm1_data::{DataConfig, ResizeMode, ShardItem, ShardOpener, TextTokenizer, WdsOpener};

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
    // A cache written by another generator version (or an unversioned one) is regenerated.
    let manifest = a.path().join("manifest.json");
    let mut m: serde_json::Value = serde_json::from_slice(&std::fs::read(&manifest).unwrap()).unwrap();
    assert_eq!(m["generator"], GENERATOR_VERSION);
    m.as_object_mut().unwrap().remove("generator");
    std::fs::write(&manifest, m.to_string()).unwrap();
    assert!(!is_complete(&tiny(a.path(), 3)));
}

#[test]
fn runs_started_together_share_one_generation() {
    let (dir, alone) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let cfg = tiny(dir.path(), 2);
    let generated: Vec<bool> = std::thread::scope(|s| {
        let runs: Vec<_> = (0..4).map(|_| s.spawn(|| ensure(&cfg).unwrap())).collect();
        runs.into_iter().map(|r| r.join().unwrap()).collect()
    });
    assert_eq!(generated.iter().filter(|g| **g).count(), 1, "{generated:?}");
    assert!(is_complete(&cfg));
    assert!(!ensure(&cfg).unwrap(), "a complete benchmark is not generated again");
    generate(&tiny(alone.path(), 2)).unwrap();
    let mut shared = files(dir.path());
    assert_eq!(shared.remove(".generate.lock"), Some(vec![]));
    assert!(shared == files(alone.path()), "the shared generation wrote other bytes than one alone");
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

/// A sample's members sorted by extension, its key dropped.
type Members = Vec<(String, Vec<u8>)>;

fn shard_samples(path: &Path) -> Vec<Members> {
    let url = path.display().to_string();
    WdsOpener
        .open(&url)
        .unwrap()
        .map(|item| match item {
            ShardItem::Sample(mut s) => {
                s.members.sort();
                s.members
            }
            ShardItem::Truncated(e) => panic!("{url}: {e}"),
        })
        .collect()
}

/// `what`: how many of the items are distinct, and the first repeat (where it is, where it was first).
fn repeats<'a, T: std::hash::Hash + Eq + ?Sized + 'a>(
    what: &str,
    items: impl IntoIterator<Item = (String, &'a T)>,
) -> Option<String> {
    let mut first: HashMap<&T, String> = HashMap::new();
    let (mut n, mut example) = (0, None);
    for (at, item) in items {
        n += 1;
        if let Some(prev) = first.get(item) {
            example.get_or_insert_with(|| format!("{at} = {prev}"));
        } else {
            first.insert(item, at);
        }
    }
    example.map(|e| format!("{what}: {} distinct of {n} (first repeat: {e})", first.len()))
}

/// The quickstart's `[data.synth]` (seed 0, 64-px images, shard 3 held out) with 4 shards x 256
/// samples per kind: no two samples of a kind are equal (members' bytes, keys excluded), the held-out
/// shard shares none with shards 0-2, no image is drawn twice (training or eval) and no text-only
/// document repeats. Before the `Rng::from_words` fix: 128 distinct samples per kind of 512 at 128
/// per shard, and all of shard 3 inside shards 0-2.
#[test]
fn no_sample_repeats_and_the_held_out_shard_shares_none() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = SynthConfig {
        image_size: 64,
        shards_per_kind: 4,
        samples_per_shard: 256,
        eval_vqa: 64,
        eval_captions: 16,
        ..SynthConfig::small(dir.path(), 0)
    };
    generate(&cfg).unwrap();
    let mut failures = Vec::new();
    let mut images: Vec<(String, Vec<u8>)> = Vec::new();
    let mut docs: Vec<(String, String)> = Vec::new();
    for kind in ["caption", "interleaved", "text"] {
        let samples: Vec<(usize, usize, Members)> = (0..4)
            .flat_map(|shard| {
                let path = dir.path().join(format!("{kind}-{shard:06}.tar"));
                shard_samples(&path).into_iter().enumerate().map(move |(i, m)| (shard, i, m))
            })
            .collect();
        assert_eq!(samples.len(), 4 * 256, "{kind}");
        failures.extend(repeats(
            &format!("{kind} samples"),
            samples.iter().map(|(s, i, m)| (format!("shard {s} #{i}"), m)),
        ));
        let train: HashSet<&Members> = samples.iter().filter(|(s, ..)| *s < 3).map(|(.., m)| m).collect();
        let leaked = samples.iter().filter(|(s, _, m)| *s == 3 && train.contains(m)).count();
        if leaked > 0 {
            failures
                .push(format!("{kind}: {leaked} of the held-out shard's 256 samples are also in shards 0-2"));
        }
        for (s, i, members) in samples {
            for (ext, bytes) in members {
                let at = format!("{kind} shard {s} #{i} .{ext}");
                match ext.as_str() {
                    e if e.ends_with("jpg") || e.ends_with("png") => images.push((at, bytes)),
                    "txt" if kind == "text" => docs.push((at, String::from_utf8(bytes).unwrap())),
                    "json" if kind == "text" => {
                        let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
                        docs.push((at, v["text"].as_str().unwrap().to_string()));
                    }
                    _ => {}
                }
            }
        }
    }
    let eval_images = files(&dir.path().join("eval/images"));
    assert_eq!(eval_images.len(), 64 + 16);
    images.extend(eval_images.into_iter().map(|(name, bytes)| (format!("eval {name}"), bytes)));
    failures.extend(repeats("images (training and eval)", images.iter().map(|(at, b)| (at.clone(), b))));
    failures.extend(repeats("text documents", docs.iter().map(|(at, d)| (at.clone(), d))));
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
