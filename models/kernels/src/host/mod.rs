//! Parallel CPU kernels for the fused ops (and the trainer's AdamW update) on the `Flex`
//! backend, working on flex's storage directly: inputs are borrowed, not copied, and each
//! output is written over an input's buffer when nothing else holds it, else one allocation.
//!
//! Why: burn-flex 0.22.1 runs its element-wise ops on the calling thread with libm's scalar
//! `expf`, while only the GEMMs use the rayon pool, so the other threads wait through that
//! serial work (its share of the step: docs/performance.md, "Parallel kernels on flex
//! storage"). Each kernel here does in one
//! parallel, vectorised pass what the burn ops did in several serial ones. Every caller keeps
//! its burn-ops version for other backends and dtypes, and the tests compare the two.

pub mod adamw;
pub mod attention;
pub mod attention_gemm;
pub mod cross_entropy;
mod exp;
pub mod gelu;
pub mod gemm;
#[cfg(feature = "openblas")]
mod openblas;
pub mod rms_norm;
pub mod rope;
mod square_sum;
pub mod swiglu;

pub use square_sum::square_sum;

use burn::backend::Flex;
use burn::prelude::*;
use burn::tensor::{DType, TensorData};
use burn_flex::FlexTensor;
use macerator::{AutoArch, Simd, WithSimd};
use rayon::prelude::*;

/// Elements per rayon task: large enough that scheduling is negligible, small enough that
/// two threads split even the smaller tensors of the step.
const CHUNK: usize = 1 << 14;

/// A contiguous `f32` flex tensor (the storage of a [`Tensor`] on `Flex`).
pub struct F32s(FlexTensor);

impl F32s {
    /// `t`'s storage when it is an `f32` tensor on `Flex` (a strided view is made contiguous
    /// first); `None` on any other backend or dtype.
    pub fn of<const D: usize>(t: &Tensor<D>) -> Option<Self> {
        Self::take(t.clone())
    }

    /// [`F32s::of`] for a tensor known to be `f32` on `Flex` (see [`on_flex_f32`]).
    pub fn expect<const D: usize>(t: &Tensor<D>) -> Self {
        Self::of(t).expect("ops::host kernels take f32 tensors on Flex (check on_flex_f32 first)")
    }

    /// [`F32s::take`] for a tensor known to be `f32` on `Flex` (see [`on_flex_f32`]).
    pub fn expect_take<const D: usize>(t: Tensor<D>) -> Self {
        Self::take(t).expect("ops::host kernels take f32 tensors on Flex (check on_flex_f32 first)")
    }

    /// [`F32s::of`], taking the tensor (so that its storage can become unique).
    pub fn take<const D: usize>(t: Tensor<D>) -> Option<Self> {
        let p = t.try_into_primitive::<Flex>().ok()?;
        if p.dtype() != DType::F32 {
            return None;
        }
        let p = if p.layout().contiguous_offsets().is_some() { p } else { p.to_contiguous() };
        Some(Self(p))
    }

    /// The shape (`D` must be the tensor's rank).
    pub fn dims<const D: usize>(&self) -> [usize; D] {
        let shape = self.0.layout().shape();
        assert_eq!(shape.num_dims(), D, "F32s::dims: rank {} tensor", shape.num_dims());
        std::array::from_fn(|i| shape[i])
    }

    pub fn slice(&self) -> &[f32] {
        self.0.as_slice::<f32>().expect("made contiguous in F32s::of")
    }

    /// The storage to overwrite: in place when nothing else holds it and the view covers all
    /// of it, else a copy.
    pub fn into_mut(self) -> F32Mut {
        let n = self.0.layout().num_elements();
        let whole = self.0.layout().contiguous_offsets() == Some((0, n)) && self.0.bytes().len() == n * 4;
        if whole {
            F32Mut(self.0)
        } else {
            let shape = self.0.layout().shape().clone();
            F32Mut(FlexTensor::from_data(TensorData::new(self.slice().to_vec(), shape)))
        }
    }
}

/// A contiguous `f32` flex tensor whose whole storage is ours to overwrite.
pub struct F32Mut(FlexTensor);

impl F32Mut {
    /// The values (copied first if the storage is still shared).
    pub fn slice_mut(&mut self) -> &mut [f32] {
        self.0.storage_mut::<f32>()
    }

    pub fn into_tensor<const D: usize>(self) -> Tensor<D> {
        Tensor::from_primitive::<Flex>(self.0)
    }
}

/// `f()` compiled for the best SIMD level this CPU has (AVX2 + FMA, AVX-512, NEON, ...),
/// chosen at run time: plain loops inlined into `f` are vectorised for it. Mark `f`
/// `#[inline(always)]`.
#[inline(always)]
pub fn simd<R>(f: impl FnOnce() -> R) -> R {
    struct Run<F>(F);
    impl<R, F: FnOnce() -> R> WithSimd for Run<F> {
        type Output = R;
        #[inline(always)]
        fn with_simd<S: Simd>(self) -> R {
            (self.0)()
        }
    }
    AutoArch::new().dispatch(Run(f))
}

/// Whether `t` lives on `Flex` (any dtype).
pub fn on_flex<const D: usize>(t: &Tensor<D>) -> bool {
    t.clone().try_into_primitive::<Flex>().is_ok()
}

/// Whether `t` is an `f32` tensor on `Flex` (the kernels here apply).
pub fn on_flex_f32<const D: usize>(t: &Tensor<D>) -> bool {
    t.clone().try_into_primitive::<Flex>().is_ok_and(|p| p.dtype() == DType::F32)
}

/// `f(r, row)` for every row `r` of width `width` of `x`, rows split over the rayon pool.
pub fn for_rows(x: &mut [f32], width: usize, f: impl Fn(usize, &mut [f32]) + Sync) {
    let rows_per_task = (CHUNK / width.max(1)).max(1);
    x.par_chunks_mut(rows_per_task * width).enumerate().for_each(|(task, rows)| {
        simd(
            #[inline(always)]
            || {
                for (i, row) in rows.chunks_mut(width).enumerate() {
                    f(task * rows_per_task + i, row);
                }
            },
        )
    });
}

/// [`for_rows`] where `f` also returns one value per row, stored in `stat` (`[rows]`).
pub fn for_rows_stat(
    x: &mut [f32],
    width: usize,
    stat: &mut [f32],
    f: impl Fn(usize, &mut [f32]) -> f32 + Sync,
) {
    let rows_per_task = (CHUNK / width.max(1)).max(1);
    assert_eq!(
        x.len(),
        stat.len() * width,
        "for_rows_stat: {} values for {} rows of {width}",
        x.len(),
        stat.len()
    );
    x.par_chunks_mut(rows_per_task * width).zip(stat.par_chunks_mut(rows_per_task)).enumerate().for_each(
        |(task, (rows, stats))| {
            simd(
                #[inline(always)]
                || {
                    for (i, (row, stat)) in rows.chunks_mut(width).zip(stats).enumerate() {
                        *stat = f(task * rows_per_task + i, row);
                    }
                },
            )
        },
    );
}

/// Lanes of the reductions below: independent accumulators the compiler keeps in SIMD registers.
const LANES: usize = 8;

/// `Σ f(xᵢ)`, summed in [`LANES`] interleaved partial sums.
#[inline(always)]
pub fn sum_map(x: &[f32], f: impl Fn(f32) -> f32) -> f32 {
    let mut acc = [0.0f32; LANES];
    let chunks = x.chunks_exact(LANES);
    let tail: f32 = chunks.remainder().iter().map(|&v| f(v)).sum();
    for c in chunks {
        for k in 0..LANES {
            acc[k] += f(c[k]);
        }
    }
    acc.iter().sum::<f32>() + tail
}

/// `Σ xᵢ yᵢ` over the common length, summed in [`LANES`] interleaved partial sums.
#[inline(always)]
pub fn dot(x: &[f32], y: &[f32]) -> f32 {
    let n = x.len().min(y.len());
    let (x, y) = (&x[..n], &y[..n]);
    let mut acc = [0.0f32; LANES];
    let tail: f32 = x
        .chunks_exact(LANES)
        .remainder()
        .iter()
        .zip(y.chunks_exact(LANES).remainder())
        .map(|(a, b)| a * b)
        .sum();
    for (a, b) in x.chunks_exact(LANES).zip(y.chunks_exact(LANES)) {
        for k in 0..LANES {
            acc[k] += a[k] * b[k];
        }
    }
    acc.iter().sum::<f32>() + tail
}

/// `max xᵢ` (`−∞` for an empty row).
#[inline(always)]
pub fn max(x: &[f32]) -> f32 {
    let mut acc = [f32::NEG_INFINITY; LANES];
    let chunks = x.chunks_exact(LANES);
    let tail = chunks.remainder().iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v));
    for c in chunks {
        for k in 0..LANES {
            acc[k] = if c[k] > acc[k] { c[k] } else { acc[k] };
        }
    }
    acc.iter().fold(tail, |m, &v| m.max(v))
}

/// `n` zeros, written by the pool's threads (`vec![0.0; n]` writes them on the calling thread
/// when the allocator reuses freed memory, as it does in `mm1-train`).
pub fn zeros(n: usize) -> Vec<f32> {
    let mut out = Vec::with_capacity(n);
    out.par_extend(rayon::iter::repeat_n(0.0, n));
    out
}

/// A `Flex` tensor of `shape` holding `data` (no copy).
pub fn tensor<const D: usize>(data: Vec<f32>, shape: [usize; D]) -> Tensor<D> {
    debug_assert_eq!(data.len(), shape.iter().product::<usize>());
    Tensor::from_primitive::<Flex>(FlexTensor::from_data(TensorData::new(data, shape)))
}
