//! The training loss split per source (`loss/<name>`): each source's share, computed by the
//! step from per-token losses, equals a forward pass of the same batch scored on that
//! source's tokens only, and the token-weighted shares add up to the step's loss.

mod train_support;

use mm1_data::Batch;
use mm1_trainer::optim::{AdamWSettings, GroupedAdamW};
use mm1_trainer::step::{batch_to_tensors, forward_batch, train_step};
use train_support::*;

/// The same batch with only `source`'s targets scored.
fn only_source(batch: &Batch, source: u32) -> Batch {
    let mut b = batch.clone();
    for (m, &s) in b.loss_mask.iter_mut().zip(&batch.source_ids) {
        *m &= s == source;
    }
    b
}

#[test]
fn per_source_loss_matches_a_forward_on_each_source_alone() {
    let tmp = tempfile::tempdir().unwrap();
    let (_, model, mut loader, device) = tiny_in_memory(tmp.path(), 3);
    let mut optim = GroupedAdamW::new(&model, &AdamWSettings::default()).unwrap();
    let batches: Vec<Batch> = (0..2).map(|_| loader.next_batch().unwrap()).collect();

    let (_, report) = train_step(model.clone(), &mut optim, &batches, 1e-3, &device).unwrap();

    let names: Vec<&str> = report.source_loss.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["caption", "interleaved", "text"]);
    let mut weighted = 0.0;
    let mut seen = 0;
    for (i, src) in report.source_loss.iter().enumerate() {
        let tokens: usize = batches.iter().map(|b| b.loss_tokens_per_source()[i]).sum();
        assert_eq!(src.tokens, tokens, "{}: scored tokens", src.name);
        let mut nll = 0.0;
        for b in &batches {
            let masked = only_source(b, i as u32);
            let out = forward_batch(&model, batch_to_tensors(&masked, &device).unwrap()).unwrap();
            nll += out.ce_sum().into_scalar::<f32>() as f64;
        }
        assert!(
            (src.nll_sum - nll).abs() <= 1e-4 * nll.abs().max(1.0),
            "{}: {} vs {nll}",
            src.name,
            src.nll_sum
        );
        weighted += src.nll_sum;
        seen += src.tokens;
    }
    assert!(report.source_loss.iter().filter(|s| s.tokens > 0).count() >= 2, "{:?}", report.source_loss);
    assert_eq!(seen, report.loss_tokens);
    let mean = weighted / seen as f64;
    assert!(
        (mean - report.loss).abs() <= 1e-5 * report.loss,
        "shares give {mean}, step loss {}",
        report.loss
    );
}
