//! A tiny deterministic RNG whose whole state is one `u64`, so it serialises into `LoaderState`
//! (SplitMix64, Steele et al. 2014; the reference constants of `java.util.SplittableRandom`).

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rng(pub u64);

impl Rng {
    /// Seeds from several words (seed, source index, rank, epoch ...): distinct word tuples give
    /// unrelated states. Each word is XORed in and the state replaced by SplitMix's full output for
    /// it (`mix((state ^ w) + gamma)`), which is a bijection of the word for a given prefix, so two
    /// tuples that share a prefix never meet, and others meet only by a 64-bit chance. The word
    /// count goes in first, so `[a]`, `[a, 0]` and `[0, a]` are three different streams.
    /// (Only XORing the word and adding gamma, without mixing, made `[seed, tag, shard, i]` tuples
    /// collide: 128 distinct samples out of 512; `data/tests/synth.rs`.)
    pub fn from_words(words: &[u64]) -> Self {
        let mut r = Rng(0x853c_49e6_748f_ea9b);
        for w in std::iter::once(words.len() as u64).chain(words.iter().copied()) {
            r.0 ^= w;
            r.0 = r.next_u64();
        }
        r
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, 1)` with 53 random bits.
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in `0..n` (`n > 0`); the modulo bias is below 2^-40 for the sizes used here.
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    /// Fisher-Yates.
    pub fn shuffle<T>(&mut self, xs: &mut [T]) {
        for i in (1..xs.len()).rev() {
            let j = self.below(i + 1);
            xs.swap(i, j);
        }
    }

    /// Index drawn with probability proportional to `weights` (at least one positive).
    pub fn weighted(&mut self, weights: &[f64]) -> usize {
        let total: f64 = weights.iter().sum();
        let mut x = self.next_f64() * total;
        for (i, &w) in weights.iter().enumerate() {
            if x < w {
                return i;
            }
            x -= w;
        }
        weights.iter().rposition(|&w| w > 0.0).unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::Rng;

    /// Every tuple of the grid (and its prefixes, and the tuple with a 0 appended) gets its own
    /// state, and so does its first output: the grid holds the synth generator's
    /// `[seed, tag, shard, i]` and the loader's `[seed, source, rank, epoch, tag]` shapes.
    #[test]
    fn distinct_word_tuples_give_distinct_states() {
        let mut tuples: Vec<Vec<u64>> = Vec::new();
        for seed in [0, 1, 7, u64::MAX] {
            for tag in 0..6 {
                for shard in 0..16 {
                    for i in 0..256 {
                        tuples.push(vec![seed, tag, shard, i]);
                    }
                    tuples.push(vec![seed, tag, shard]);
                    tuples.push(vec![seed, tag, shard, 0, 0]);
                }
                tuples.push(vec![seed, tag]);
            }
            tuples.push(vec![seed]);
        }
        tuples.push(vec![]);
        let mut seen: HashMap<u64, &[u64]> = HashMap::new();
        let mut first: HashMap<u64, &[u64]> = HashMap::new();
        for t in &tuples {
            let mut r = Rng::from_words(t);
            if let Some(other) = seen.insert(r.0, t) {
                panic!("{t:?} and {other:?} give the same state {:#x} ({} tuples)", r.0, tuples.len());
            }
            if let Some(other) = first.insert(r.next_u64(), t) {
                panic!("{t:?} and {other:?} give the same first output ({} tuples)", tuples.len());
            }
        }
    }

    #[test]
    fn word_order_and_length_matter() {
        let s = |w: &[u64]| Rng::from_words(w).0;
        assert_ne!(s(&[1, 2]), s(&[2, 1]));
        assert_ne!(s(&[5]), s(&[5, 0]));
        assert_ne!(s(&[5]), s(&[0, 5]));
        assert_ne!(s(&[]), s(&[0]));
        assert_ne!(s(&[0]), s(&[0, 0]));
    }

    /// Neighbouring tuples give unrelated streams: over 4096 pairs `[.., i]` / `[.., i + 1]` the
    /// first outputs differ in 32 of 64 bits on average (the standard error of that mean is 0.06),
    /// and so do the states themselves.
    #[test]
    fn neighbouring_tuples_avalanche() {
        let n = 4096u64;
        let (mut out_bits, mut state_bits) = (0u64, 0u64);
        for i in 0..n {
            let (mut a, mut b) = (Rng::from_words(&[3, 1, 2, i]), Rng::from_words(&[3, 1, 2, i + 1]));
            state_bits += u64::from((a.0 ^ b.0).count_ones());
            out_bits += u64::from((a.next_u64() ^ b.next_u64()).count_ones());
        }
        for (what, bits) in [("first outputs", out_bits), ("states", state_bits)] {
            let mean = bits as f64 / n as f64;
            assert!(
                (mean - 32.0).abs() < 0.5,
                "{what} of neighbouring tuples differ in {mean:.2} bits on average"
            );
        }
    }
}
