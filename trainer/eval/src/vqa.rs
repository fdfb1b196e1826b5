//! VQA accuracy and exact match with the answer normalisation of the official VQAv2 evaluation
//! (GT-Vision-Lab/VQA `PythonEvaluationTools/vqaEvaluation/vqaEval.py`, the code OpenFlamingo and MM1's
//! evaluations copy).
//!
//! Reproduced behaviour of the official script:
//! - the prediction gets `processPunctuation` then `processDigitArticle` (lower-case, number words → digits,
//!   articles dropped, missing apostrophes of contractions restored);
//! - ground-truth answers get only `processPunctuation`, and only when they are not all identical;
//! - `processPunctuation`: each punctuation mark is deleted when it touches a space (or the text has a
//!   `digit,digit`), otherwise replaced by a space; then periods not followed by a digit are deleted — at
//!   most 32 of them (the script passes `re.UNICODE` (= 32) as `re.sub`'s `count`);
//! - accuracy = mean over the 10 leave-one-annotator-out subsets of `min(#matches / 3, 1)`.
//!
//! Extension for single-answer sets (the synthetic benchmark): with one ground-truth answer the official
//! formula is always 0 (no other annotators), so accuracy is then 1 when the normalised prediction equals
//! the fully normalised answer.

/// `self.punct` of the official script.
const PUNCT: [char; 21] = [
    ';', '/', '[', ']', '"', '{', '}', '(', ')', '=', '+', '\\', '_', '-', '>', '<', '@', '`', ',', '?', '!',
];

const ARTICLES: [&str; 3] = ["a", "an", "the"];

/// `self.manualMap`.
const NUMBER_WORDS: [(&str, &str); 12] = [
    ("none", "0"),
    ("zero", "0"),
    ("one", "1"),
    ("two", "2"),
    ("three", "3"),
    ("four", "4"),
    ("five", "5"),
    ("six", "6"),
    ("seven", "7"),
    ("eight", "8"),
    ("nine", "9"),
    ("ten", "10"),
];

/// `self.contractions` (verbatim, including its quirks such as "somebody'd" → "somebodyd").
const CONTRACTIONS: &[(&str, &str)] = &[
    ("aint", "ain't"),
    ("arent", "aren't"),
    ("cant", "can't"),
    ("couldve", "could've"),
    ("couldnt", "couldn't"),
    ("couldn'tve", "couldn't've"),
    ("couldnt've", "couldn't've"),
    ("didnt", "didn't"),
    ("doesnt", "doesn't"),
    ("dont", "don't"),
    ("hadnt", "hadn't"),
    ("hadnt've", "hadn't've"),
    ("hadn'tve", "hadn't've"),
    ("hasnt", "hasn't"),
    ("havent", "haven't"),
    ("hed", "he'd"),
    ("hed've", "he'd've"),
    ("he'dve", "he'd've"),
    ("hes", "he's"),
    ("howd", "how'd"),
    ("howll", "how'll"),
    ("hows", "how's"),
    ("Id've", "I'd've"),
    ("I'dve", "I'd've"),
    ("Im", "I'm"),
    ("Ive", "I've"),
    ("isnt", "isn't"),
    ("itd", "it'd"),
    ("itd've", "it'd've"),
    ("it'dve", "it'd've"),
    ("itll", "it'll"),
    ("let's", "let's"),
    ("maam", "ma'am"),
    ("mightnt", "mightn't"),
    ("mightnt've", "mightn't've"),
    ("mightn'tve", "mightn't've"),
    ("mightve", "might've"),
    ("mustnt", "mustn't"),
    ("mustve", "must've"),
    ("neednt", "needn't"),
    ("notve", "not've"),
    ("oclock", "o'clock"),
    ("oughtnt", "oughtn't"),
    ("ow's'at", "'ow's'at"),
    ("'ows'at", "'ow's'at"),
    ("'ow'sat", "'ow's'at"),
    ("shant", "shan't"),
    ("shed've", "she'd've"),
    ("she'dve", "she'd've"),
    ("she's", "she's"),
    ("shouldve", "should've"),
    ("shouldnt", "shouldn't"),
    ("shouldnt've", "shouldn't've"),
    ("shouldn'tve", "shouldn't've"),
    ("somebody'd", "somebodyd"),
    ("somebodyd've", "somebody'd've"),
    ("somebody'dve", "somebody'd've"),
    ("somebodyll", "somebody'll"),
    ("somebodys", "somebody's"),
    ("someoned", "someone'd"),
    ("someoned've", "someone'd've"),
    ("someone'dve", "someone'd've"),
    ("someonell", "someone'll"),
    ("someones", "someone's"),
    ("somethingd", "something'd"),
    ("somethingd've", "something'd've"),
    ("something'dve", "something'd've"),
    ("somethingll", "something'll"),
    ("thats", "that's"),
    ("thered", "there'd"),
    ("thered've", "there'd've"),
    ("there'dve", "there'd've"),
    ("therere", "there're"),
    ("theres", "there's"),
    ("theyd", "they'd"),
    ("theyd've", "they'd've"),
    ("they'dve", "they'd've"),
    ("theyll", "they'll"),
    ("theyre", "they're"),
    ("theyve", "they've"),
    ("twas", "'twas"),
    ("wasnt", "wasn't"),
    ("wed've", "we'd've"),
    ("we'dve", "we'd've"),
    ("weve", "we've"),
    ("werent", "weren't"),
    ("whatll", "what'll"),
    ("whatre", "what're"),
    ("whats", "what's"),
    ("whatve", "what've"),
    ("whens", "when's"),
    ("whered", "where'd"),
    ("wheres", "where's"),
    ("whereve", "where've"),
    ("whod", "who'd"),
    ("whod've", "who'd've"),
    ("who'dve", "who'd've"),
    ("wholl", "who'll"),
    ("whos", "who's"),
    ("whove", "who've"),
    ("whyll", "why'll"),
    ("whyre", "why're"),
    ("whys", "why's"),
    ("wont", "won't"),
    ("wouldve", "would've"),
    ("wouldnt", "wouldn't"),
    ("wouldnt've", "wouldn't've"),
    ("wouldn'tve", "wouldn't've"),
    ("yall", "y'all"),
    ("yall'll", "y'all'll"),
    ("y'allll", "y'all'll"),
    ("yall'd've", "y'all'd've"),
    ("y'alld've", "y'all'd've"),
    ("y'all'dve", "y'all'd've"),
    ("youd", "you'd"),
    ("youd've", "you'd've"),
    ("you'dve", "you'd've"),
    ("youll", "you'll"),
    ("youre", "you're"),
    ("youve", "you've"),
];

/// `processPunctuation` of the official script.
pub fn process_punctuation(text: &str) -> String {
    let digit_comma_digit =
        text.as_bytes().windows(3).any(|w| w[0].is_ascii_digit() && w[1] == b',' && w[2].is_ascii_digit());
    let mut out = text.to_string();
    for p in PUNCT {
        let touches_space = text.contains(&format!("{p} ")) || text.contains(&format!(" {p}"));
        out = out.replace(p, if touches_space || digit_comma_digit { "" } else { " " });
    }
    strip_periods(&out)
}

/// `periodStrip.sub("", text, 32)`: delete up to 32 periods not followed by a digit.
fn strip_periods(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut removed = 0;
    for (i, &c) in chars.iter().enumerate() {
        let followed_by_digit = chars.get(i + 1).is_some_and(|d| d.is_ascii_digit());
        if c == '.' && !followed_by_digit && removed < 32 {
            removed += 1;
            continue;
        }
        out.push(c);
    }
    out
}

/// `processDigitArticle` of the official script.
pub fn process_digit_article(text: &str) -> String {
    let words: Vec<String> = text
        .to_lowercase()
        .split_whitespace()
        .map(|w| NUMBER_WORDS.iter().find(|(k, _)| *k == w).map_or(w, |(_, v)| *v).to_string())
        .filter(|w| !ARTICLES.contains(&w.as_str()))
        .map(|w| CONTRACTIONS.iter().find(|(k, _)| *k == w).map_or(w, |(_, v)| v.to_string()))
        .collect();
    words.join(" ")
}

/// The prediction-side normalisation of the official script (whitespace, punctuation, digits, articles).
pub fn normalize_answer(answer: &str) -> String {
    let a = answer.replace(['\n', '\t'], " ");
    process_digit_article(&process_punctuation(a.trim()))
}

/// VQA accuracy of one prediction against the annotators' answers (official formula; see module docs
/// for the single-answer case). Returns 0 for an empty answer list.
pub fn vqa_accuracy(prediction: &str, answers: &[String]) -> f64 {
    let pred = normalize_answer(prediction);
    match answers.len() {
        0 => 0.0,
        1 => f64::from(u8::from(pred == normalize_answer(&answers[0]))),
        n => {
            let all_same = answers.iter().all(|a| a == &answers[0]);
            let gts: Vec<String> =
                answers.iter().map(|a| if all_same { a.clone() } else { process_punctuation(a) }).collect();
            let matches_total = gts.iter().filter(|g| **g == pred).count();
            // Leave annotator i out: the others match `matches_total - [gts[i] == pred]` times.
            let sum: f64 = gts
                .iter()
                .map(|g| {
                    let others = matches_total - usize::from(*g == pred);
                    (others as f64 / 3.0).min(1.0)
                })
                .sum();
            sum / n as f64
        }
    }
}

/// Exact match: the normalised prediction equals the normalised most frequent answer (ties: the first
/// one given). Returns 0 for an empty answer list.
pub fn exact_match(prediction: &str, answers: &[String]) -> f64 {
    let normalized: Vec<String> = answers.iter().map(|a| normalize_answer(a)).collect();
    let majority = normalized
        .iter()
        .enumerate()
        .max_by_key(|(i, a)| (normalized.iter().filter(|b| b == a).count(), std::cmp::Reverse(*i)));
    match majority {
        Some((_, a)) => f64::from(u8::from(*a == normalize_answer(prediction))),
        None => 0.0,
    }
}

/// Accuracy against a list of equally correct answers (synthetic benchmark): 1 when the normalised
/// prediction equals any normalised answer.
pub fn alternatives_accuracy(prediction: &str, answers: &[String]) -> f64 {
    let pred = normalize_answer(prediction);
    f64::from(u8::from(answers.iter().any(|a| normalize_answer(a) == pred)))
}

/// Strict exact match against a list of equally correct answers: the trimmed prediction equals one
/// of them character for character.
pub fn alternatives_exact_match(prediction: &str, answers: &[String]) -> f64 {
    let pred = prediction.trim();
    f64::from(u8::from(answers.iter().any(|a| a.trim() == pred)))
}
