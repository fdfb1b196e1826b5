//! Mean and sample standard deviation over seeds.

/// Mean ± sample standard deviation (n − 1 in the denominator; 0 for one value).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MeanStd {
    pub mean: f64,
    pub std: f64,
    pub n: usize,
}

pub fn mean_std(values: &[f64]) -> Option<MeanStd> {
    let n = values.len();
    if n == 0 {
        return None;
    }
    let mean = values.iter().sum::<f64>() / n as f64;
    let std = if n > 1 {
        (values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1) as f64).sqrt()
    } else {
        0.0
    };
    Some(MeanStd { mean, std, n })
}

impl MeanStd {
    /// `0.512 ± 0.013` (just the mean for a single seed), with significant digits fit for the scale.
    pub fn show(&self) -> String {
        if self.n > 1 {
            format!("{} ± {}", fmt_num(self.mean), fmt_num(self.std))
        } else {
            fmt_num(self.mean)
        }
    }
}

/// Four significant digits, no exponent for everyday magnitudes.
pub fn fmt_num(x: f64) -> String {
    let a = x.abs();
    if a == 0.0 {
        "0".into()
    } else if !(1e-3..1e6).contains(&a) {
        format!("{x:.3e}")
    } else if a >= 1000.0 {
        format!("{x:.0}")
    } else {
        let decimals = (3 - a.log10().floor() as i32).max(0) as usize;
        format!("{x:.decimals$}")
    }
}

/// A mean with a 95 % interval.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Interval {
    pub mean: f64,
    pub lo: f64,
    pub hi: f64,
    /// Values it was computed from (seeds or items).
    pub n: usize,
}

impl Interval {
    /// Whether the interval excludes 0 (both ends on one side).
    pub fn excludes_zero(&self) -> bool {
        self.lo > 0.0 || self.hi < 0.0
    }

    /// `0.512 [0.498, 0.526]`.
    pub fn show(&self) -> String {
        format!("{} [{}, {}]", fmt_num(self.mean), fmt_num(self.lo), fmt_num(self.hi))
    }
}

/// How many standard errors a t interval's mean lies from 0 (`|mean| / (s/√n)`, recovered from the
/// interval's half-width; infinite when every value was equal and the mean is not 0). Issue #15
/// asks gated effects to be at least 5 and controls within 2.
pub fn standard_errors_from_zero(t: &Interval) -> f64 {
    if t.n < 2 {
        return f64::NAN;
    }
    let se = (t.hi - t.lo) / 2.0 / t_quantile(0.975, (t.n - 1) as f64);
    if se > 0.0 {
        t.mean.abs() / se
    } else if t.mean == 0.0 {
        0.0
    } else {
        f64::INFINITY
    }
}

/// The report's wording of a difference: "effect" only when its interval excludes 0.
pub fn verdict(diff: Option<&Interval>) -> &'static str {
    match diff {
        Some(d) if d.excludes_zero() => "effect",
        _ => "not separated",
    }
}

/// Mean and two-sided 95 % Student-t interval, `mean ± t(0.975, n−1) · s / √n` (`None` below 2
/// values: one seed has no spread to judge).
pub fn t_interval(values: &[f64]) -> Option<Interval> {
    let ms = mean_std(values)?;
    if ms.n < 2 {
        return None;
    }
    let half = t_quantile(0.975, (ms.n - 1) as f64) * ms.std / (ms.n as f64).sqrt();
    Some(Interval { mean: ms.mean, lo: ms.mean - half, hi: ms.mean + half, n: ms.n })
}

/// Percentile bootstrap 95 % interval of the mean: `reps` resamples with replacement drawn by a
/// SplitMix64 stream from `seed` (the same inputs give the same interval).
pub fn bootstrap_interval(values: &[f64], reps: usize, seed: u64) -> Option<Interval> {
    let n = values.len();
    if n == 0 || reps == 0 {
        return None;
    }
    let mean = values.iter().sum::<f64>() / n as f64;
    let mut state = seed;
    let mut next = || {
        // SplitMix64 (Steele et al. 2014).
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    };
    let mut means: Vec<f64> = (0..reps)
        .map(|_| (0..n).map(|_| values[(next() % n as u64) as usize]).sum::<f64>() / n as f64)
        .collect();
    means.sort_by(f64::total_cmp);
    // numpy's default ("linear") percentile of the sorted resample means.
    let pct = |q: f64| {
        let x = q * (reps - 1) as f64;
        let (i, f) = (x.floor() as usize, x - x.floor());
        means[i] + f * (means[(i + 1).min(reps - 1)] - means[i])
    };
    Some(Interval { mean, lo: pct(0.025), hi: pct(0.975), n })
}

/// Quantile of Student's t distribution with `df` degrees of freedom (bisection on the CDF).
pub fn t_quantile(p: f64, df: f64) -> f64 {
    if p < 0.5 {
        return -t_quantile(1.0 - p, df);
    }
    let (mut lo, mut hi) = (0.0, 1.0);
    while t_cdf(hi, df) < p {
        hi *= 2.0;
    }
    for _ in 0..200 {
        let mid = 0.5 * (lo + hi);
        if t_cdf(mid, df) < p {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    0.5 * (lo + hi)
}

/// CDF of Student's t: `1 − ½ I_{df/(df+t²)}(df/2, ½)` for `t ≥ 0`.
pub fn t_cdf(t: f64, df: f64) -> f64 {
    let tail = 0.5 * incomplete_beta(df / 2.0, 0.5, df / (df + t * t));
    if t >= 0.0 { 1.0 - tail } else { tail }
}

/// Regularised incomplete beta `I_x(a, b)` (continued fraction, Numerical Recipes §6.4).
fn incomplete_beta(a: f64, b: f64, x: f64) -> f64 {
    if x <= 0.0 {
        return 0.0;
    }
    if x >= 1.0 {
        return 1.0;
    }
    let front = (ln_gamma(a + b) - ln_gamma(a) - ln_gamma(b) + a * x.ln() + b * (1.0 - x).ln()).exp();
    if x < (a + 1.0) / (a + b + 2.0) {
        front * beta_fraction(a, b, x) / a
    } else {
        1.0 - front * beta_fraction(b, a, 1.0 - x) / b
    }
}

/// Lentz's evaluation of the incomplete beta continued fraction.
fn beta_fraction(a: f64, b: f64, x: f64) -> f64 {
    const TINY: f64 = 1e-300;
    let (qab, qap, qam) = (a + b, a + 1.0, a - 1.0);
    let mut c = 1.0;
    let mut d = 1.0 - qab * x / qap;
    d = if d.abs() < TINY { TINY } else { d };
    d = 1.0 / d;
    let mut h = d;
    for m in 1..500 {
        let m = m as f64;
        let m2 = 2.0 * m;
        for aa in
            [m * (b - m) * x / ((qam + m2) * (a + m2)), -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))]
        {
            d = 1.0 + aa * d;
            d = if d.abs() < TINY { TINY } else { d };
            c = 1.0 + aa / c;
            c = if c.abs() < TINY { TINY } else { c };
            d = 1.0 / d;
            h *= d * c;
        }
        if (d * c - 1.0).abs() < 1e-15 {
            break;
        }
    }
    h
}

/// `ln Γ(x)` for `x > 0` (Lanczos, g = 7, 9 terms; ~1e-15 relative).
fn ln_gamma(x: f64) -> f64 {
    const G: [f64; 9] = [
        0.999_999_999_999_809_9,
        676.520_368_121_885_1,
        -1_259.139_216_722_402_8,
        771.323_428_777_653_1,
        -176.615_029_162_140_6,
        12.507_343_278_686_905,
        -0.138_571_095_265_720_12,
        9.984_369_578_019_572e-6,
        1.505_632_735_149_311_6e-7,
    ];
    if x < 0.5 {
        return (std::f64::consts::PI / (std::f64::consts::PI * x).sin()).ln() - ln_gamma(1.0 - x);
    }
    let x = x - 1.0;
    let t = x + 7.5;
    let sum: f64 = G[0] + (1..9).map(|i| G[i] / (x + i as f64)).sum::<f64>();
    0.5 * (2.0 * std::f64::consts::PI).ln() + (x + 0.5) * t.ln() - t + sum.ln()
}
