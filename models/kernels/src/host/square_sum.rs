//! `Σ x²` of a tensor, for the global gradient norm: 16 k-element blocks in parallel (each a
//! SIMD sum), the block sums added in order in `f64`, so the result is the same on every run.

use super::{CHUNK, F32s, simd, sum_map};
use burn::prelude::*;
use rayon::prelude::*;

/// `Σ x²` (NaN or `+∞` when `x` holds one). `x` `f32` on `Flex`
/// ([`on_flex_f32`](super::on_flex_f32)).
pub fn square_sum<const D: usize>(x: &Tensor<D>) -> f64 {
    let x = F32s::expect(x);
    let blocks: Vec<f64> = x
        .slice()
        .par_chunks(CHUNK)
        .map(|c| {
            simd(
                #[inline(always)]
                || sum_map(c, |v| v * v) as f64,
            )
        })
        .collect();
    blocks.iter().sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn square_sum_matches_f64_and_keeps_non_finite() {
        let device = Device::flex();
        let values: Vec<f32> = (0..40_000).map(|i| ((i * 37) % 1001) as f32 / 100.0 - 5.0).collect();
        let want: f64 = values.iter().map(|&v| (v as f64) * (v as f64)).sum();
        let x = Tensor::<2>::from_data(TensorData::new(values.clone(), [200, 200]), &device);
        let got = square_sum(&x);
        assert!(((got - want) / want).abs() < 1e-6, "{got} vs {want}");
        for bad in [f32::NAN, f32::INFINITY] {
            let mut v = values.clone();
            v[12_345] = bad;
            let x = Tensor::<1>::from_data(TensorData::new(v, [40_000]), &device);
            assert!(!square_sum(&x).is_finite(), "{bad} must make the sum non-finite");
        }
    }
}
