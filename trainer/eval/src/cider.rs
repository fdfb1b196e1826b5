//! CIDEr-D (Vedantam et al. 2015), computed exactly as pycocoevalcap's `cider/cider_scorer.py`.
//!
//! pycocoevalcap's `Cider` *is* CIDEr-D: tf-idf n-gram vectors (n = 1..4), the candidate's weights clipped
//! by the reference's (`min(hyp, ref) * ref`), a Gaussian length penalty `exp(-δ²/2σ²)` with σ = 6,
//! the mean over n, the mean over references, ×10. Document frequencies come from the references of the
//! whole evaluated set, so a score depends on the set it is computed in (like the reference).
//!
//! Two details of the reference are reproduced on purpose:
//! - the "length" in the penalty counts *bigrams* (`if n == 1: length += term_freq` with a 0-based n),
//!   i.e. words − 1;
//! - an n-gram absent from every reference gets df = 1 (`log(max(1, df))`), i.e. idf = log(#images).
//!
//! Inputs are tokenised strings (see [`super::ptb_tokenize`]); words are split on whitespace.

use std::collections::{BTreeMap, HashMap, HashSet};

use super::EvalError;

/// CIDEr-D's maximum n-gram length.
pub const CIDER_N: usize = 4;
/// Standard deviation of the length penalty.
pub const CIDER_SIGMA: f64 = 6.0;

/// Scores of one evaluated set.
#[derive(Debug, Clone, PartialEq)]
pub struct CiderScores {
    /// Mean of `per_item` (pycocoevalcap's corpus score).
    pub corpus: f64,
    pub per_item: Vec<f64>,
}

/// One n-gram as interned word ids.
type Ngram = Vec<u32>;

/// Term frequencies of every 1..4-gram of one sentence. Ordered maps, so that every sum runs in one
/// order and a score is the same to the last bit in every process (a `HashMap`'s order, and with it
/// the float rounding, changes from process to process: up to 1.1e-16 on the CPU study).
struct Counts(BTreeMap<Ngram, f64>);

/// tf-idf vector of one sentence: per n-gram order, weights and norm; plus the penalty length.
struct Vector {
    weights: [BTreeMap<Ngram, f64>; CIDER_N],
    norm: [f64; CIDER_N],
    length: f64,
}

/// CIDEr-D of `candidates[i]` against `references[i]` (tokenised text).
pub fn cider_d(candidates: &[String], references: &[Vec<String>]) -> Result<CiderScores, EvalError> {
    if candidates.len() != references.len() {
        return Err(EvalError::Invalid(format!(
            "CIDEr-D: candidates ({}) != reference lists ({})",
            candidates.len(),
            references.len()
        )));
    }
    if candidates.is_empty() {
        return Err(EvalError::Invalid("CIDEr-D: empty evaluation set".into()));
    }
    if let Some(i) = references.iter().position(Vec::is_empty) {
        return Err(EvalError::Invalid(format!("CIDEr-D: item {i} has no reference caption")));
    }
    let mut vocab = HashMap::new();
    let tests: Vec<Counts> = candidates.iter().map(|c| counts(c, &mut vocab)).collect();
    let refs: Vec<Vec<Counts>> =
        references.iter().map(|rs| rs.iter().map(|r| counts(r, &mut vocab)).collect()).collect();

    // Document frequency: in how many items' reference sets each n-gram occurs.
    let mut df: HashMap<&Ngram, f64> = HashMap::new();
    for item in &refs {
        let unique: HashSet<&Ngram> = item.iter().flat_map(|c| c.0.keys()).collect();
        for g in unique {
            *df.entry(g).or_default() += 1.0;
        }
    }
    let log_n = (refs.len() as f64).ln();
    let vectorize = |c: &Counts| to_vector(c, &df, log_n);

    let per_item: Vec<f64> = tests
        .iter()
        .zip(&refs)
        .map(|(test, item_refs)| {
            let hyp = vectorize(test);
            let mut total = [0.0; CIDER_N];
            for r in item_refs {
                let sim = similarity(&hyp, &vectorize(r));
                for n in 0..CIDER_N {
                    total[n] += sim[n];
                }
            }
            let mean_over_n = total.iter().sum::<f64>() / CIDER_N as f64;
            mean_over_n / item_refs.len() as f64 * 10.0
        })
        .collect();
    let corpus = per_item.iter().sum::<f64>() / per_item.len() as f64;
    Ok(CiderScores { corpus, per_item })
}

fn counts(sentence: &str, vocab: &mut HashMap<String, u32>) -> Counts {
    let ids: Vec<u32> = sentence
        .split_whitespace()
        .map(|w| {
            let next = vocab.len() as u32;
            *vocab.entry(w.to_string()).or_insert(next)
        })
        .collect();
    let mut map = BTreeMap::new();
    for k in 1..=CIDER_N {
        for window in ids.windows(k) {
            *map.entry(window.to_vec()).or_insert(0.0) += 1.0;
        }
    }
    Counts(map)
}

fn to_vector(c: &Counts, df: &HashMap<&Ngram, f64>, log_n: f64) -> Vector {
    let mut v = Vector { weights: Default::default(), norm: [0.0; CIDER_N], length: 0.0 };
    for (g, &tf) in &c.0 {
        let n = g.len() - 1;
        let idf = log_n - df.get(g).copied().unwrap_or(0.0).max(1.0).ln();
        let w = tf * idf;
        v.weights[n].insert(g.clone(), w);
        v.norm[n] += w * w;
        if n == 1 {
            v.length += tf; // the reference counts bigrams here (see module docs)
        }
    }
    for x in &mut v.norm {
        *x = x.sqrt();
    }
    v
}

fn similarity(hyp: &Vector, reference: &Vector) -> [f64; CIDER_N] {
    let delta = hyp.length - reference.length;
    let penalty = (-(delta * delta) / (2.0 * CIDER_SIGMA * CIDER_SIGMA)).exp();
    let mut val = [0.0; CIDER_N];
    for n in 0..CIDER_N {
        for (g, &wh) in &hyp.weights[n] {
            let wr = reference.weights[n].get(g).copied().unwrap_or(0.0);
            val[n] += wh.min(wr) * wr;
        }
        if hyp.norm[n] != 0.0 && reference.norm[n] != 0.0 {
            val[n] /= hyp.norm[n] * reference.norm[n];
        }
        val[n] *= penalty;
    }
    val
}
