//! `f32` matrix products on host slices, through the `gemm` crate (the micro-kernels
//! burn-flex's own `matmul` runs) on one thread per block, into an output buffer allocated
//! once.
//!
//! Why: burn-flex 0.22.1 allocates every matmul output with `FlexTensor::empty`, which
//! builds a zeroed `Vec<u8>` and then, because a `Vec<u8>` only promises 1-byte alignment,
//! copies it into a new 16-byte-aligned allocation (`Bytes::from_bytes_vec` →
//! `try_enforce_runtime_align`). Each GEMM output was so zero-filled, copied and
//! page-faulted twice, serially on the calling thread: on the `bench-cpu` step that copy and
//! its page faults were the largest serial cost (docs/performance.md). Here the output is one
//! `Vec<f32>` that becomes the tensor's storage without a copy ([`super::tensor`]).
//!
//! The crate's `unsafe` code lives here (and in the optional `openblas.rs`): every public
//! function checks each view against its slice before raw pointers reach `gemm::gemm`.
#![allow(unsafe_code)]

use rayon::prelude::*;

/// Below this many multiply-adds (`m·n·k`) a product is not cut into blocks (flex's threshold
/// for its parallel matmul).
const SPLIT_MIN_MACS: usize = 192 * 192 * 192;

/// A read-only `rows × cols` matrix view of a slice: element `(i, j)` is
/// `data[i·row_stride + j·col_stride]`.
#[derive(Debug, Clone, Copy)]
pub struct MatRef<'a> {
    data: &'a [f32],
    rows: usize,
    cols: usize,
    row_stride: usize,
    col_stride: usize,
}

impl<'a> MatRef<'a> {
    /// The row-major `rows × cols` matrix in `data` (exactly `rows · cols` values).
    pub fn row_major(data: &'a [f32], rows: usize, cols: usize) -> Self {
        assert_eq!(data.len(), rows * cols, "MatRef::row_major: {} values for {rows} x {cols}", data.len());
        Self { data, rows, cols, row_stride: cols, col_stride: 1 }
    }

    /// Matrix `z` of `data` holding row-major `rows × cols` matrices back to back.
    pub fn block(data: &'a [f32], z: usize, rows: usize, cols: usize) -> Self {
        Self::row_major(&data[z * rows * cols..][..rows * cols], rows, cols)
    }

    /// Rows `rows.start..rows.end` and columns `cols.start..cols.end` (a view: no copy).
    pub fn sub(self, rows: std::ops::Range<usize>, cols: std::ops::Range<usize>) -> Self {
        assert!(rows.end <= self.rows && cols.end <= self.cols, "MatRef::sub: past the matrix");
        let start = rows.start * self.row_stride + cols.start * self.col_stride;
        let data = if rows.is_empty() || cols.is_empty() { &self.data[..0] } else { &self.data[start..] };
        Self { data, rows: rows.len(), cols: cols.len(), ..self }
    }

    /// The transpose (a view: no copy).
    pub fn t(self) -> Self {
        Self {
            rows: self.cols,
            cols: self.rows,
            row_stride: self.col_stride,
            col_stride: self.row_stride,
            ..self
        }
    }

    /// `(rows, cols)`.
    #[cfg(feature = "openblas")]
    pub fn dims(&self) -> (usize, usize) {
        (self.rows, self.cols)
    }

    /// `(row_stride, col_stride)`.
    #[cfg(feature = "openblas")]
    pub fn strides(&self) -> (usize, usize) {
        (self.row_stride, self.col_stride)
    }

    /// The address of element `(0, 0)`.
    #[cfg(feature = "openblas")]
    pub fn data_ptr(&self) -> *const f32 {
        self.data.as_ptr()
    }

    /// Whether every element the view addresses lies inside its slice.
    fn in_bounds(&self) -> bool {
        self.rows == 0
            || self.cols == 0
            || (self.rows - 1) * self.row_stride + (self.cols - 1) * self.col_stride < self.data.len()
    }
}

/// One product of [`gemm_many`]: `a · b`, starting from `init` (a row of `b.cols` values
/// repeated down the output, such as a bias) when given, else from zero.
pub type Product<'a> = (MatRef<'a>, MatRef<'a>, Option<&'a [f32]>);

/// Independent products at once, each returned as a new row-major `[a.rows, b.cols]` buffer.
///
/// Each large product is cut into one block per pool thread, along the rows of `a` or the
/// columns of `b`, whichever operand is larger (every block packs all of the other one), and
/// all the blocks of all the products run as single-threaded GEMMs in one parallel loop,
/// interleaved (block 0 of each product, then block 1, ...) so that each thread gets a share
/// of every product. Why: two threads splitting each product in turn wait for each other at
/// every product's end; one loop over the blocks of all products waits once; and `dW = xᵀ g`
/// of the LM head cut by rows made both threads pack all of the `[b·t, vocab]` gradient
/// (measurements: docs/performance.md, "Products at once, cut along the larger operand").
pub fn gemm_many(products: &[Product]) -> Vec<Vec<f32>> {
    let threads = rayon::current_num_threads();
    let mut outs: Vec<Vec<f32>> = products.iter().map(|&(a, b, init)| initial(a, b, init)).collect();
    let mut per_product = Vec::with_capacity(products.len());
    for (&(a, b, init), out) in products.iter().zip(&mut outs) {
        let origin = out.as_mut_ptr() as usize; // element (0, 0); capacity m·n (`initial`)
        per_product.push(cut(a, b, origin, init.is_some(), threads).into_iter());
    }
    let blocks = interleaved(per_product);
    // SAFETY: the blocks of one output are disjoint rectangles that together cover its m × n
    // values (rows or columns cut into ranges), inside its capacity; each output is a Vec
    // owned here and not touched until the loop ends; initialised values (`init`) are there
    // when accumulating. The views were checked against their slices by `check`.
    blocks.into_par_iter().for_each(|blk| unsafe {
        product(blk.a, blk.b, blk.out as *mut f32, blk.out_row_stride, blk.accumulate)
    });
    for ((a, b, init), out) in products.iter().zip(&mut outs) {
        if init.is_none() {
            let len = a.rows * b.cols;
            if a.cols == 0 {
                out.resize(len, 0.0);
            }
            // SAFETY: the blocks above wrote every value of this output (k > 0), or, with
            // k = 0, `resize` just filled it: all `len` values are initialised.
            unsafe { out.set_len(len) };
        }
    }
    outs
}

/// Block 0 of every product, then block 1 of every product, and so on. Why: rayon hands the
/// first half of the list to one thread and the second half to the other; in product order
/// one thread got all of `dx = g Wᵀ` and the other all of `dW = xᵀ g`, whose transposed
/// operand costs more to pack (the worker packed twice as many samples as the step's thread).
fn interleaved<T>(mut lists: Vec<std::vec::IntoIter<T>>) -> Vec<T> {
    let total = lists.iter().map(|l| l.len()).sum();
    let mut out = Vec::with_capacity(total);
    while out.len() < total {
        out.extend(lists.iter_mut().filter_map(Iterator::next));
    }
    out
}

/// The output buffer of `a · b` after checking the product: `init` repeated down the rows, or
/// empty with capacity for every value.
fn initial(a: MatRef, b: MatRef, init: Option<&[f32]>) -> Vec<f32> {
    let (m, _, n) = check(&a, &b, a.rows * b.cols, b.cols);
    match init {
        Some(row) => {
            assert_eq!(row.len(), n, "gemm_many: an initial row of {} values for [{m}, {n}]", row.len());
            row.repeat(m)
        }
        None => Vec::with_capacity(m * n),
    }
}

/// `a · b` into the row-major output at address `origin` as `parts` blocks (one when the
/// product is small, none when it is empty), cut along the rows of `a` or the columns of
/// `b`: each block packs all of the operand that is not cut, so the larger one is cut.
fn cut<'a>(a: MatRef<'a>, b: MatRef<'a>, origin: usize, accumulate: bool, parts: usize) -> Vec<Block<'a>> {
    let (m, k, n) = (a.rows, a.cols, b.cols);
    if m * n == 0 || k == 0 {
        return Vec::new();
    }
    let parts = if split(m, k, n) { parts } else { 1 };
    let block = |a, b, offset: usize| Block {
        a,
        b,
        out: origin + offset * size_of::<f32>(),
        out_row_stride: n,
        accumulate,
    };
    if a.rows * a.cols >= b.rows * b.cols {
        let rows = m.div_ceil(parts);
        (0..m).step_by(rows).map(|r0| block(a.sub(r0..(r0 + rows).min(m), 0..k), b, r0 * n)).collect()
    } else {
        let cols = n.div_ceil(parts);
        (0..n).step_by(cols).map(|c0| block(a, b.sub(0..k, c0..(c0 + cols).min(n)), c0)).collect()
    }
}

/// One single-threaded piece of a [`gemm_many`] product: `a · b` written at address `out`
/// (a plain address, so that blocks may cross threads) with rows `out_row_stride` apart.
struct Block<'a> {
    a: MatRef<'a>,
    b: MatRef<'a>,
    out: usize,
    out_row_stride: usize,
    accumulate: bool,
}

/// `out = a · b` (`+=` when `accumulate`) on the calling thread, into the first `a.rows` rows
/// of `out` laid out with `out_row_stride` values per row (only the first `b.cols` of each row
/// are written).
pub fn gemm_into_strided(a: MatRef, b: MatRef, out: &mut [f32], out_row_stride: usize, accumulate: bool) {
    check(&a, &b, out.len(), out_row_stride);
    strided(a, b, out, out_row_stride, accumulate);
}

/// Whether `m·n·k` multiply-adds are worth cutting into one block per pool thread.
fn split(m: usize, k: usize, n: usize) -> bool {
    m * n * k >= SPLIT_MIN_MACS
}

/// `(m, k, n)` after checking that `a · b` fits an output of `out_len` values with rows
/// `out_row_stride` apart and that both views lie inside their slices.
fn check(a: &MatRef, b: &MatRef, out_len: usize, out_row_stride: usize) -> (usize, usize, usize) {
    let (m, k, n) = (a.rows, a.cols, b.cols);
    assert_eq!(b.rows, k, "gemm: [{m}, {k}] · [{}, {n}]", b.rows);
    assert!(
        n <= out_row_stride && (m == 0 || n == 0 || (m - 1) * out_row_stride + n <= out_len),
        "gemm: output of {out_len} values (rows {out_row_stride} apart) for [{m}, {n}]"
    );
    assert!(a.in_bounds() && b.in_bounds(), "gemm: a view reaches past its slice");
    (m, k, n)
}

/// The checked product into an initialised slice (see [`check`]).
fn strided(a: MatRef, b: MatRef, out: &mut [f32], out_row_stride: usize, accumulate: bool) {
    let (m, k, n) = (a.rows, a.cols, b.cols);
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            out.chunks_mut(out_row_stride).take(m).for_each(|row| row[..n].fill(0.0));
        }
        return;
    }
    // SAFETY: `out` is an exclusive borrow whose elements i·out_row_stride + j (i < m, j < n)
    // lie inside it (`check`), initialised, so it may be read when accumulating.
    unsafe { product(a, b, out.as_mut_ptr(), out_row_stride, accumulate) }
}

/// `gemm::gemm` on the views (both checked by [`check`], `m, n, k > 0`), on the calling
/// thread (the callers split the work over the pool).
///
/// # Safety
/// `out` must be valid for writes (and, with `accumulate`, reads of initialised values) of
/// the elements `i·out_row_stride + j` for `i < a.rows`, `j < b.cols`, and must not overlap
/// the slices of `a` or `b` (guaranteed when it comes from an exclusive borrow or fresh
/// capacity, as `a` and `b` are shared borrows).
unsafe fn product(a: MatRef, b: MatRef, out: *mut f32, out_row_stride: usize, accumulate: bool) {
    // SAFETY: the same contract as this function's.
    #[cfg(feature = "openblas")]
    if unsafe { super::openblas::product(a, b, out, out_row_stride, accumulate) } {
        return;
    }
    let stride = |s: usize| s as isize; // slice lengths fit in isize
    // SAFETY: the output as the caller guarantees; `a` and `b` address only elements inside
    // their slices (`in_bounds`, non-negative strides).
    unsafe {
        ::gemm::gemm(
            a.rows,
            b.cols,
            a.cols,
            out,
            1,
            stride(out_row_stride),
            accumulate,
            a.data.as_ptr(),
            stride(a.col_stride),
            stride(a.row_stride),
            b.data.as_ptr(),
            stride(b.col_stride),
            stride(b.row_stride),
            1.0,
            1.0,
            false,
            false,
            false,
            ::gemm::Parallelism::None,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The textbook triple loop.
    fn naive(a: MatRef, b: MatRef) -> Vec<f32> {
        let at = |m: &MatRef, i: usize, j: usize| m.data[i * m.row_stride + j * m.col_stride];
        let mut out = vec![0.0; a.rows * b.cols];
        for i in 0..a.rows {
            for j in 0..b.cols {
                out[i * b.cols + j] = (0..a.cols).map(|p| at(&a, i, p) * at(&b, p, j)).sum();
            }
        }
        out
    }

    /// One product through [`gemm_many`].
    fn gemm(a: MatRef, b: MatRef) -> Vec<f32> {
        gemm_many(&[(a, b, None)]).remove(0)
    }

    fn values(len: usize, k: usize) -> Vec<f32> {
        (0..len).map(|i| ((i * k) % 97) as f32 / 30.0 - 1.5).collect()
    }

    fn close(x: &[f32], y: &[f32]) {
        assert_eq!(x.len(), y.len());
        let worst = x.iter().zip(y).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
        assert!(worst < 1e-3, "max |diff| {worst}");
    }

    #[test]
    fn plain_and_transposed_views_match_the_triple_loop() {
        // Small (one thread) and large enough for the rayon split.
        for (m, k, n) in [(5, 7, 3), (300, 200, 250)] {
            let (a, b) = (values(m * k, 7), values(k * n, 11));
            let (at, bt) = (values(k * m, 7), values(n * k, 11)); // stored transposed
            let a_ = MatRef::row_major(&a, m, k);
            let b_ = MatRef::row_major(&b, k, n);
            close(&gemm(a_, b_), &naive(a_, b_));
            let a_t = MatRef::row_major(&at, k, m).t();
            let b_t = MatRef::row_major(&bt, n, k).t();
            close(&gemm(a_t, b_t), &naive(a_t, b_t));
        }
    }

    #[test]
    fn products_at_once_match_the_triple_loop() {
        let (x, g) = (values(300 * 200, 7), values(300 * 250, 11));
        let x = MatRef::row_major(&x, 300, 200);
        let g = MatRef::row_major(&g, 300, 250);
        let bias = values(250, 3);
        let [xt_g, gt_x, x_g] =
            gemm_many(&[(x.t(), g, None), (g.t(), x, None), (x.t(), g, Some(&bias))]).try_into().unwrap();
        close(&xt_g, &naive(x.t(), g));
        close(&gt_x, &naive(g.t(), x));
        let with_bias: Vec<f32> =
            naive(x.t(), g).iter().enumerate().map(|(i, v)| v + bias[i % 250]).collect();
        close(&x_g, &with_bias);
        let (small, empty) = (values(6, 5), Vec::new());
        let [s, e] = gemm_many(&[
            (MatRef::row_major(&small, 2, 3), MatRef::row_major(&small, 3, 2), None),
            (MatRef::row_major(&empty, 2, 0), MatRef::row_major(&empty, 0, 3), None),
        ])
        .try_into()
        .unwrap();
        close(&s, &naive(MatRef::row_major(&small, 2, 3), MatRef::row_major(&small, 3, 2)));
        assert_eq!(e, vec![0.0; 6]);
    }

    #[test]
    fn an_initial_row_is_added_and_the_strided_form_accumulates() {
        let (a, b) = (values(12, 3), values(20, 5));
        let (a, b) = (MatRef::row_major(&a, 3, 4), MatRef::row_major(&b, 4, 5));
        let init = [1.0, 2.0, 3.0, 4.0, 5.0];
        let want: Vec<f32> = naive(a, b).iter().enumerate().map(|(i, v)| v + init[i % 5]).collect();
        close(&gemm_many(&[(a, b, Some(&init))]).remove(0), &want);
        let mut out: Vec<f32> = init.repeat(3);
        gemm_into_strided(a, b, &mut out, 5, true);
        close(&out, &want);
    }

    #[test]
    #[should_panic(expected = "gemm: [2, 3]")]
    fn mismatched_inner_dimensions_are_refused() {
        let (a, b) = (vec![0.0; 6], vec![0.0; 8]);
        gemm(MatRef::row_major(&a, 2, 3), MatRef::row_major(&b, 4, 2));
    }
}
