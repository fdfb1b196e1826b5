//! A branch-free `exp` for `f32` that the compiler vectorises (libm's `expf` is a scalar call).
//!
//! Cephes' `expf`: `eˣ = 2ⁿ · eʳ` with `n = round(x / ln 2)` and `r = x − n ln 2` in
//! `[−ln 2 / 2, ln 2 / 2]`, `eʳ` by a degree-6 polynomial, `2ⁿ` built from exponent bits.
//! Within 2 ulp of `f32::exp` on `[−87.3, 88.7]`; `+∞` above, `0` below (results that would be
//! subnormal are flushed to zero, which a softmax or sigmoid never notices); NaN stays NaN.

const LOG2_E: f32 = std::f32::consts::LOG2_E;
/// `ln 2` split in two so that `n · LN2_HI` is exact.
const LN2_HI: f32 = 0.693_359_4;
const LN2_LO: f32 = -2.121_944_4e-4;
/// Adding and subtracting `1.5 · 2²³` rounds an `f32` of magnitude < 2²² to the nearest integer
/// with plain additions (`round`/`floor` are library calls without SSE4.1).
const ROUND: f32 = 12_582_912.0;
const MAX_ARG: f32 = 88.722_83;
const MIN_ARG: f32 = -87.336_55;

/// `eˣ` (see the module note for its accuracy).
#[inline(always)]
pub fn exp(x: f32) -> f32 {
    let xc = x.clamp(MIN_ARG, MAX_ARG);
    let shifted = xc * LOG2_E + ROUND; // n + 1.5 · 2²³: n sits in the low mantissa bits
    let n = shifted - ROUND;
    let r = xc - n * LN2_HI - n * LN2_LO;
    let p = 1.987_569_1e-4_f32;
    let p = p * r + 1.398_199_9e-3;
    let p = p * r + 8.333_452e-3;
    let p = p * r + 4.166_579_6e-2;
    let p = p * r + 1.666_666_5e-1;
    let p = p * r + 0.5; // Cephes: 5.0000001201e-1, which is 0.5 in f32
    let er = p * r * r + r + 1.0;
    // 2ⁿ as 2^⌊n/2⌋ · 2^⌈n/2⌉: n reaches 128 just below MAX_ARG, past the largest f32 power of two.
    // Wrapping integer ops (no overflow: |n| ≤ 128) vectorise in builds with overflow checks;
    // `as i32` on the float would not vectorise either.
    let n = shifted.to_bits().wrapping_sub(ROUND.to_bits()) as i32;
    let (lo, hi) = (n >> 1, n.wrapping_sub(n >> 1));
    let pow2 = |e: i32| f32::from_bits((e.wrapping_add(127) as u32) << 23);
    let y = er * pow2(lo) * pow2(hi);
    let y = if x > MAX_ARG { f32::INFINITY } else { y };
    let y = if x < MIN_ARG { 0.0 } else { y };
    if x.is_nan() { x } else { y }
}

/// `σ(x) = 1 / (1 + e⁻ˣ)`.
#[inline(always)]
pub fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + exp(-x))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ulps(a: f32, b: f32) -> i64 {
        (a.to_bits() as i64 - b.to_bits() as i64).abs()
    }

    #[test]
    fn exp_is_within_two_ulp_of_libm() {
        let mut worst = 0;
        let mut x = MIN_ARG;
        while x < MAX_ARG {
            let want = x.exp();
            if want >= f32::MIN_POSITIVE {
                worst = worst.max(ulps(exp(x), want));
            }
            x += 0.000_37;
        }
        assert!(worst <= 2, "worst error {worst} ulp");
    }

    #[test]
    fn exp_edges() {
        assert_eq!(exp(0.0), 1.0);
        assert_eq!(exp(f32::NEG_INFINITY), 0.0);
        assert_eq!(exp(-1000.0), 0.0);
        assert_eq!(exp(f32::INFINITY), f32::INFINITY);
        assert_eq!(exp(100.0), f32::INFINITY);
        assert!(exp(f32::NAN).is_nan());
        assert_eq!(sigmoid(f32::NEG_INFINITY), 0.0);
        assert_eq!(sigmoid(f32::INFINITY), 1.0);
        assert!((sigmoid(0.0) - 0.5).abs() < 1e-7);
    }
}
