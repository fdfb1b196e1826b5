//! Caption tokenisation as the COCO caption evaluation does it before CIDEr-D.
//!
//! pycocoevalcap (`tokenizer/ptbtokenizer.py`) pipes every caption through Stanford CoreNLP 3.4.1's
//! `PTBTokenizer -preserveLines -lowerCase` (Java) and then drops the tokens in its `PUNCTUATIONS` list.
//! OpenFlamingo and MM1 score captions through that code. This is a Rust port of the parts of the PTB
//! lexer that occur in captions, checked token for token against the Java tokenizer on the captions of
//! `trainer/eval/tests/fixtures/eval/cider_fixture.json` (written by `scripts/eval_make_cider_fixture.py`).
//!
//! What the Java tokenizer does and this port reproduces:
//! - lower-cases everything; brackets become `-lrb-`/`-rrb-`, `-lsb-`/`-rsb-`, `-lcb-`/`-rcb-` (the
//!   reference's punctuation list holds the upper-case forms, so after `-lowerCase` they *stay*);
//! - splits clitics: `it's` → `it 's`, `isn't` → `is n't`, `can't` → `ca n't`, `cannot` → `can not`,
//!   `gonna` → `gon na`; a trailing possessive apostrophe becomes its own (removed) token;
//! - keeps `black-and-white`, `3.5-inch`, `3,000`, `10:30`, `and/or`, `u.s.`, `o'clock` as one token;
//! - splits `$5` → `$ 5`, `50%` → `50 %`, `€`/`£` → `$`/`#`; runs of `!`/`?` stay one token (`!!!`, `?!`),
//!   which are not in the removal list and so count as words;
//! - removes `'' ' `` ` . ? ! , : - -- ... ;` tokens.
//!
//! Known differences (rare in captions; not in the fixture): URLs, e-mail addresses, emoticons, SGML tags,
//! the Java lexer's full abbreviation list (only common titles are kept with their period here), and
//! sentence-final abbreviations (Java then emits an extra `.`, which the removal list drops anyway).

/// Tokens pycocoevalcap removes after tokenisation (`PUNCTUATIONS`, lower-case entries only: the
/// upper-case bracket names never match `-lowerCase` output).
const REMOVED: [&str; 13] = ["''", "'", "``", "`", ".", "?", "!", ",", ":", "-", "--", "...", ";"];

/// Abbreviations the PTB lexer keeps together with their period.
const ABBREVIATIONS: [&str; 16] =
    ["mr", "mrs", "ms", "dr", "prof", "st", "jr", "sr", "co", "inc", "ltd", "corp", "vs", "etc", "mt", "ft"];

/// Whole words the PTB lexer splits into two tokens.
const SPLIT_WORDS: [(&str, &str, &str); 8] = [
    ("cannot", "can", "not"),
    ("gonna", "gon", "na"),
    ("gotta", "got", "ta"),
    ("wanna", "wan", "na"),
    ("lemme", "lem", "me"),
    ("gimme", "gim", "me"),
    ("'tis", "'t", "is"),
    ("'twas", "'t", "was"),
];

/// Tokenise one caption and remove punctuation tokens; returns the words joined by single spaces
/// (the string pycocoevalcap hands to `CiderScorer`).
pub fn ptb_tokenize(caption: &str) -> String {
    let lower: Vec<char> = caption.replace('\n', " ").to_lowercase().chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < lower.len() {
        i = lex_one(&lower, i, &mut tokens);
    }
    let kept: Vec<String> = tokens.into_iter().filter(|t| !REMOVED.contains(&t.as_str())).collect();
    kept.join(" ")
}

fn is_word_char(c: char) -> bool {
    c.is_alphanumeric()
}

/// Lex the token starting at `i`, push it (or them) to `out`, return the index after it.
fn lex_one(s: &[char], i: usize, out: &mut Vec<String>) -> usize {
    let c = s[i];
    if c.is_whitespace() {
        return i + 1;
    }
    if is_word_char(c) {
        return lex_word(s, i, out);
    }
    let at = |k: usize| s.get(k).copied();
    match c {
        '\'' | '’' => {
            // A clitic written after a space ("dog 's") or a leading quote ("'single'").
            let rest: String = s[i + 1..].iter().take_while(|c| is_word_char(**c)).collect();
            let word_end = i + 1 + rest.chars().count();
            let full = format!("'{rest}");
            if let Some((_, a, b)) = SPLIT_WORDS.iter().find(|(w, _, _)| *w == full) {
                out.push(a.to_string());
                out.push(b.to_string());
                return word_end;
            }
            if is_clitic(&rest) {
                out.push(full);
                return word_end;
            }
            out.push("`".into());
            i + 1
        }
        '"' => {
            out.push("''".into());
            i + 1
        }
        '(' | ')' | '[' | ']' | '{' | '}' => {
            let name = match c {
                '(' => "-lrb-",
                ')' => "-rrb-",
                '[' => "-lsb-",
                ']' => "-rsb-",
                '{' => "-lcb-",
                _ => "-rcb-",
            };
            out.push(name.into());
            i + 1
        }
        '.' | '!' | '?' | '-' => {
            // Runs: "..." and "--" are single tokens; "!!!" and "?!" stay as one token.
            let mut j = i + 1;
            let same_class = |x: char| match c {
                '.' => x == '.',
                '-' => x == '-',
                _ => x == '!' || x == '?',
            };
            while at(j).is_some_and(same_class) {
                j += 1;
            }
            let run: String = s[i..j].iter().collect();
            out.push(if c == '.' && j - i >= 2 { "...".into() } else { run });
            j
        }
        '€' => {
            out.push("$".into());
            i + 1
        }
        '£' => {
            out.push("#".into());
            i + 1
        }
        '½' => {
            out.push("1/2".into());
            i + 1
        }
        _ => {
            out.push(c.to_string());
            i + 1
        }
    }
}

/// `'s 'm 'd 're 've 'll` (and `'t` of `'tis`) after the apostrophe.
fn is_clitic(rest: &str) -> bool {
    matches!(rest, "s" | "m" | "d" | "re" | "ve" | "ll")
}

/// A word: letters/digits joined by single inner `-`, digit-separators `. , :` between digits, `/` between
/// word characters, acronym periods (`u.s.`) and inner apostrophes (`o'clock`); clitics are split off.
fn lex_word(s: &[char], start: usize, out: &mut Vec<String>) -> usize {
    let at = |k: usize| s.get(k).copied();
    let word_at = |k: usize| at(k).is_some_and(is_word_char);
    let digit_at = |k: usize| at(k).is_some_and(|c| c.is_ascii_digit());
    let mut j = start;
    loop {
        while word_at(j) {
            j += 1;
        }
        match at(j) {
            Some('-') if word_at(j + 1) => j += 1,
            Some('.' | ',' | ':') if j > start && digit_at(j - 1) && digit_at(j + 1) => j += 1,
            Some('/') if word_at(j + 1) => j += 1,
            Some('.') if is_acronym_step(s, start, j) => j += 1,
            _ => break,
        }
    }
    // Acronym ("u.s.") or title ("mr.") keeps its final period.
    let word: String = s[start..j].iter().collect();
    if at(j) == Some('.')
        && (word.contains('.') && is_acronym(&word) || ABBREVIATIONS.contains(&word.as_str()))
    {
        out.push(format!("{word}."));
        return j + 1;
    }
    // Apostrophes: clitic, inner apostrophe (o'clock) or a trailing possessive quote.
    if matches!(at(j), Some('\'' | '’')) {
        let rest: String = s[j + 1..].iter().take_while(|c| is_word_char(**c)).collect();
        let rest_len = rest.chars().count();
        if word.ends_with('n') && rest == "t" && word.len() > 1 {
            out.push(word[..word.len() - 1].to_string());
            out.push("n't".into());
            return j + 2;
        }
        if is_clitic(&rest) {
            push_word(&word, out);
            out.push(format!("'{rest}"));
            return j + 1 + rest_len;
        }
        if rest_len > 0 {
            push_word(&format!("{word}'{rest}"), out);
            return j + 1 + rest_len;
        }
        push_word(&word, out);
        out.push("'".into());
        return j + 1;
    }
    push_word(&word, out);
    j
}

fn push_word(word: &str, out: &mut Vec<String>) {
    match SPLIT_WORDS.iter().find(|(w, _, _)| *w == word) {
        Some((_, a, b)) => {
            out.push(a.to_string());
            out.push(b.to_string());
        }
        None => out.push(word.to_string()),
    }
}

/// At a `.` at `j`: continue an acronym when the text so far is single letters separated by periods
/// and another single letter followed by `.` comes next ("u.s.", "a.m.").
fn is_acronym_step(s: &[char], start: usize, j: usize) -> bool {
    let so_far: String = s[start..j].iter().collect();
    let next_letter = s.get(j + 1).is_some_and(|c| c.is_alphabetic());
    let then_period = s.get(j + 2) == Some(&'.');
    next_letter && then_period && is_acronym(&so_far)
}

fn is_acronym(word: &str) -> bool {
    word.split('.').all(|part| part.chars().count() == 1 && part.chars().all(char::is_alphabetic))
}
