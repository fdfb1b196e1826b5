//! The LM head on the scored positions only (`forward_batch`) against the head on every
//! position followed by the masked cross-entropy (`Mm1Model::forward` + `masked_nll`): the
//! same per-token losses and the same gradient for every parameter.

mod train_support;

use burn::optim::GradientsParams;
use mm1_trainer::optim::list_params;
use mm1_trainer::step::{batch_to_tensors, forward_batch, masked_nll};
use train_support::*;

fn assert_close(what: &str, a: &[f32], b: &[f32]) {
    assert_eq!(a.len(), b.len(), "{what}: lengths");
    let scale = b.iter().fold(0f32, |m, x| m.max(x.abs())).max(1e-6);
    let worst = a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0f32, f32::max);
    assert!(worst <= 1e-4 * scale, "{what}: max |diff| {worst} (max |ref| {scale})");
}

#[test]
fn scored_rows_match_the_full_head_with_gradients() {
    let tmp = tempfile::tempdir().unwrap();
    let (_, model, mut loader, device) = tiny_in_memory(tmp.path(), 5);
    let batch = loader.next_batch().unwrap();
    let scored = batch.loss_mask.iter().filter(|&&m| m).count();
    assert!(scored > 0 && scored < batch.loss_mask.len(), "{scored} scored positions");

    let tensors = batch_to_tensors(&batch, &device).unwrap();
    let ours = forward_batch(&model, tensors.clone()).unwrap().nll; // [b, t], head on `scored` rows
    let full = model.forward(tensors.input.clone()).unwrap().logits; // [b, t, vocab]
    let theirs = masked_nll(full, tensors.targets.clone(), tensors.loss_mask.clone());
    assert_close("per-token NLL", &values(ours.clone()), &values(theirs.clone()));

    let g_ours = GradientsParams::from_grads(ours.sum().backward(), &model);
    let g_theirs = GradientsParams::from_grads(theirs.sum().backward(), &model);
    let mut compared = 0;
    for p in list_params(&model) {
        let (a, b) = (grad_of(&g_ours, &p), grad_of(&g_theirs, &p));
        assert_eq!(a.is_some(), b.is_some(), "{}: a gradient on one path only", p.path);
        if let (Some(a), Some(b)) = (a, b) {
            assert_close(&format!("d {}", p.path), &a, &b);
            compared += 1;
        }
    }
    assert!(compared > 10, "{compared} parameters compared");

    // A batch with no scored position takes the full head: zero loss, no empty tensors.
    let mut none = batch.clone();
    none.loss_mask.fill(false);
    let tensors = batch_to_tensors(&none, &device).unwrap();
    assert!(tensors.scored.is_none());
    assert_eq!(forward_batch(&model, tensors).unwrap().ce_sum().into_scalar::<f32>(), 0.0);
}
