//! Packing documents into fixed-length rows (MM1 §3: several image-caption pairs per sequence;
//! interleaved documents continue in the next sequence instead of losing images).
//!
//! Greedy and sequential, so its output depends only on the order of documents: that is what
//! makes resume exact (`pipeline.rs`). A *piece* is the part of one document placed in one row;
//! each piece is its own segment with positions restarting at 0.

use crate::sample::{Doc, Unit};

/// Sizes the packer needs.
#[derive(Debug, Clone, Copy)]
pub struct PackShape {
    pub seq_len: usize,
    pub num_image_tokens: usize,
    pub max_images_per_seq: usize,
    /// Most text tokens per row (0 = only `seq_len` limits them).
    pub text_per_seq: usize,
    pub image_id: u32,
    pub pad_id: u32,
    /// Interleaved/text documents continue in the next row when true; truncated when false.
    pub split: bool,
}

/// Per-source counts of one row.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counts {
    pub samples: u64,
    pub tokens: u64,
    pub images: u64,
}

/// One packed sequence (before padding: `ids.len() <= seq_len`).
#[derive(Debug, Clone, Default)]
pub struct Row {
    pub ids: Vec<u32>,
    pub seg: Vec<u32>,
    pub pos: Vec<u32>,
    pub img: Vec<bool>,
    /// Source index of each token (`Batch::NO_SOURCE` on padding).
    pub src: Vec<u32>,
    pub images: Vec<Vec<f32>>,
    pub keys: Vec<String>,
    pub per_source: Vec<Counts>,
    n_seg: u32,
    seg_start: usize,
}

/// A document being placed, with how far it got.
pub struct InProgress {
    pub doc: Doc,
    pub source: usize,
    /// Next unit to place, and tokens of it already placed (text units only).
    pub unit: usize,
    pub offset: usize,
    /// At least one piece was placed (the sample is counted once, when this turns true).
    pub started: bool,
    /// Id of the row holding this document's open segment.
    seg_row: Option<u64>,
}

impl InProgress {
    pub fn new(doc: Doc, source: usize) -> Self {
        Self { doc, source, unit: 0, offset: 0, started: false, seg_row: None }
    }

    pub fn done(&self) -> bool {
        self.unit >= self.doc.units.len()
    }
}

pub struct Packer {
    pub shape: PackShape,
    n_sources: usize,
    pub rows: Vec<Row>,
    cur: Row,
    /// Tokens/images dropped since the last `take_rows` (truncated captions, unsplit documents).
    pub dropped_tokens: u64,
    pub dropped_images: u64,
    /// Rows closed so far (the id of the open row).
    row_id: u64,
}

impl Packer {
    pub fn new(shape: PackShape, n_sources: usize) -> Self {
        Self {
            shape,
            n_sources,
            rows: Vec::new(),
            cur: Self::empty_row(n_sources),
            dropped_tokens: 0,
            dropped_images: 0,
            row_id: 0,
        }
    }

    fn empty_row(n_sources: usize) -> Row {
        Row { per_source: vec![Counts::default(); n_sources], ..Row::default() }
    }

    /// Finished rows of the batch and the drops since the last call.
    pub fn take_rows(&mut self) -> (Vec<Row>, u64, u64) {
        let d = (std::mem::take(&mut self.dropped_tokens), std::mem::take(&mut self.dropped_images));
        (std::mem::take(&mut self.rows), d.0, d.1)
    }

    fn room(&self) -> usize {
        self.shape.seq_len - self.cur.ids.len()
    }

    /// Room for text: `room()`, and under `text_per_seq` what the row's text has left of it.
    fn text_room(&self) -> usize {
        let room = self.room();
        if self.shape.text_per_seq == 0 {
            return room;
        }
        let text = self.cur.ids.len() - self.cur.images.len() * self.shape.num_image_tokens;
        room.min(self.shape.text_per_seq.saturating_sub(text))
    }

    fn image_fits(&self) -> bool {
        self.room() >= self.shape.num_image_tokens && self.cur.images.len() < self.shape.max_images_per_seq
    }

    /// Pads the current row and moves it to `rows`.
    fn close_row(&mut self) {
        let mut row = std::mem::replace(&mut self.cur, Self::empty_row(self.n_sources));
        let pad = self.shape.seq_len - row.ids.len();
        row.ids.extend(std::iter::repeat_n(self.shape.pad_id, pad));
        row.seg.extend(std::iter::repeat_n(0, pad));
        row.pos.extend(std::iter::repeat_n(0, pad));
        row.img.extend(std::iter::repeat_n(false, pad));
        row.src.extend(std::iter::repeat_n(crate::batch::Batch::NO_SOURCE, pad));
        self.rows.push(row);
        self.row_id += 1;
    }

    /// Appends tokens of `d` to the current row, opening a new segment for a new piece.
    fn put(&mut self, d: &mut InProgress, ids: &[u32], is_image: bool) {
        if d.seg_row != Some(self.row_id) {
            d.seg_row = Some(self.row_id);
            self.cur.n_seg += 1;
            self.cur.seg_start = self.cur.ids.len();
            self.cur.keys.push(d.doc.key.clone());
        }
        if !d.started {
            d.started = true;
            self.cur.per_source[d.source].samples += 1;
        }
        let seg = self.cur.n_seg;
        let start = (self.cur.ids.len() - self.cur.seg_start) as u32;
        for (i, &id) in ids.iter().enumerate() {
            self.cur.ids.push(id);
            self.cur.seg.push(seg);
            self.cur.pos.push(start + i as u32);
            self.cur.img.push(is_image);
            self.cur.src.push(d.source as u32);
        }
        self.cur.per_source[d.source].tokens += ids.len() as u64;
    }

    fn put_image(&mut self, d: &mut InProgress, pixels: Vec<f32>) {
        let ids = vec![self.shape.image_id; self.shape.num_image_tokens];
        self.put(d, &ids, true);
        self.cur.images.push(pixels);
        self.cur.per_source[d.source].images += 1;
    }

    /// Token cost of the whole document (placeholders included).
    fn cost(&self, doc: &Doc) -> (usize, usize) {
        let n_img = doc.n_images();
        let text: usize = doc.units.iter().map(|u| if let Unit::Text(t) = u { t.len() } else { 0 }).sum();
        (n_img * self.shape.num_image_tokens + text, n_img)
    }

    /// Places as much of `d` as fits until it is done (`true`) or the batch has `want` rows (`false`).
    pub fn feed(&mut self, d: &mut InProgress, want: usize) -> bool {
        let atomic = !self.shape.split || d.doc.kind == crate::config::SampleKind::Caption;
        if atomic { self.feed_atomic(d, want) } else { self.feed_split(d, want) }
    }

    /// Whole document in one row; when it is longer than a row it is truncated (drops counted).
    fn feed_atomic(&mut self, d: &mut InProgress, want: usize) -> bool {
        if d.done() {
            return true;
        }
        let (tokens, images) = self.cost(&d.doc);
        let text = tokens - images * self.shape.num_image_tokens;
        let fits = tokens <= self.room()
            && text <= self.text_room()
            && self.cur.images.len() + images <= self.shape.max_images_per_seq;
        if !fits && !self.cur.ids.is_empty() {
            self.close_row();
            if self.rows.len() >= want {
                return false;
            }
        }
        let units = std::mem::take(&mut d.doc.units);
        for unit in units {
            match unit {
                Unit::Text(ids) => {
                    let take = ids.len().min(self.text_room());
                    self.dropped_tokens += (ids.len() - take) as u64;
                    self.put(d, &ids[..take], false);
                }
                Unit::Image(px) => {
                    if self.image_fits() {
                        self.put_image(d, px);
                    } else {
                        self.dropped_images += 1;
                        self.dropped_tokens += self.shape.num_image_tokens as u64;
                    }
                }
            }
        }
        d.unit = usize::MAX;
        true
    }

    /// Units in order; text splits anywhere, an image moves whole to the next row.
    fn feed_split(&mut self, d: &mut InProgress, want: usize) -> bool {
        loop {
            if d.done() {
                return true;
            }
            let placed = match &mut d.doc.units[d.unit] {
                Unit::Text(ids) if d.offset >= ids.len() => {
                    // an empty text unit places nothing and must not close a row
                    d.unit += 1;
                    d.offset = 0;
                    continue;
                }
                Unit::Text(ids) => {
                    let take = (ids.len() - d.offset).min(self.text_room());
                    if take > 0 {
                        let piece = ids[d.offset..d.offset + take].to_vec();
                        d.offset += take;
                        if d.offset == ids.len() {
                            d.unit += 1;
                            d.offset = 0;
                        }
                        self.put(d, &piece, false);
                    }
                    take > 0
                }
                Unit::Image(px) => {
                    if self.image_fits() {
                        let px = std::mem::take(px);
                        d.unit += 1;
                        self.put_image(d, px);
                        true
                    } else {
                        false
                    }
                }
            };
            if !placed {
                self.close_row();
                if self.rows.len() >= want {
                    return false;
                }
            } else if self.room() == 0 {
                self.close_row();
                if self.rows.len() >= want {
                    return d.done();
                }
            }
        }
    }

    /// Closes the current row if it holds anything (used when a batch must be finished).
    pub fn flush(&mut self) {
        if !self.cur.ids.is_empty() {
            self.close_row();
        }
    }
}
