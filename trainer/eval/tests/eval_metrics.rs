//! Metric parity with the reference implementations, on committed fixtures:
//! - `cider_fixture.json`: pycocoevalcap's PTBTokenizer (Java CoreNLP) + `Cider` scores
//!   (`scripts/eval_make_cider_fixture.py`);
//! - `vqa_fixture.json`: the official VQAv2 normalisation and accuracy (`scripts/eval_make_vqa_fixture.py`).

use mm1_eval::{cider_d, exact_match, normalize_answer, process_punctuation, ptb_tokenize, vqa_accuracy};
use serde_json::Value;

fn fixture(name: &str) -> Value {
    let path = format!("{}/tests/fixtures/eval/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(&path).expect("fixture")).expect("fixture json")
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array().unwrap().iter().map(|s| s.as_str().unwrap().to_string()).collect()
}

#[test]
fn ptb_tokenizer_matches_java_corenlp_on_fixture_captions() {
    let f = fixture("cider_fixture.json");
    let mut checked = 0;
    for im in f["images"].as_array().unwrap() {
        let raw =
            std::iter::once(im["candidate"].as_str().unwrap().to_string()).chain(strings(&im["references"]));
        let expected = std::iter::once(im["candidate_tokenized"].as_str().unwrap().to_string())
            .chain(strings(&im["references_tokenized"]));
        for (r, e) in raw.zip(expected) {
            assert_eq!(ptb_tokenize(&r), e, "caption {r:?}");
            checked += 1;
        }
    }
    assert!(checked > 200, "{checked}");
}

#[test]
fn cider_d_matches_pycocoevalcap_on_tokenized_text() {
    let f = fixture("cider_fixture.json");
    let images = f["images"].as_array().unwrap();
    let cands: Vec<String> =
        images.iter().map(|im| im["candidate_tokenized"].as_str().unwrap().into()).collect();
    let refs: Vec<Vec<String>> = images.iter().map(|im| strings(&im["references_tokenized"])).collect();
    let scores = cider_d(&cands, &refs).unwrap();
    for (im, ours) in images.iter().zip(&scores.per_item) {
        let reference = im["cider"].as_f64().unwrap();
        assert!((ours - reference).abs() < 1e-6, "{}: ours {ours} vs pycocoevalcap {reference}", im["id"]);
    }
    let corpus = f["corpus_cider"].as_f64().unwrap();
    assert!((scores.corpus - corpus).abs() < 1e-6, "corpus: ours {} vs {corpus}", scores.corpus);
    // Scores span a real range (identical, perturbed, unrelated candidates).
    let max = scores.per_item.iter().cloned().fold(0.0, f64::max);
    assert!(max > 4.0 && scores.per_item.contains(&0.0), "{:?}", scores.per_item);

    // Document frequencies depend on the evaluated set: the 10-image subset has its own scores.
    let n = f["subset_ids"].as_array().unwrap().len();
    let sub = cider_d(&cands[..n], &refs[..n]).unwrap();
    for (ours, reference) in sub.per_item.iter().zip(f["subset_cider"].as_array().unwrap()) {
        assert!((ours - reference.as_f64().unwrap()).abs() < 1e-6, "{ours} vs {reference}");
    }
    assert!((sub.corpus - f["subset_corpus_cider"].as_f64().unwrap()).abs() < 1e-6);
    assert!((sub.corpus - scores.corpus).abs() > 1e-3, "subset must differ from the full set");
}

#[test]
fn cider_d_is_the_same_to_the_last_bit_every_time() {
    // 300 items with overlapping n-grams: enough terms that a sum in another order rounds
    // differently (a HashMap's order changes with every map; the study saw 1.1e-16).
    let words = ["a", "red", "green", "circle", "square", "top", "left", "and", "the", "blue", "grid"];
    let sentence = |i: usize, k: usize| -> String {
        (0..6 + (i + k) % 5)
            .map(|j| words[(i * 7 + j * (k + 3) + j * j) % words.len()])
            .collect::<Vec<_>>()
            .join(" ")
    };
    let cands: Vec<String> = (0..300).map(|i| sentence(i, 0)).collect();
    let refs: Vec<Vec<String>> = (0..300).map(|i| (1..4).map(|k| sentence(i, k)).collect()).collect();
    let first = cider_d(&cands, &refs).unwrap();
    assert!(first.corpus > 0.0);
    for _ in 0..20 {
        let again = cider_d(&cands, &refs).unwrap();
        assert_eq!(again.corpus.to_bits(), first.corpus.to_bits());
        assert!(again.per_item.iter().zip(&first.per_item).all(|(a, b)| a.to_bits() == b.to_bits()));
    }
}

#[test]
fn cider_d_end_to_end_from_raw_captions() {
    let f = fixture("cider_fixture.json");
    let images = f["images"].as_array().unwrap();
    let cands: Vec<String> =
        images.iter().map(|im| ptb_tokenize(im["candidate"].as_str().unwrap())).collect();
    let refs: Vec<Vec<String>> = images
        .iter()
        .map(|im| strings(&im["references"]).iter().map(|r| ptb_tokenize(r)).collect())
        .collect();
    let corpus = cider_d(&cands, &refs).unwrap().corpus;
    assert!((corpus - f["corpus_cider"].as_f64().unwrap()).abs() < 1e-6);
}

#[test]
fn cider_d_rejects_bad_input() {
    let err = cider_d(&["a".into()], &[]).unwrap_err().to_string();
    assert!(err.contains("candidates (1) != reference lists (0)"), "{err}");
    let err = cider_d(&["a".into()], &[vec![]]).unwrap_err().to_string();
    assert!(err.contains("item 0 has no reference"), "{err}");
}

#[test]
fn vqa_normalisation_matches_official_script() {
    let f = fixture("vqa_fixture.json");
    for case in f["normalise"].as_array().unwrap() {
        let input = case["input"].as_str().unwrap();
        assert_eq!(process_punctuation(input), case["punctuation"].as_str().unwrap(), "punct {input:?}");
        assert_eq!(normalize_answer(input), case["answer"].as_str().unwrap(), "answer {input:?}");
    }
}

#[test]
fn vqa_accuracy_matches_official_script() {
    let f = fixture("vqa_fixture.json");
    for case in f["accuracy"].as_array().unwrap() {
        let pred = case["prediction"].as_str().unwrap();
        let answers = strings(&case["answers"]);
        let expected = case["accuracy"].as_f64().unwrap();
        let ours = vqa_accuracy(pred, &answers);
        assert!((ours - expected).abs() < 1e-12, "{pred:?} vs {answers:?}: ours {ours}, official {expected}");
    }
}

#[test]
fn vqa_single_answer_and_exact_match() {
    let one = |s: &str| vec![s.to_string()];
    // Single-answer sets: normalised equality (the official formula would always give 0).
    assert_eq!(vqa_accuracy("Two.", &one("2")), 1.0);
    assert_eq!(vqa_accuracy("the red one", &one("red 1")), 1.0);
    assert_eq!(vqa_accuracy("blue", &one("red")), 0.0);
    assert_eq!(vqa_accuracy("blue", &[]), 0.0);
    // Exact match against the majority answer, after normalisation.
    let answers: Vec<String> =
        ["red", "Red.", "maroon", "red", "crimson"].iter().map(|s| s.to_string()).collect();
    assert_eq!(exact_match("RED!", &answers), 1.0);
    assert_eq!(exact_match("maroon", &answers), 0.0);
    assert!(vqa_accuracy("maroon", &answers) > 0.0); // accuracy still gives partial credit
}
