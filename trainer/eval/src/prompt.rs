//! Few-shot prompts as in Flamingo / OpenFlamingo / MM1: k demonstrations (image, text) from the
//! support pool, then the query image and its prompt; the model continues the text.
//!
//! The layout mirrors the training data so that the model sees what it was trained on: every image
//! becomes `num_image_tokens` placeholders, every text chunk is tokenised and followed by
//! `<end_of_chunk>` (caption samples: image then caption; synthetic interleaved samples: image then
//! `question: Q answer: A.`). The query's text is left open (no `<end_of_chunk>`).
//!
//! Demonstrations are drawn without replacement by a SplitMix64 stream seeded from
//! `(seed, shots, query index)`, so each query's demonstrations are recorded by the seed alone and do
//! not change when other queries are added or removed.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::tasks::{EvalItem, TaskKind};

/// How 0-shot queries are prompted (recorded in `eval.json`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum ZeroShot {
    /// The query alone.
    #[default]
    Plain,
    /// `n` demonstrations with their images removed (Flamingo's 0-shot protocol: the text shows
    /// the answer format without giving away visual content).
    TextDemos { n: usize },
}

impl ZeroShot {
    /// Parses `plain` or `text-demos:N` (the `--zero-shot` flag and `eval.fewshot.zero_shot`).
    pub fn parse(v: &str) -> Result<Self, String> {
        match v.split_once(':') {
            None if v == "plain" => Ok(ZeroShot::Plain),
            Some(("text-demos", n)) => n
                .parse()
                .map(|n| ZeroShot::TextDemos { n })
                .map_err(|_| format!("`{v}`: `{n}` is not a non-negative integer")),
            _ => Err(format!("`{v}`: expected `plain` or `text-demos:N`")),
        }
    }
}

/// Text templates; `{question}` and `{answer}` are filled in.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PromptTemplate {
    /// Text before a caption (the synthetic caption samples have none).
    pub caption_prefix: String,
    /// VQA query text (the model continues after it).
    pub vqa_question: String,
    /// Appended to `vqa_question` in a demonstration.
    pub vqa_answer: String,
}

impl Default for PromptTemplate {
    fn default() -> Self {
        Self {
            caption_prefix: String::new(),
            vqa_question: "question: {question} answer:".into(),
            vqa_answer: " {answer}.".into(),
        }
    }
}

/// A piece of a prompt.
#[derive(Debug, Clone, PartialEq)]
pub enum Segment {
    /// An image (index into `Prompt::images`).
    Image(usize),
    /// A text chunk; `closed` chunks end with `<end_of_chunk>`.
    Text { text: String, closed: bool },
}

/// A prompt before tokenisation.
#[derive(Debug, Clone, PartialEq)]
pub struct Prompt {
    pub segments: Vec<Segment>,
    pub images: Vec<PathBuf>,
    /// Ids of the demonstrations used.
    pub demos: Vec<String>,
    /// The query image (the last one) is replaced by a blank image: the blank-image baseline.
    pub blank_query: bool,
}

/// SplitMix64 (Steele et al.), a fixed, dependency-free generator for recorded demonstration draws.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

/// `k` distinct indices below `pool` for query `query` (partial Fisher-Yates).
pub fn demo_indices(pool: usize, k: usize, seed: u64, query: usize) -> Vec<usize> {
    let mut rng = SplitMix64(
        seed ^ (k as u64).wrapping_mul(0xA24B_AED4_963E_E407)
            ^ (query as u64).wrapping_mul(0x9FB2_1C65_1E98_DF25),
    );
    let mut idx: Vec<usize> = (0..pool).collect();
    let k = k.min(pool);
    for i in 0..k {
        let j = i + (rng.next() % (pool - i) as u64) as usize;
        idx.swap(i, j);
    }
    idx.truncate(k);
    idx
}

pub(super) fn fill(template: &str, question: &str, answer: &str) -> String {
    template.replace("{question}", question).replace("{answer}", answer)
}

/// The text of an item as a demonstration (closed) or as the query (open).
fn item_text(kind: TaskKind, item: &EvalItem, t: &PromptTemplate, demo: bool) -> String {
    let question = item.question.as_deref().unwrap_or("");
    match (kind, demo) {
        (TaskKind::Caption, true) => format!("{}{}", t.caption_prefix, item.truth[0]),
        (TaskKind::Caption, false) => t.caption_prefix.clone(),
        (TaskKind::Vqa { .. }, true) => {
            fill(&t.vqa_question, question, "") + &fill(&t.vqa_answer, question, &item.truth[0])
        }
        (TaskKind::Vqa { .. }, false) => fill(&t.vqa_question, question, ""),
    }
}

/// The prompt for one query with `shots` demonstrations from `support`.
pub fn build_prompt(
    kind: TaskKind,
    query: &EvalItem,
    query_index: usize,
    support: &[EvalItem],
    shots: usize,
    zero_shot: ZeroShot,
    template: &PromptTemplate,
    seed: u64,
) -> Prompt {
    let (n_demos, with_images) = match (shots, zero_shot) {
        (0, ZeroShot::TextDemos { n }) => (n, false),
        (k, _) => (k, true),
    };
    let demos: Vec<&EvalItem> =
        demo_indices(support.len(), n_demos, seed, query_index).into_iter().map(|i| &support[i]).collect();
    let mut p = Prompt {
        segments: vec![],
        images: vec![],
        demos: demos.iter().map(|d| d.id.clone()).collect(),
        blank_query: false,
    };
    for d in demos {
        if with_images {
            p.segments.push(Segment::Image(p.images.len()));
            p.images.push(d.image.clone());
        }
        p.segments.push(Segment::Text { text: item_text(kind, d, template, true), closed: true });
    }
    p.segments.push(Segment::Image(p.images.len()));
    p.images.push(query.image.clone());
    let open = item_text(kind, query, template, false);
    if !open.is_empty() {
        p.segments.push(Segment::Text { text: open, closed: false });
    }
    p
}

/// Token ids and image mask of a prompt: `num_image_tokens` × `image_id` per image, text chunks
/// encoded by `encode`, `end_of_chunk_id` after closed chunks.
pub fn tokenize_prompt(
    prompt: &Prompt,
    encode: &dyn Fn(&str) -> Result<Vec<u32>, String>,
    image_id: u32,
    end_of_chunk_id: u32,
    num_image_tokens: usize,
) -> Result<(Vec<u32>, Vec<bool>), String> {
    let mut ids = Vec::new();
    let mut mask = Vec::new();
    for s in &prompt.segments {
        match s {
            Segment::Image(_) => {
                ids.extend(std::iter::repeat_n(image_id, num_image_tokens));
                mask.extend(std::iter::repeat_n(true, num_image_tokens));
            }
            Segment::Text { text, closed } => {
                let t = encode(text)?;
                mask.extend(std::iter::repeat_n(false, t.len() + usize::from(*closed)));
                ids.extend(t);
                if *closed {
                    ids.push(end_of_chunk_id);
                }
            }
        }
    }
    Ok((ids, mask))
}

/// The answer part of generated text: up to the first newline, trimmed; a VQA answer also loses the
/// trailing period of the `" {answer}."` template.
pub fn postprocess(kind: TaskKind, generated: &str) -> String {
    let first = generated.split('\n').next().unwrap_or("").trim();
    match kind {
        TaskKind::Caption => first.to_string(),
        TaskKind::Vqa { .. } => {
            let cut = first.split(". ").next().unwrap_or(first);
            cut.trim_end_matches('.').trim().to_string()
        }
    }
}
