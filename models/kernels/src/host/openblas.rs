//! The products of [`super::gemm`] through OpenBLAS's `cblas_sgemm` (cargo feature
//! `openblas`, linking the system's `libopenblas`).
//!
//! Why: on this project's 2-core machine the `gemm` crate, OpenBLAS and MKL were equally fast
//! on one thread, but two `gemm` threads lost more to each other than two OpenBLAS threads
//! on the training step's shapes (GFLOP/s per library: docs/performance.md, "Our own GEMM
//! calls, causal blocks and one thread pool"). OpenBLAS runs single-threaded here (its
//! own threads would spin beside rayon's workers after every call); [`super::gemm::gemm_many`]
//! splits large products into blocks of rows over the rayon pool instead.
#![allow(unsafe_code)]

use super::gemm::MatRef;

#[link(name = "openblas")]
unsafe extern "C" {
    fn cblas_sgemm(
        order: i32,
        trans_a: i32,
        trans_b: i32,
        m: i32,
        n: i32,
        k: i32,
        alpha: f32,
        a: *const f32,
        lda: i32,
        b: *const f32,
        ldb: i32,
        beta: f32,
        c: *mut f32,
        ldc: i32,
    );
    fn openblas_set_num_threads(threads: i32);
}

const ROW_MAJOR: i32 = 101;
const NO_TRANS: i32 = 111;
const TRANS: i32 = 112;

/// `(transpose flag, leading dimension)` of a view for row-major CBLAS, or `None` when
/// neither of its strides is 1 (or a size does not fit an `i32`).
fn layout(v: &MatRef) -> Option<(i32, i32)> {
    let (rs, cs) = v.strides();
    let ld = |s: usize, min: usize| i32::try_from(s.max(min).max(1)).ok();
    if cs == 1 {
        Some((NO_TRANS, ld(rs, v.dims().1)?))
    } else if rs == 1 {
        Some((TRANS, ld(cs, v.dims().0)?))
    } else {
        None
    }
}

/// `out = a · b` (`+=` when `accumulate`) through `cblas_sgemm`; `false` (nothing done) when a
/// view's layout is not one CBLAS takes. Views checked by the caller, `m, n, k > 0`.
///
/// # Safety
/// As [`super::gemm`]'s `product`: `out` valid for the `m × n` elements `i·out_row_stride + j`
/// (initialised when accumulating) and overlapping neither input.
pub unsafe fn product(a: MatRef, b: MatRef, out: *mut f32, out_row_stride: usize, accumulate: bool) -> bool {
    let ((m, k), n) = (a.dims(), b.dims().1);
    let (Some((ta, lda)), Some((tb, ldb))) = (layout(&a), layout(&b)) else {
        return false;
    };
    let (Ok(m), Ok(n), Ok(k), Ok(ldc)) =
        (i32::try_from(m), i32::try_from(n), i32::try_from(k), i32::try_from(out_row_stride))
    else {
        return false;
    };
    single_threaded();
    let beta = if accumulate { 1.0 } else { 0.0 };
    // SAFETY: the views' elements lie inside their slices (checked by the caller), the
    // layouts and leading dimensions describe them (`layout`), and `out` is valid for the
    // rows as the caller guarantees.
    unsafe {
        cblas_sgemm(ROW_MAJOR, ta, tb, m, n, k, 1.0, a.data_ptr(), lda, b.data_ptr(), ldb, beta, out, ldc);
    }
    true
}

/// OpenBLAS's own threads off, once per process.
fn single_threaded() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    // SAFETY: a plain setter of the library's thread count.
    ONCE.call_once(|| unsafe { openblas_set_num_threads(1) });
}
