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
