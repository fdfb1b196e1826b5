//! Evaluation sets: the synthetic benchmark's `eval/vqa.jsonl` and `eval/captions.jsonl`
//! (docs/data.md "Synthetic benchmark"), COCO-style caption annotations + image folder, and
//! VQAv2-style questions + annotations + image folder.
//!
//! Each set is split into a support pool (where few-shot demonstrations come from) and queries.
//! Real benchmarks take demonstrations from their training split (`support` file); without one, the
//! last `support_size` items of the set form the pool and are never queried.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde_json::Value;

use super::EvalError;

/// How VQA ground truth is scored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AnswerScheme {
    /// Ten annotator answers (VQAv2): the official leave-one-out `min(#matches/3, 1)`.
    Annotators,
    /// A list of equally correct answers (synthetic: `["3", "three"]`): 1 if the normalised
    /// prediction equals any normalised answer.
    Alternatives,
}

/// What a task asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum TaskKind {
    Caption,
    Vqa { scheme: AnswerScheme },
}

/// One image with its question (VQA) and ground truth (answers or reference captions).
#[derive(Debug, Clone, PartialEq)]
pub struct EvalItem {
    pub id: String,
    pub image: PathBuf,
    pub question: Option<String>,
    pub truth: Vec<String>,
    /// The synthetic benchmark's `task` field (`counting`, `colour` ...): queries are scored per task.
    pub task: Option<String>,
    /// The benchmark's `gate` field (what the task needs: `resolution`, `tokens`), if it has one.
    pub gate: Option<String>,
}

/// A loaded task: queries and the pool demonstrations are drawn from.
#[derive(Debug, Clone, PartialEq)]
pub struct EvalTask {
    pub name: String,
    pub kind: TaskKind,
    pub queries: Vec<EvalItem>,
    pub support: Vec<EvalItem>,
    /// What the task needs (`resolution`, `tokens`, or `none` for a control built to need nothing),
    /// from the items' `gate` field; `None` when the items carry none (the scene tasks, captions,
    /// COCO, VQAv2): such a task was not built for a study's gate and is no control either.
    pub gate: Option<String>,
    /// The task's closed answer set for forced choice (first answer of every query and support item,
    /// in order of appearance); empty for captions.
    pub choices: Vec<String>,
}

impl EvalTask {
    /// A task whose gate and closed answer set are read off its items.
    pub fn new(
        name: impl Into<String>,
        kind: TaskKind,
        queries: Vec<EvalItem>,
        support: Vec<EvalItem>,
    ) -> Self {
        let gate = queries.iter().find_map(|q| q.gate.clone());
        let mut choices: Vec<String> = Vec::new();
        if matches!(kind, TaskKind::Vqa { .. }) {
            for it in queries.iter().chain(&support) {
                if let Some(a) = it.truth.first()
                    && !choices.contains(a)
                {
                    choices.push(a.clone());
                }
            }
        }
        Self { name: name.into(), kind, queries, support, gate, choices }
    }

    /// One task per distinct `task` field of the queries (named `{name}_{task}`, sharing the support
    /// pool), or this task unchanged when the queries carry none.
    pub fn split_by_task(self) -> Vec<EvalTask> {
        let mut names: Vec<String> = Vec::new();
        for q in &self.queries {
            if let Some(t) = &q.task
                && !names.contains(t)
            {
                names.push(t.clone());
            }
        }
        if names.is_empty() {
            return vec![self];
        }
        names
            .iter()
            .map(|t| {
                let queries: Vec<EvalItem> =
                    self.queries.iter().filter(|q| q.task.as_ref() == Some(t)).cloned().collect();
                let mut task =
                    EvalTask::new(format!("{}_{t}", self.name), self.kind, queries, self.support.clone());
                // The closed set of a task is its own answers, not those of the other tasks in the pool.
                let own = |a: &String| {
                    task.queries.iter().any(|q| q.truth.first() == Some(a))
                        || self
                            .support
                            .iter()
                            .any(|s| s.task.as_ref() == Some(t) && s.truth.first() == Some(a))
                };
                task.choices = task.choices.iter().filter(|a| own(a)).cloned().collect();
                task
            })
            .collect()
    }
}

fn read_text(path: &Path) -> Result<String, EvalError> {
    std::fs::read_to_string(path).map_err(|e| EvalError::io(path, e))
}

fn read_json(path: &Path) -> Result<Value, EvalError> {
    serde_json::from_str(&read_text(path)?).map_err(|e| EvalError::parse(path, e))
}

fn strings(v: &Value, path: &Path, what: &str) -> Result<Vec<String>, EvalError> {
    let list =
        v.as_array().ok_or_else(|| EvalError::parse(path, format!("{what}: expected a list of strings")))?;
    list.iter()
        .map(|s| {
            s.as_str()
                .map(str::to_string)
                .ok_or_else(|| EvalError::parse(path, format!("{what}: not a string: {s}")))
        })
        .collect()
}

/// Splits off the last `support_size` items as the demonstration pool.
pub fn split_support(
    mut items: Vec<EvalItem>,
    support_size: usize,
    path: &Path,
) -> Result<(Vec<EvalItem>, Vec<EvalItem>), EvalError> {
    if support_size >= items.len() {
        return Err(EvalError::parse(
            path,
            format!(
                "support_size ({support_size}) must be smaller than the number of items ({})",
                items.len()
            ),
        ));
    }
    let support = items.split_off(items.len() - support_size);
    Ok((items, support))
}

/// Synthetic benchmark JSON lines: `{"id", "image", "question", "answers"}` (VQA) or
/// `{"id", "image", "references"}` (captions); `image` is relative to the file's folder.
pub fn load_synth_jsonl(path: &Path) -> Result<(TaskKind, Vec<EvalItem>), EvalError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut items = Vec::new();
    let mut kind = None;
    for (i, line) in read_text(path)?.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let at = format!("line {}", i + 1);
        let v: Value =
            serde_json::from_str(line).map_err(|e| EvalError::parse(path, format!("{at}: {e}")))?;
        let field =
            |k: &str| v.get(k).ok_or_else(|| EvalError::parse(path, format!("{at}: missing field `{k}`")));
        let id = field("id")?.as_str().unwrap_or_default().to_string();
        let image = dir.join(
            field("image")?
                .as_str()
                .ok_or_else(|| EvalError::parse(path, format!("{at}: `image` is not a string")))?,
        );
        let (this_kind, question, truth) = if let Some(q) = v.get("question") {
            let q = q
                .as_str()
                .ok_or_else(|| EvalError::parse(path, format!("{at}: `question` is not a string")))?;
            (
                TaskKind::Vqa { scheme: AnswerScheme::Alternatives },
                Some(q.to_string()),
                strings(field("answers")?, path, &at)?,
            )
        } else {
            (TaskKind::Caption, None, strings(field("references")?, path, &at)?)
        };
        if *kind.get_or_insert(this_kind) != this_kind {
            return Err(EvalError::parse(path, format!("{at}: mixes VQA and caption lines")));
        }
        if truth.is_empty() {
            return Err(EvalError::parse(path, format!("{at}: no answers/references")));
        }
        let text = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_string);
        items.push(EvalItem { id, image, question, truth, task: text("task"), gate: text("gate") });
    }
    let kind = kind.ok_or_else(|| EvalError::parse(path, "no items"))?;
    Ok((kind, items))
}

/// COCO caption annotations (`captions_val2014.json`: `images[{id, file_name}]`,
/// `annotations[{image_id, caption}]`) with images under `image_dir`.
pub fn load_coco_captions(annotations: &Path, image_dir: &Path) -> Result<Vec<EvalItem>, EvalError> {
    let v = read_json(annotations)?;
    let images =
        v["images"].as_array().ok_or_else(|| EvalError::parse(annotations, "missing list `images`"))?;
    let anns = v["annotations"]
        .as_array()
        .ok_or_else(|| EvalError::parse(annotations, "missing list `annotations`"))?;
    let mut refs: HashMap<i64, Vec<String>> = HashMap::new();
    for a in anns {
        let (Some(id), Some(c)) = (a["image_id"].as_i64(), a["caption"].as_str()) else {
            return Err(EvalError::parse(annotations, format!("annotation without image_id/caption: {a}")));
        };
        refs.entry(id).or_default().push(c.to_string());
    }
    let mut items = Vec::new();
    for im in images {
        let (Some(id), Some(file)) = (im["id"].as_i64(), im["file_name"].as_str()) else {
            return Err(EvalError::parse(annotations, format!("image without id/file_name: {im}")));
        };
        if let Some(r) = refs.remove(&id) {
            items.push(EvalItem {
                id: id.to_string(),
                image: image_dir.join(file),
                question: None,
                truth: r,
                task: None,
                gate: None,
            });
        }
    }
    if items.is_empty() {
        return Err(EvalError::parse(annotations, "no image has a caption"));
    }
    Ok(items)
}

/// VQAv2 questions (`questions[{question_id, image_id, question}]`) and annotations
/// (`annotations[{question_id, answers[{answer}]}]`); image files are named by `image_pattern`
/// with `{image_id}` or `{image_id:012}` (COCO: `COCO_val2014_{image_id:012}.jpg`).
pub fn load_vqav2(
    questions: &Path,
    annotations: &Path,
    image_dir: &Path,
    image_pattern: &str,
) -> Result<Vec<EvalItem>, EvalError> {
    let q = read_json(questions)?;
    let a = read_json(annotations)?;
    let mut answers: HashMap<i64, Vec<String>> = HashMap::new();
    for ann in a["annotations"]
        .as_array()
        .ok_or_else(|| EvalError::parse(annotations, "missing list `annotations`"))?
    {
        let id = ann["question_id"]
            .as_i64()
            .ok_or_else(|| EvalError::parse(annotations, format!("no question_id: {ann}")))?;
        let list = ann["answers"]
            .as_array()
            .ok_or_else(|| EvalError::parse(annotations, format!("question {id}: no answers")))?;
        answers.insert(id, list.iter().filter_map(|x| x["answer"].as_str().map(str::to_string)).collect());
    }
    let mut items = Vec::new();
    for item in
        q["questions"].as_array().ok_or_else(|| EvalError::parse(questions, "missing list `questions`"))?
    {
        let (Some(qid), Some(img), Some(text)) =
            (item["question_id"].as_i64(), item["image_id"].as_i64(), item["question"].as_str())
        else {
            return Err(EvalError::parse(
                questions,
                format!("question without question_id/image_id/question: {item}"),
            ));
        };
        let truth = answers
            .remove(&qid)
            .ok_or_else(|| EvalError::parse(annotations, format!("question {qid} has no annotation")))?;
        let file = image_pattern
            .replace("{image_id:012}", &format!("{img:012}"))
            .replace("{image_id}", &img.to_string());
        items.push(EvalItem {
            id: qid.to_string(),
            image: image_dir.join(file),
            question: Some(text.to_string()),
            truth,
            task: None,
            gate: None,
        });
    }
    Ok(items)
}
