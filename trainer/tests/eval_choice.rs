//! 0-shot forced choice: the harness picks the answer of highest log-likelihood and scores it with
//! its baselines; on a tiny model the batched log-likelihoods equal one row at a time and obey the
//! chain rule, and `fewshot_eval`'s picks are the argmax of those log-likelihoods.

mod train_support;

use std::path::{Path, PathBuf};

use burn::tensor::Device;
use mm1_trainer::eval::{
    EvalOptions, EvalTask, Prompt, TaskKind, WorkSplit, argmax, evaluate_tasks_split, fewshot_eval,
    load_synth_jsonl, log_likelihoods, synth_tasks, tokenize_prompt,
};
use train_support::*;

fn write(p: &Path, text: &str) {
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, text).unwrap();
}

#[test]
fn forced_choice_picks_the_most_likely_answer_and_scores_its_baselines() {
    let dir = tempfile::tempdir().unwrap();
    // 10 colour questions (answers red, red, red, blue, green, red, blue, ...) in two `task`s.
    let colours = ["red", "red", "red", "blue", "green", "red", "blue", "red", "green", "red"];
    let lines: String = colours
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let task = if i < 8 { "colour" } else { "other" };
            format!(
                "{{\"id\": \"q{i}\", \"image\": \"im{i}.png\", \"task\": \"{task}\", \"gate\": \"resolution\", \
                 \"question\": \"what colour?\", \"answers\": [\"{c}\"]}}\n"
            )
        })
        .collect();
    write(&dir.path().join("vqa.jsonl"), &lines);
    let (kind, items) = load_synth_jsonl(&dir.path().join("vqa.jsonl")).unwrap();
    let (queries, support) = (items[..8].to_vec(), items[8..].to_vec());
    let tasks = EvalTask::new("synth_vqa", kind, queries, support).split_by_task();
    assert_eq!(tasks.len(), 1, "the pool's `other` items form no task");
    let t = &tasks[0];
    assert_eq!((t.name.as_str(), t.gate.as_deref()), ("synth_vqa_colour", Some("resolution")));
    assert_eq!(t.choices, ["red", "blue", "green"]);

    // Log-likelihood oracle: the true answer (looked up by image) scores 0, others -1; a blank
    // image makes every answer equally likely (the first of the set wins the tie).
    let truth = |image: &PathBuf| {
        let i: usize = image.file_stem().unwrap().to_str().unwrap()[2..].parse().unwrap();
        colours[i]
    };
    let asked: std::cell::RefCell<Vec<Vec<String>>> = Default::default();
    let mut loglik = |p: &Prompt, conts: &[String]| {
        asked.borrow_mut().push(conts.to_vec());
        let want = format!(" {}.", truth(p.images.last().unwrap()));
        Ok(conts.iter().map(|c| if p.blank_query || *c == want { 0.0 } else { -1.0 }).collect())
    };
    let mut generate = |_: TaskKind, _: &Prompt| Ok("blue.".to_string());
    let opts = EvalOptions { shots: vec![0], ..EvalOptions::default() };
    let r = evaluate_tasks_split(&tasks, &opts, None, &mut generate, Some(&mut loglik), &WorkSplit::single())
        .unwrap();
    assert_eq!(asked.borrow()[0], [" red.", " blue.", " green."], "answers in the template's format");
    let c = r.tasks[0].choice.as_ref().unwrap();
    assert_eq!(c.accuracy, 1.0);
    assert_eq!(c.picks, colours[..8]);
    // Blank: always "red", right on 5 of the 8 queries; so is the majority answer.
    assert_eq!(c.blank_accuracy, Some(5.0 / 8.0));
    assert_eq!(r.scores["synth_vqa_colour/0shot/choice_accuracy"], 1.0);
    assert_eq!(r.scores["synth_vqa_colour/0shot/choice_accuracy_blank"], 5.0 / 8.0);
    assert_eq!(r.scores["synth_vqa_colour/majority/choice_accuracy"], 5.0 / 8.0);
    // The generative score beside it: constant "blue" is right on 2 of 8.
    assert_eq!(r.scores["synth_vqa_colour/0shot/vqa_accuracy"], 2.0 / 8.0);

    // A closed set larger than max_choices is left to the generative score.
    let few = EvalOptions { max_choices: 2, ..opts };
    let r = evaluate_tasks_split(&tasks, &few, None, &mut generate, Some(&mut loglik), &WorkSplit::single())
        .unwrap();
    assert!(r.tasks[0].choice.is_none() && !r.scores.contains_key("synth_vqa_colour/0shot/choice_accuracy"));
    assert_eq!(argmax(&[0.1, 0.3, 0.3, -1.0]), 1, "ties: the first");
}

#[test]
fn log_likelihoods_on_a_tiny_model_agree_with_one_row_and_the_chain_rule() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tiny_run_file(tmp.path(), &tmp.path().join("synth"), 4, "");
    let cfg = load(&file, &["data.synth.eval_vqa=12", "data.synth.eval_captions=6"]).config;
    mm1_trainer::run::ensure_synth(&cfg, |_| {}).unwrap();
    let device = Device::flex();
    device.seed(3);
    let model = cfg.model.init(&device).unwrap();
    let tasks = synth_tasks(&cfg, 4).unwrap();
    let names: Vec<&str> = tasks.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "synth_vqa_counting",
            "synth_vqa_colour",
            "synth_vqa_position",
            "synth_vqa_reading",
            "synth_vqa_stripes",
            "synth_vqa_patch_colour",
            "synth_vqa_row_index",
            "synth_vqa_row_colour",
            "synth_captions"
        ]
    );

    // One prompt, three continuations of different lengths (right-padded in the batch).
    let tok = mm1_data::TextTokenizer::load(&cfg.data).unwrap();
    let opts = EvalOptions::default();
    let t = &tasks[1];
    let p = mm1_trainer::eval::build_prompt(
        t.kind,
        &t.queries[0],
        0,
        &t.support,
        0,
        opts.zero_shot,
        &opts.template,
        0,
    );
    let m = cfg.model.num_image_tokens();
    let (ids, mask) = tokenize_prompt(&p, &|s| tok.encode(s), tok.image_id, tok.end_of_chunk_id, m).unwrap();
    let side = cfg.model.image_size()[0];
    let pixels: Vec<f32> = (0..3 * side * side).map(|i| ((i % 17) as f32 - 8.0) / 8.0).collect();
    let conts: Vec<Vec<u32>> = vec![vec![5, 9], vec![7], vec![11, 3, 40, 2]];
    let max_len = cfg.model.llm.max_seq_len;
    let ll = |ids: &[u32], mask: &[bool], conts: &[Vec<u32>]| {
        log_likelihoods(&model, (ids, mask), (&pixels, 1, side), conts, max_len, &device).unwrap()
    };
    let batched = ll(&ids, &mask, &conts);
    assert!(batched.iter().all(|l| l.is_finite() && *l < 0.0), "{batched:?}");
    for (c, b) in conts.iter().zip(&batched) {
        let alone = ll(&ids, &mask, std::slice::from_ref(c))[0];
        assert!((alone - b).abs() < 1e-4, "batched {b} vs one row {alone}");
    }
    // Chain rule: log p(11, 3, 40, 2) = log p(11, 3) + log p(40, 2 | prompt, 11, 3).
    let head = ll(&ids, &mask, &[vec![11, 3]])[0];
    let longer: Vec<u32> = ids.iter().copied().chain([11, 3]).collect();
    let longer_mask: Vec<bool> = mask.iter().copied().chain([false, false]).collect();
    let tail = ll(&longer, &longer_mask, &[vec![40, 2]])[0];
    assert!((head + tail - batched[2]).abs() < 1e-4, "{head} + {tail} vs {}", batched[2]);

    // fewshot_eval: every closed-set task has a forced-choice result whose picks are the argmax of
    // the log-likelihoods recomputed here, and its accuracy is the mean of its item scores.
    let r =
        fewshot_eval(&model, &cfg, &tasks, &EvalOptions { shots: vec![0], ..opts.clone() }, None, &device)
            .unwrap();
    let colour = r.tasks.iter().find(|t| t.name == "synth_vqa_colour").unwrap();
    let c = colour.choice.as_ref().unwrap();
    assert_eq!(c.choices, t.choices);
    let cont_ids: Vec<Vec<u32>> = t
        .choices
        .iter()
        .map(|a| tok.encode(&format!(" {a}.")).unwrap().into_iter().chain([tok.end_of_chunk_id]).collect())
        .collect();
    let mut query_pixels = Vec::new();
    let bytes = std::fs::read(&t.queries[0].image).unwrap();
    query_pixels.extend(
        mm1_data::image::preprocess(&bytes, side, cfg.data.resize, cfg.data.max_image_pixels).unwrap(),
    );
    let lls = log_likelihoods(&model, (&ids, &mask), (&query_pixels, 1, side), &cont_ids, max_len, &device)
        .unwrap();
    assert_eq!(c.picks[0], t.choices[argmax(&lls)]);
    let mean = c.item_scores.iter().sum::<f64>() / c.item_scores.len() as f64;
    assert!((c.accuracy - mean).abs() < 1e-12);
    assert_eq!(c.item_scores.len(), t.queries.len());
    assert!(c.blank_accuracy.is_some());
    assert!(r.tasks.iter().find(|t| t.name == "synth_captions").unwrap().choice.is_none());
    assert!(r.scores.contains_key("synth_captions/0shot/cider_blank"));
}
