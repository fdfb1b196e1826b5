//! Rotary position embedding in the rotate-half convention of HF `LlamaRotaryEmbedding`
//! (`x * cos + rotate_half(x) * sin`, frequencies repeated as `[f, f]`). burn's
//! `RotaryEncoding` is the interleaved GPT-J variant and would not match HF weights.
//! Angles are computed from explicit position ids, so packed documents restart at 0.

use burn::prelude::*;

#[derive(Module, Debug)]
pub struct Rope {
    pub head_dim: usize,
    pub theta: f64,
}

/// `cos` and `sin` tables for a batch of positions, each `[b, t, 1, dh]` (broadcast over heads).
#[derive(Debug, Clone)]
pub struct RopeTables {
    pub cos: Tensor<4>,
    pub sin: Tensor<4>,
}

impl Rope {
    /// # Shapes
    /// - `position_ids`: `[b, t]` → tables `[b, t, 1, dh]`
    pub fn tables(&self, position_ids: Tensor<2, Int>) -> RopeTables {
        let [b, t] = position_ids.dims();
        let half = self.head_dim / 2;
        // HF: inv_freq = 1 / theta^(2i/dh), in f32.
        let inv: Vec<f32> = (0..half)
            .map(|i| 1.0 / (self.theta as f32).powf((2 * i) as f32 / self.head_dim as f32))
            .collect();
        let device = position_ids.device();
        let inv = Tensor::<1>::from_data(TensorData::new(inv, [half]), &device).reshape([1, 1, half]);
        let ang = position_ids.float().reshape([b, t, 1]) * inv; // [b, t, dh/2]
        let ang = Tensor::cat(vec![ang.clone(), ang], 2).reshape([b, t, 1, self.head_dim]); // [b, t, 1, dh]
        RopeTables { cos: ang.clone().cos(), sin: ang.sin() }
    }
}

impl RopeTables {
    /// `x ∘ cos + rotate_half(x) ∘ sin` (a fused op with its own backward, `ops::rope`).
    ///
    /// # Shapes
    /// - `x`: `[b, t, h, dh]` → `[b, t, h, dh]`
    pub fn apply(&self, x: Tensor<4>) -> Tensor<4> {
        mm1_kernels::rope(x, &self.cos, &self.sin)
    }
}
