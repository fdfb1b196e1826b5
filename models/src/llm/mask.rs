//! Attention masks: causal within a document, nothing across documents of a packed row.

use burn::prelude::*;

/// `true` where attention is forbidden: key after query, or a different segment.
///
/// # Shapes
/// - `q_seg`: `[b, tq]`, `k_seg`: `[b, tk]`; queries sit at absolute positions
///   `tk - tq .. tk` of the key sequence (equal lengths: plain training forward).
/// - output: `[b, 1, tq, tk]`
pub fn segment_causal_mask(q_seg: Tensor<2, Int>, k_seg: Tensor<2, Int>) -> Tensor<4, Bool> {
    let [b, tq] = q_seg.dims();
    let [_, tk] = k_seg.dims();
    let device = q_seg.device();
    // tril_mask is `true` strictly above the (shifted) diagonal: the future keys.
    let future = Tensor::<2, Bool>::tril_mask([tq, tk], (tk - tq) as i64, &device); // [tq, tk]
    let other_doc =
        q_seg.reshape([b, tq, 1]).repeat_dim(2, tk).not_equal(k_seg.reshape([b, 1, tk]).repeat_dim(1, tq)); // [b, tq, tk]
    let mask = other_doc.bool_or(future.unsqueeze_dim::<3>(0).repeat_dim(0, b)); // [b, tq, tk]
    mask.unsqueeze_dim(1) // [b, 1, tq, tk]
}
