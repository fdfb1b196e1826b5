//! No single bad sample may end the process (issue #19): 10 000 random and mutated tar, JSON, text
//! and image byte strings go through the training path (`mm1_data::fuzz`); every case must come
//! back as counted samples and skips, and the cases must reach every stage (tar reader, JSON,
//! every image decoder, the tokenizer), or the test proves nothing. `mm1-data fuzz` runs more.

use std::sync::Arc;

use mm1_data::fuzz::{default_ctx, run_fuzz};
use mm1_data::sample::ProcessCtx;
use mm1_data::skip::{Skip, SkipReason, guard};
use mm1_data::{DataConfig, TextTokenizer};

fn tokenizer() -> Arc<TextTokenizer> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tok.json");
    let d = DataConfig::default();
    let specials = [d.image_token.as_str(), d.end_of_chunk_token.as_str(), d.pad_token.as_str()];
    let texts = ["a red square on a blue field", "before between after", "plain text, été and more"];
    mm1_data::tokenizer::train_bpe(texts.iter(), 300, &specials, &path).unwrap();
    Arc::new(TextTokenizer::from_file(&path, specials).unwrap())
}

#[test]
fn ten_thousand_mutated_shards_end_as_counted_samples_and_skips() {
    let ctx = ProcessCtx { tokenizer: Some(tokenizer()), ..default_ctx() };
    let report = run_fuzz(10_000, 19, &ctx);
    eprintln!("{}", serde_json::to_string(&report).unwrap());
    assert_eq!(report.cases, 10_000);
    let s = &report.skipped;
    assert!(report.good_samples > 1000, "valid samples must come through: {report:?}");
    assert!(report.unreadable_shards + s.get(SkipReason::TruncatedShard) > 100, "tar reader not reached");
    assert!(s.get(SkipReason::CorruptImage) > 100, "image decoders not reached: {report:?}");
    assert!(s.get(SkipReason::MalformedJson) > 30, "JSON parser not reached: {report:?}");
    assert!(s.get(SkipReason::InvalidUtf8) > 10, "text decoding not reached: {report:?}");
}

#[test]
fn a_panic_in_a_sample_becomes_a_panicked_skip_naming_shard_and_key() {
    let skip = |detail: String| Skip {
        reason: SkipReason::Panicked,
        shard: "shard-000.tar".into(),
        key: "s042".into(),
        detail,
    };
    let r: Result<(), Skip> = guard(|| panic!("decoder bug in {}", "s042"), skip);
    let e = r.unwrap_err();
    assert_eq!(e.reason, SkipReason::Panicked);
    assert_eq!(e.detail, "decoder bug in s042");
    assert!(e.to_string().contains("shard shard-000.tar key \"s042\""), "{e}");
    let ok: Result<u8, Skip> = guard(|| Ok(7), skip);
    assert_eq!(ok.unwrap(), 7);
}
