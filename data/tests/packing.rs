//! Packing invariants on real loader output, and the packer on hand-made documents
//! (split across rows vs truncated, caption truncation, image placement).

mod common;

use common::{SHAPE, config, mixture, source};
use mm1_data::pack::{InProgress, PackShape, Packer};
use mm1_data::sample::{Doc, Unit};
use mm1_data::{Batch, Loader, SampleKind, TextTokenizer};

/// Every invariant a batch must satisfy, checked from the flat buffers alone.
fn check_batch(b: &Batch, tok: &TextTokenizer) {
    let (bs, t, m) = (b.batch_size, b.seq_len, b.num_image_tokens);
    for v in [
        b.input_ids.len(),
        b.targets.len(),
        b.loss_mask.len(),
        b.image_mask.len(),
        b.segment_ids.len(),
        b.position_ids.len(),
        b.source_ids.len(),
    ] {
        assert_eq!(v, bs * t);
    }
    assert_eq!(b.images.len(), b.n_images * 3 * b.image_size * b.image_size);
    let placeholders = b.image_mask.iter().filter(|&&x| x).count();
    assert_eq!(placeholders, b.n_images * m, "placeholders != n_images * num_image_tokens");
    for r in 0..bs {
        let row = r * t..(r + 1) * t;
        let (ids, seg, pos, img, tgt, lm) = (
            &b.input_ids[row.clone()],
            &b.segment_ids[row.clone()],
            &b.position_ids[row.clone()],
            &b.image_mask[row.clone()],
            &b.targets[row.clone()],
            &b.loss_mask[row],
        );
        for i in 0..t {
            assert_eq!(img[i], ids[i] == tok.image_id && seg[i] != 0, "row {r} pos {i}: image mask vs ids");
            if seg[i] == 0 {
                assert_eq!(ids[i], tok.pad_id);
                assert!(!lm[i]);
            }
            // positions restart at each segment and count up inside it
            let first = i == 0 || seg[i - 1] != seg[i];
            if seg[i] != 0 {
                assert_eq!(pos[i], if first { 0 } else { pos[i - 1] + 1 }, "row {r} pos {i}");
            }
            // segments are numbered 1, 2, ... in order, padding only at the end
            if i > 0 && seg[i] != seg[i - 1] {
                assert!(
                    seg[i] == seg[i - 1] + 1 || seg[i] == 0,
                    "row {r}: segment {} after {}",
                    seg[i],
                    seg[i - 1]
                );
            }
            let same = i + 1 < t && seg[i] != 0 && seg[i + 1] == seg[i];
            assert_eq!(tgt[i], if same { ids[i + 1] } else { tok.pad_id });
            assert_eq!(lm[i], same && !img[i + 1], "row {r} pos {i}: loss mask");
        }
        // placeholder runs are whole images
        let mut run = 0;
        for &x in img.iter().chain([false].iter()) {
            if x {
                run += 1;
            } else {
                assert_eq!(run % m, 0, "row {r}: placeholder run {run}");
                run = 0;
            }
        }
    }
    let per_source_tokens: u64 = b.sources.iter().map(|s| s.tokens).sum();
    assert_eq!(per_source_tokens as usize, b.real_tokens());
    check_source_ids(b);
    let per_source_images: u64 = b.sources.iter().map(|s| s.images).sum();
    assert_eq!(per_source_images as usize, b.n_images);
}

/// Every token names its document's source: the count per source id equals the packer's
/// per-source token count, a segment has one source, padding has none, and the segments
/// follow the shards named by the batch's keys (`shard/key`, one per segment; the synthetic
/// shards are named after their source: `caption-000000.tar`).
fn check_source_ids(b: &Batch) {
    let t = b.seq_len;
    let mut tokens = vec![0u64; b.sources.len()];
    let mut segment_sources = Vec::new();
    for i in 0..b.batch_size * t {
        let (seg, src) = (b.segment_ids[i], b.source_ids[i]);
        if seg == 0 {
            assert_eq!(src, Batch::NO_SOURCE, "padding at {i} has source {src}");
            continue;
        }
        tokens[src as usize] += 1;
        if i % t == 0 || b.segment_ids[i - 1] != seg {
            segment_sources.push(b.sources[src as usize].name.clone());
        } else {
            assert_eq!(src, b.source_ids[i - 1], "source changes inside segment {seg} at {i}");
        }
    }
    let counted: Vec<u64> = b.sources.iter().map(|s| s.tokens).collect();
    assert_eq!(tokens, counted, "tokens per source id vs the packer's per-source counts");
    assert_eq!(segment_sources.len(), b.keys.len(), "one key per segment");
    for (name, key) in segment_sources.iter().zip(&b.keys) {
        let shard = key.rsplit_once('/').unwrap().0;
        let file = std::path::Path::new(shard).file_name().unwrap().to_string_lossy();
        assert!(file.starts_with(name.as_str()), "segment of source {name} from shard {shard}");
    }
    let scored: usize = b.loss_tokens_per_source().iter().sum();
    assert_eq!(scored, b.loss_tokens());
}

#[test]
fn loader_batches_satisfy_invariants_for_every_kind() {
    let tok = TextTokenizer::load(&config(mixture())).unwrap();
    for sources in [
        vec![source(SampleKind::Caption, 1.0)],
        vec![source(SampleKind::Interleaved, 1.0)],
        vec![source(SampleKind::Text, 1.0)],
        mixture(),
    ] {
        let cfg = config(sources);
        let mut l = Loader::new(&cfg, SHAPE, 0, 1).unwrap();
        let mut segments_per_row = 0usize;
        for _ in 0..10 {
            let b = l.next_batch().unwrap();
            check_batch(&b, &tok);
            segments_per_row = segments_per_row.max(*b.segment_ids.iter().max().unwrap() as usize);
            assert!(b.loss_tokens() > 0);
        }
        if cfg.sources[0].kind == SampleKind::Caption {
            // captions are short: MM1 packs several per sequence
            assert!(segments_per_row >= 2, "captions were not packed together");
        }
        assert_eq!(l.stats().dropped_images, 0, "split documents must not lose images");
    }
}

#[test]
fn images_are_in_placeholder_order() {
    // Each image of the synthetic caption set is a different scene, so the i-th image of a batch
    // must equal the image decoded from the i-th image-bearing key.
    let cfg = config(vec![source(SampleKind::Caption, 1.0)]);
    let b = Loader::new(&cfg, SHAPE, 0, 1).unwrap().next_batch().unwrap();
    assert_eq!(b.n_images, b.keys.len(), "one image per caption piece");
    let (shard, key) = b.keys[1].rsplit_once('/').unwrap();
    // Shapes-and-text scenes are JPEG, gated scenes PNG (docs/data.md).
    let bytes = ["jpg", "png"]
        .iter()
        .find_map(|ext| try_read_member(shard, &format!("{key}.{ext}")))
        .unwrap_or_else(|| panic!("{key}: no image member in {shard}"));
    let want =
        mm1_data::image::preprocess(&bytes, SHAPE.image_size, cfg.resize, cfg.max_image_pixels).unwrap();
    let n = want.len();
    assert_eq!(&b.images[n..2 * n], want.as_slice());
}

fn try_read_member(shard: &str, name: &str) -> Option<Vec<u8>> {
    let mut ar = tar::Archive::new(std::fs::File::open(shard).unwrap());
    for e in ar.entries().unwrap() {
        let mut e = e.unwrap();
        if e.path().unwrap().to_str() == Some(name) {
            let mut v = Vec::new();
            std::io::Read::read_to_end(&mut e, &mut v).unwrap();
            return Some(v);
        }
    }
    None
}

const SHAPE_P: PackShape = PackShape {
    seq_len: 10,
    num_image_tokens: 3,
    max_images_per_seq: 2,
    text_per_seq: 0,
    image_id: 0,
    pad_id: 2,
    split: true,
};

fn doc(kind: SampleKind, units: Vec<Unit>) -> Doc {
    Doc { kind, key: "s/k".into(), units }
}

fn img() -> Unit {
    Unit::Image(vec![0.5; 3])
}

fn text(n: u32) -> Unit {
    Unit::Text((100..100 + n).collect())
}

fn pack_all(shape: PackShape, docs: Vec<Doc>, rows: usize) -> Packer {
    let mut p = Packer::new(shape, 1);
    for d in docs {
        let mut ip = InProgress::new(d, 0);
        while !p.feed(&mut ip, usize::MAX) {}
    }
    p.flush();
    assert_eq!(p.rows.len(), rows);
    p
}

#[test]
fn interleaved_document_splits_without_losing_images() {
    // text 4, img 3, text 5, img 3, img 3, text 2 = 20 tokens, 3 images
    let d = doc(SampleKind::Interleaved, vec![text(4), img(), text(5), img(), img(), text(2)]);
    let p = pack_all(SHAPE_P, vec![d], 2);
    let images: usize = p.rows.iter().map(|r| r.images.len()).sum();
    assert_eq!(images, 3);
    assert_eq!((p.dropped_images, p.dropped_tokens), (0, 0));
    // row 0: text 4 + img 3 + first 3 tokens of the 5; row 1: the other 2 + img + img + text 2
    assert_eq!(p.rows[0].img, [false, false, false, false, true, true, true, false, false, false]);
    assert_eq!(p.rows[1].img, [false, false, true, true, true, true, true, true, false, false]);
    assert_eq!(p.rows[1].ids[..2], [103, 104]);
    assert_eq!(p.rows[1].seg, [1; 10], "the continuation is one new segment");
    assert_eq!(p.rows[1].pos, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    for r in &p.rows {
        assert_eq!(r.ids.len(), 10);
        assert!(r.images.len() <= 2);
    }
    let real: usize = p.rows.iter().map(|r| r.seg.iter().filter(|&&s| s != 0).count()).sum();
    assert_eq!(real, 20);
}

#[test]
fn unsplit_document_is_truncated_and_drops_are_counted() {
    let shape = PackShape { split: false, ..SHAPE_P };
    let d = doc(SampleKind::Interleaved, vec![text(4), img(), text(5), img(), img(), text(2)]);
    let p = pack_all(shape, vec![d], 1);
    // 4 text + 3 image fill 7; 3 of the 5 text tokens fit; 2 images and 2+2 text tokens dropped
    assert_eq!(p.rows[0].images.len(), 1);
    assert_eq!(p.dropped_images, 2);
    assert_eq!(p.dropped_tokens, 2 + 2 * 3 + 2);
}

#[test]
fn several_captions_share_a_row_and_a_long_caption_is_truncated() {
    let c = |n| doc(SampleKind::Caption, vec![img(), text(n)]);
    // 3+2=5, 3+2=5 → row 0; 3+9 → truncated to 10 in row 1
    let p = pack_all(SHAPE_P, vec![c(2), c(2), c(9)], 2);
    assert_eq!(p.rows[0].seg, [1, 1, 1, 1, 1, 2, 2, 2, 2, 2]);
    assert_eq!(p.rows[0].pos, [0, 1, 2, 3, 4, 0, 1, 2, 3, 4]);
    assert_eq!(p.rows[1].images.len(), 1);
    assert_eq!(p.dropped_tokens, 2);
}

#[test]
fn empty_text_units_do_not_emit_padding_rows() {
    let d = doc(SampleKind::Interleaved, vec![Unit::Text(vec![]), text(3), Unit::Text(vec![]), img()]);
    let p = pack_all(SHAPE_P, vec![d], 1);
    assert_eq!(p.rows[0].seg.iter().filter(|&&s| s != 0).count(), 6);
}

/// `text_per_seq` with `seq_len = text_per_seq + max_images × m`: every image-token count gives
/// the same rows of the same text (what the image-token ablation needs), where a plain `seq_len`
/// lets rows with fewer images take more text when `m` grows.
#[test]
fn a_text_budget_packs_the_same_text_whatever_the_image_tokens() {
    let docs = || {
        vec![
            doc(SampleKind::Caption, vec![img(), text(3)]),
            doc(SampleKind::Interleaved, vec![text(2), img(), text(4), img(), text(5)]),
            doc(SampleKind::Text, vec![text(9)]),
            doc(SampleKind::Caption, vec![img(), text(2)]),
            doc(SampleKind::Interleaved, vec![img(), text(6), img(), img(), text(1)]),
        ]
    };
    // Text of each row, with each image as a marker, and the images per row.
    let layout = |p: &Packer| -> Vec<(Vec<u32>, usize)> {
        p.rows
            .iter()
            .map(|r| {
                let mut text = vec![];
                for (i, &id) in r.ids.iter().enumerate() {
                    let first_of_image = r.img[i] && (i == 0 || !r.img[i - 1]);
                    if first_of_image {
                        text.push(u32::MAX);
                    } else if !r.img[i] && r.seg[i] != 0 {
                        text.push(id);
                    }
                }
                (text, r.images.len())
            })
            .collect()
    };
    let with_budget = |m: usize| {
        let shape = PackShape { seq_len: 8 + 2 * m, num_image_tokens: m, text_per_seq: 8, ..SHAPE_P };
        let mut p = Packer::new(shape, 1);
        for d in docs() {
            let mut ip = InProgress::new(d, 0);
            while !p.feed(&mut ip, usize::MAX) {}
        }
        p.flush();
        assert_eq!((p.dropped_images, p.dropped_tokens), (0, 0), "m = {m}");
        for r in &p.rows {
            let text = r.seg.iter().zip(&r.img).filter(|(s, i)| **s != 0 && !**i).count();
            assert!(text <= 8 && r.images.len() <= 2 && r.ids.len() == 8 + 2 * m, "m = {m}");
        }
        layout(&p)
    };
    let reference = with_budget(1);
    for m in [2, 4, 16] {
        assert_eq!(with_budget(m), reference, "rows differ at m = {m}");
    }
    // Without the budget the rows change with m (the control of this test's premise).
    let plain = |m: usize| {
        let shape = PackShape { seq_len: 8 + 2 * m, num_image_tokens: m, ..SHAPE_P };
        let mut p = Packer::new(shape, 1);
        for d in docs() {
            let mut ip = InProgress::new(d, 0);
            while !p.feed(&mut ip, usize::MAX) {}
        }
        p.flush();
        layout(&p)
    };
    assert_ne!(plain(1), plain(16));
}
