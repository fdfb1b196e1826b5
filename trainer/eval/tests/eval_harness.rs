//! The few-shot harness without a model: task loaders, recorded demonstration draws, prompt layout,
//! scoring and eval.json, driven by oracle / constant "generators".

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use mm1_eval::{
    AnswerScheme, EvalOptions, EvalTask, Segment, TaskKind, WorkSplit, ZeroShot, build_prompt, demo_indices,
    evaluate_tasks, evaluate_tasks_split, load_coco_captions, load_synth_jsonl, load_vqav2, postprocess,
    split_support, tokenize_prompt, write_eval_json,
};

fn write(p: &Path, text: &str) {
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, text).unwrap();
}

/// 12 VQA lines and 10 caption lines in the synthetic benchmark's format.
fn synth(dir: &Path) -> (PathBuf, PathBuf) {
    let vqa: String = (0..12)
        .map(|i| {
            let (q, a) = match i % 3 {
                0 => ("how many circles are there?", format!("[\"{}\", \"n{}\"]", i % 4, i % 4)),
                1 => ("what colour is the square?", "[\"red\"]".to_string()),
                _ => ("what does the text say?", "[\"MM1\", \"mm1\"]".to_string()),
            };
            format!("{{\"id\": \"vqa-{i:06}\", \"image\": \"images/vqa-{i:06}.jpg\", \"task\": \"t\", \"question\": \"{q}\", \"answers\": {a}}}\n")
        })
        .collect();
    let caps: String = (0..10)
        .map(|i| {
            format!(
                "{{\"id\": \"cap-{i:06}\", \"image\": \"images/cap-{i:06}.jpg\", \"references\": [\"{i} red circles. the text reads abc.\", \"a picture of {i} red circles\"]}}\n"
            )
        })
        .collect();
    write(&dir.join("eval/vqa.jsonl"), &vqa);
    write(&dir.join("eval/captions.jsonl"), &caps);
    (dir.join("eval/vqa.jsonl"), dir.join("eval/captions.jsonl"))
}

fn task(path: &Path, name: &str, support: usize) -> EvalTask {
    let (kind, items) = load_synth_jsonl(path).unwrap();
    let (queries, support) = split_support(items, support, path).unwrap();
    EvalTask::new(name, kind, queries, support)
}

#[test]
fn demonstration_draws_are_recorded_by_the_seed() {
    let a = demo_indices(20, 8, 7, 3);
    assert_eq!(a, demo_indices(20, 8, 7, 3));
    assert_eq!(a.len(), 8);
    let mut sorted = a.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted.len(), 8, "without replacement");
    assert!(a.iter().all(|&i| i < 20));
    assert_ne!(a, demo_indices(20, 8, 7, 4), "each query draws its own demonstrations");
    assert_ne!(a, demo_indices(20, 8, 8, 3), "the seed changes the draw");
    assert!(demo_indices(20, 0, 7, 3).is_empty());
    assert_eq!(demo_indices(3, 8, 1, 0).len(), 3);
    // Every pool item is drawn at some point (not a fixed subset).
    let seen: std::collections::HashSet<usize> = (0..50).flat_map(|q| demo_indices(20, 4, 0, q)).collect();
    assert_eq!(seen.len(), 20);
}

#[test]
fn prompt_layout_matches_the_training_format() {
    let dir = tempfile::tempdir().unwrap();
    let (vqa, _) = synth(dir.path());
    let t = task(&vqa, "synth_vqa", 8);
    assert_eq!(t.kind, TaskKind::Vqa { scheme: AnswerScheme::Alternatives });
    assert_eq!((t.queries.len(), t.support.len()), (4, 8));
    let opts = EvalOptions::default();
    let q = &t.queries[1];
    let p = build_prompt(t.kind, q, 1, &t.support, 4, ZeroShot::Plain, &opts.template, 5);
    assert_eq!(p.images.len(), 5);
    assert_eq!(p.images[4], q.image);
    assert_eq!(p.demos.len(), 4);
    assert!(p.demos.iter().all(|d| t.support.iter().any(|s| &s.id == d)));
    let texts: Vec<(&str, bool)> = p
        .segments
        .iter()
        .filter_map(|s| match s {
            Segment::Text { text, closed } => Some((text.as_str(), *closed)),
            Segment::Image(_) => None,
        })
        .collect();
    assert_eq!(texts.len(), 5);
    let demo = t.support.iter().find(|s| s.id == p.demos[0]).unwrap();
    assert_eq!(
        texts[0],
        (format!("question: {} answer: {}.", demo.question.as_ref().unwrap(), demo.truth[0]).as_str(), true)
    );
    assert_eq!(texts[4], ("question: what colour is the square? answer:", false));
    // Tokens: 5 images x 9 placeholders, <eoc> after each closed chunk only.
    let encode = |s: &str| -> Result<Vec<u32>, String> { Ok(s.bytes().map(|b| b as u32 + 10).collect()) };
    let (ids, mask) = tokenize_prompt(&p, &encode, 1, 2, 9).unwrap();
    assert_eq!(ids.len(), mask.len());
    assert_eq!(mask.iter().filter(|m| **m).count(), 45);
    assert_eq!(ids.iter().filter(|&&i| i == 1).count(), 45);
    assert_eq!(ids.iter().filter(|&&i| i == 2).count(), 4);
    assert_eq!(*ids.last().unwrap(), b':' as u32 + 10, "the query stays open");
    // 0-shot: plain is the query alone; text_demos keeps the demonstrations' text, drops their images.
    let plain = build_prompt(t.kind, q, 1, &t.support, 0, ZeroShot::Plain, &opts.template, 5);
    assert_eq!((plain.images.len(), plain.segments.len()), (1, 2));
    let td = build_prompt(t.kind, q, 1, &t.support, 0, ZeroShot::TextDemos { n: 2 }, &opts.template, 5);
    assert_eq!((td.images.len(), td.segments.len(), td.demos.len()), (1, 4, 2));
    assert_eq!(td.segments[2], Segment::Image(0));
}

#[test]
fn harness_scores_and_writes_eval_json() {
    let dir = tempfile::tempdir().unwrap();
    let (vqa, caps) = synth(dir.path());
    let tasks = vec![task(&vqa, "synth_vqa", 4), task(&caps, "synth_captions", 4)];
    let truth: HashMap<PathBuf, Vec<String>> = tasks
        .iter()
        .flat_map(|t| t.queries.iter().chain(&t.support))
        .map(|i| (i.image.clone(), i.truth.clone()))
        .collect();
    let opts = EvalOptions {
        shots: vec![0, 4],
        zero_shot: ZeroShot::TextDemos { n: 2 },
        seed: 3,
        ..EvalOptions::default()
    };

    // Oracle: answers with the query's first ground truth, in the format the template asks for.
    let mut oracle = |kind: TaskKind, p: &mm1_eval::Prompt| {
        let t = &truth[p.images.last().unwrap()];
        Ok(match kind {
            TaskKind::Caption => format!("{}\nmore text", t[0]),
            TaskKind::Vqa { .. } => format!(" {}. question: next", t[0]),
        })
    };
    let report = evaluate_tasks(&tasks, &opts, Some(100), &mut oracle).unwrap();
    assert_eq!(report.scores["synth_vqa/0shot/vqa_accuracy"], 1.0);
    assert_eq!(report.scores["synth_vqa/4shot/exact_match"], 1.0);
    // The oracle reads the image path, so the blank-image baseline (a model-side swap) scores the same.
    assert_eq!(report.scores["synth_vqa/0shot/vqa_accuracy_blank"], 1.0);
    // Majority answer of the 8 queries: "red" (3 of them; counts 0/3/2 once each, "MM1" twice).
    assert_eq!(report.tasks[0].majority.answer, "red");
    assert_eq!(report.scores["synth_vqa/majority/vqa_accuracy"], 3.0 / 8.0);
    assert!(report.scores.keys().all(|k| !k.contains("/avg/")), "no average over shot counts");
    let shot0 = &report.tasks[0].results[0];
    assert_eq!(shot0.item_scores, vec![1.0; 8]);
    assert_eq!(report.tasks[0].primary_metric, "vqa_accuracy");
    assert_eq!(report.tasks[0].gate, None, "items without a gate field: no gate, not a control");
    assert!(report.scores["synth_captions/4shot/cider"] > 1.0, "{:?}", report.scores);

    // Shared by 2 ranks, seen from rank 1 (rank 0's answers to queries 0, 2, ... come back from
    // the exchange): the report equals one process's, and rank 0's failure is reported here too.
    let answer = |kind: TaskKind, image: &PathBuf| {
        let t = &truth[image];
        match kind {
            TaskKind::Caption => format!("{}\nmore text", t[0]),
            TaskKind::Vqa { .. } => format!(" {}. question: next", t[0]),
        }
    };
    let mut rank0 = Vec::new(); // two exchanges per (task, shot count): real and blank image
    for task in &tasks {
        for _ in &opts.shots {
            for _ in 0..2 {
                let raw = task.queries.iter().step_by(2);
                let raw = raw.map(|q| serde_json::json!({ "Ok": answer(task.kind, &q.image) })).collect();
                rank0.push(serde_json::Value::Array(raw));
            }
        }
    }
    let rank0 = std::cell::RefCell::new(rank0.into_iter());
    let gather = |mine| Ok(vec![rank0.borrow_mut().next().unwrap(), mine]);
    let split = WorkSplit { rank: 1, world: 2, gather: &gather };
    let shared = evaluate_tasks_split(&tasks, &opts, Some(100), &mut oracle, None, &split).unwrap();
    assert_eq!(shared.ranks, 2);
    assert_eq!(shared.scores, report.scores);
    assert_eq!(serde_json::to_value(&shared.tasks).unwrap(), serde_json::to_value(&report.tasks).unwrap());
    let failing =
        |_| Ok(vec![serde_json::json!([{ "Err": "rank 0: prompt too long" }]), serde_json::json!([])]);
    let split = WorkSplit { rank: 1, world: 2, gather: &failing };
    let one = EvalOptions { limit: Some(1), shots: vec![0], ..opts.clone() };
    let err =
        evaluate_tasks_split(&tasks[..1], &one, None, &mut oracle, None, &split).unwrap_err().to_string();
    assert!(err.contains("rank 0: prompt too long"), "{err}");

    // Constant answer "red": right on exactly the colour questions.
    let mut constant = |_: TaskKind, _: &mm1_eval::Prompt| Ok("Red.".to_string());
    let r = evaluate_tasks(&tasks[..1], &opts, None, &mut constant).unwrap();
    let expected =
        tasks[0].queries.iter().filter(|q| q.truth == ["red"]).count() as f64 / tasks[0].queries.len() as f64;
    assert_eq!(r.scores["synth_vqa/0shot/vqa_accuracy"], expected);
    assert_eq!(r.scores["synth_vqa/0shot/exact_match"], 0.0, "exact match is strict: \"Red\" != \"red\"");

    let path = dir.path().join("eval.json");
    write_eval_json(&report, &path).unwrap();
    let json: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert_eq!(json["step"], 100);
    assert_eq!(json["protocol"]["zero_shot"]["kind"], "text_demos");
    assert_eq!(json["protocol"]["zero_shot"]["n"], 2);
    assert_eq!(json["protocol"]["seed"], 3);
    let shots = json["tasks"][0]["results"].as_array().unwrap();
    assert_eq!(shots[1]["shots"], 4);
    assert_eq!(shots[1]["predictions"][0]["demos"].as_array().unwrap().len(), 4);
    assert_eq!(shots[0]["predictions"][0]["demos"].as_array().unwrap().len(), 2);
    assert_eq!(json["tasks"][0]["kind"], "vqa");
    assert_eq!(json["scores"]["synth_vqa/4shot/exact_match"], 1.0);
    assert_eq!(json["tasks"][0]["majority"]["answer"], "red");

    // Asking for more shots than the pool holds fails with both numbers.
    let too_many = EvalOptions { shots: vec![8], ..EvalOptions::default() };
    let err = evaluate_tasks(&tasks[..1], &too_many, None, &mut constant).unwrap_err().to_string();
    assert!(err.contains("8 shots") && err.contains("pool has 4"), "{err}");

    // Few-shot on the captions only: the VQA task keeps its 0-shot scores and loses its 4-shot ones.
    let captions_only = EvalOptions { fewshot_tasks: vec!["synth_captions".into()], ..opts.clone() };
    let r = evaluate_tasks(&tasks, &captions_only, None, &mut oracle).unwrap();
    assert_eq!(r.scores["synth_vqa/0shot/vqa_accuracy"], 1.0);
    assert!(!r.scores.keys().any(|k| k.starts_with("synth_vqa/4shot/")), "{:?}", r.scores);
    assert_eq!(r.tasks[0].results.iter().map(|s| s.shots).collect::<Vec<_>>(), [0]);
    assert_eq!(r.scores["synth_captions/4shot/cider"], report.scores["synth_captions/4shot/cider"]);
    // A name that is no task is an error naming it and the tasks there are.
    let typo = EvalOptions { fewshot_tasks: vec!["synth_caption".into()], ..opts.clone() };
    let err = evaluate_tasks(&tasks, &typo, None, &mut oracle).unwrap_err().to_string();
    assert!(err.contains("synth_caption that") && err.contains("synth_vqa, synth_captions"), "{err}");
}

#[test]
fn coco_and_vqav2_layouts() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write(
        &d.join("captions.json"),
        r#"{"images": [{"id": 42, "file_name": "COCO_val2014_000000000042.jpg"}, {"id": 7, "file_name": "x.jpg"}],
            "annotations": [{"image_id": 42, "id": 1, "caption": "A dog."}, {"image_id": 42, "id": 2, "caption": "A puppy"}]}"#,
    );
    let items = load_coco_captions(&d.join("captions.json"), &d.join("val2014")).unwrap();
    assert_eq!(items.len(), 1, "images without captions are dropped");
    assert_eq!(items[0].truth, ["A dog.", "A puppy"]);
    assert_eq!(items[0].image, d.join("val2014/COCO_val2014_000000000042.jpg"));

    write(
        &d.join("q.json"),
        r#"{"questions": [{"question_id": 5, "image_id": 42, "question": "What is it?"}]}"#,
    );
    let answers: Vec<String> = ["dog", "dog", "dog", "puppy", "dog", "dog", "Dog", "dog", "a dog", "dog"]
        .iter()
        .enumerate()
        .map(|(i, a)| format!("{{\"answer\": \"{a}\", \"answer_id\": {}}}", i + 1))
        .collect();
    write(
        &d.join("a.json"),
        &format!(
            "{{\"annotations\": [{{\"question_id\": 5, \"image_id\": 42, \"answers\": [{}]}}]}}",
            answers.join(",")
        ),
    );
    let items = load_vqav2(
        &d.join("q.json"),
        &d.join("a.json"),
        &d.join("val2014"),
        "COCO_val2014_{image_id:012}.jpg",
    )
    .unwrap();
    assert_eq!(items[0].image, d.join("val2014/COCO_val2014_000000000042.jpg"));
    assert_eq!(items[0].truth.len(), 10);
    let task =
        EvalTask::new("vqav2", TaskKind::Vqa { scheme: AnswerScheme::Annotators }, items.clone(), items);
    let opts = EvalOptions { shots: vec![0], ..EvalOptions::default() };
    let r = evaluate_tasks(&[task], &opts, None, &mut |_, _| Ok("puppy".to_string())).unwrap();
    // Official: 1 annotator said "puppy": leave-one-out gives (9 × 1/3 + 1 × 0) / 10.
    assert!((r.scores["vqav2/0shot/vqa_accuracy"] - 0.3).abs() < 1e-12);
    assert_eq!(r.scores["vqav2/0shot/exact_match"], 0.0);

    // Errors name the file and the problem.
    write(&d.join("bad.jsonl"), "{\"id\": \"x\", \"image\": \"a.jpg\"}\n");
    let err = load_synth_jsonl(&d.join("bad.jsonl")).unwrap_err().to_string();
    assert!(err.contains("bad.jsonl") && err.contains("line 1") && err.contains("references"), "{err}");
    let err =
        load_vqav2(&d.join("q.json"), &d.join("captions.json"), d, "{image_id}.jpg").unwrap_err().to_string();
    assert!(err.contains("captions.json") && err.contains("no question_id"), "{err}");
}

#[test]
fn answers_are_cut_from_the_continuation() {
    let vqa = TaskKind::Vqa { scheme: AnswerScheme::Alternatives };
    assert_eq!(postprocess(vqa, " 3. question: how many"), "3");
    assert_eq!(postprocess(vqa, " top left.\nquestion"), "top left");
    assert_eq!(postprocess(vqa, " 3.5"), "3.5");
    assert_eq!(
        postprocess(TaskKind::Caption, "  a red circle. the text reads x.\nnext"),
        "a red circle. the text reads x."
    );
}
