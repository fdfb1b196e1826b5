//! Raw-pixel probe (issue #15, item 2): how much of a gated task's answer survives the loader's own
//! resize, before any model is trained. Multinomial logistic regression on the pixels
//! `image::preprocess` produces at a resolution (CLIP-normalised `[3, r, r]`, flattened), trained on
//! freshly drawn scenes and scored on others: the held-out accuracy at the native size is the task's
//! ceiling for a linear read-out of the pixels, at a low resolution its floor.

use rayon::prelude::*;
use serde::Serialize;

use crate::config::ResizeMode;
use crate::error::{DataError, Result};
use crate::image::preprocess;
use crate::rng::Rng;
use crate::synth::{GatedScene, GatedTask};

const TAG_PROBE: u64 = 6;

#[derive(Debug, Clone)]
pub struct ProbeConfig {
    pub task: GatedTask,
    /// Size the scenes are rendered at (the benchmark's `image_size`).
    pub native: usize,
    /// Resolution the loader resizes to.
    pub resolution: usize,
    pub train: usize,
    pub test: usize,
    pub seed: u64,
    /// Full-batch Adam steps and the L2 penalty on the weights.
    pub steps: usize,
    pub l2: f32,
}

impl ProbeConfig {
    pub fn new(task: GatedTask, native: usize, resolution: usize) -> Self {
        Self { task, native, resolution, train: 600, test: 400, seed: 0, steps: 150, l2: 1e-3 }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct ProbeResult {
    pub task: &'static str,
    pub gate: &'static str,
    pub native: usize,
    pub resolution: usize,
    pub classes: Vec<&'static str>,
    pub n_train: usize,
    pub n_test: usize,
    pub train_accuracy: f64,
    pub test_accuracy: f64,
    /// Accuracy of always answering the most frequent training answer, on the test items.
    pub majority_accuracy: f64,
    pub seconds: f64,
}

/// Item `i`'s preprocessed pixels and answer index.
fn item(cfg: &ProbeConfig, i: usize) -> Result<(Vec<f32>, usize)> {
    let task_word = cfg.task.name.bytes().fold(0u64, |h, b| h.wrapping_mul(31).wrapping_add(b as u64));
    let mut rng = Rng::from_words(&[cfg.seed, TAG_PROBE, task_word, i as u64]);
    let scene = GatedScene::sample(cfg.task, cfg.native, &mut rng);
    let answer = scene.question().answers[0].clone();
    let label = cfg.task.classes().iter().position(|c| *c == answer).ok_or_else(|| {
        DataError::Config(format!("probe: answer {answer:?} is not in the classes of {}", cfg.task.name))
    })?;
    let png = scene.render(cfg.native).encode_png();
    let x = preprocess(&png, cfg.resolution, ResizeMode::ShortestSideCrop, u64::MAX)
        .map_err(|e| DataError::Config(format!("probe: preprocess: {}", e.detail)))?;
    Ok((x, label))
}

/// Softmax probabilities of `x` under weights `w` (`[k, d]`) and biases `b` (`[k]`).
fn probs(w: &[f32], b: &[f32], x: &[f32]) -> Vec<f32> {
    let d = x.len();
    let logits: Vec<f32> = b
        .iter()
        .enumerate()
        .map(|(c, bc)| bc + w[c * d..(c + 1) * d].iter().zip(x).map(|(a, v)| a * v).sum::<f32>())
        .collect();
    let m = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let e: Vec<f32> = logits.iter().map(|l| (l - m).exp()).collect();
    let s: f32 = e.iter().sum();
    e.into_iter().map(|v| v / s).collect()
}

fn argmax(p: &[f32]) -> usize {
    p.iter().enumerate().fold(0, |best, (i, v)| if *v > p[best] { i } else { best })
}

fn accuracy(w: &[f32], b: &[f32], data: &[(Vec<f32>, usize)]) -> f64 {
    let right = data.par_iter().filter(|(x, y)| argmax(&probs(w, b, x)) == *y).count();
    right as f64 / data.len().max(1) as f64
}

/// Trains the probe on `cfg.train` scenes and scores it on `cfg.test` others.
pub fn probe(cfg: &ProbeConfig) -> Result<ProbeResult> {
    if cfg.train == 0 || cfg.test == 0 || cfg.resolution == 0 || cfg.native < 24 {
        return Err(DataError::Config(format!(
            "probe: train ({}), test ({}) and resolution ({}) must be >= 1 and native ({}) >= 24",
            cfg.train, cfg.test, cfg.resolution, cfg.native
        )));
    }
    let t0 = std::time::Instant::now();
    let items: Vec<Result<(Vec<f32>, usize)>> =
        (0..cfg.train + cfg.test).into_par_iter().map(|i| item(cfg, i)).collect();
    let mut data = items.into_iter().collect::<Result<Vec<_>>>()?;
    let test = data.split_off(cfg.train);
    let classes = cfg.task.classes();
    let (k, d, n) = (classes.len(), data[0].0.len(), data.len());

    // Full-batch Adam on the mean cross-entropy + l2/2 |w|^2.
    let (mut w, mut b) = (vec![0f32; k * d], vec![0f32; k]);
    let (mut mw, mut vw, mut mb, mut vb) =
        (vec![0f32; k * d], vec![0f32; k * d], vec![0f32; k], vec![0f32; k]);
    let (lr, b1, b2, eps) = (0.01f32, 0.9f32, 0.999f32, 1e-8f32);
    for step in 1..=cfg.steps {
        // Per-item residuals p - onehot(y), then the gradient summed over items in parallel chunks.
        let (gw, gb) = data
            .par_chunks(32)
            .map(|chunk| {
                let (mut gw, mut gb) = (vec![0f32; k * d], vec![0f32; k]);
                for (x, y) in chunk {
                    let mut r = probs(&w, &b, x);
                    r[*y] -= 1.0;
                    for c in 0..k {
                        gb[c] += r[c];
                        for (g, v) in gw[c * d..(c + 1) * d].iter_mut().zip(x) {
                            *g += r[c] * v;
                        }
                    }
                }
                (gw, gb)
            })
            .reduce(
                || (vec![0f32; k * d], vec![0f32; k]),
                |(mut a, mut ab), (o, ob)| {
                    a.iter_mut().zip(&o).for_each(|(p, q)| *p += q);
                    ab.iter_mut().zip(&ob).for_each(|(p, q)| *p += q);
                    (a, ab)
                },
            );
        let (c1, c2) = (1.0 - b1.powi(step as i32), 1.0 - b2.powi(step as i32));
        let adam = |p: &mut f32, m: &mut f32, v: &mut f32, g: f32| {
            *m = b1 * *m + (1.0 - b1) * g;
            *v = b2 * *v + (1.0 - b2) * g * g;
            *p -= lr * (*m / c1) / ((*v / c2).sqrt() + eps);
        };
        for i in 0..k * d {
            let g = gw[i] / n as f32 + cfg.l2 * w[i];
            adam(&mut w[i], &mut mw[i], &mut vw[i], g);
        }
        for c in 0..k {
            adam(&mut b[c], &mut mb[c], &mut vb[c], gb[c] / n as f32);
        }
    }
    let mut counts = vec![0usize; k];
    data.iter().for_each(|(_, y)| counts[*y] += 1);
    let majority = argmax(&counts.iter().map(|&c| c as f32).collect::<Vec<_>>());
    Ok(ProbeResult {
        task: cfg.task.name,
        gate: cfg.task.gate,
        native: cfg.native,
        resolution: cfg.resolution,
        classes,
        n_train: n,
        n_test: test.len(),
        train_accuracy: accuracy(&w, &b, &data),
        test_accuracy: accuracy(&w, &b, &test),
        majority_accuracy: test.iter().filter(|(_, y)| *y == majority).count() as f64 / test.len() as f64,
        seconds: t0.elapsed().as_secs_f64(),
    })
}
