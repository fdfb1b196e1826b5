//! `mm1-data inspect`: reads every sample of a shard spec exactly as training would (every image
//! decoded and resized, every text parsed and, with a tokenizer, tokenised) and reports counts.

use std::collections::BTreeMap;

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::config::SampleKind;
use crate::error::{DataError, Result};
use crate::sample::{ProcessCtx, Unit, infer_kind, process};
use crate::shards::{RawSample, ShardItem, ShardOpener, expand_spec};
use crate::skip::{Skip, SkipCounts, SkipReason};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InspectReport {
    pub shards: usize,
    /// Good samples.
    pub samples: u64,
    /// Images in good samples.
    pub images: u64,
    /// Text tokens in good samples (0 without a tokenizer).
    pub tokens: u64,
    pub by_kind: BTreeMap<String, u64>,
    pub skipped: SkipCounts,
    /// SHA-256 over the sorted `__key__`s of every sample read (good and skipped), one per line.
    pub keys_sha256: String,
}

/// Reads all shards of `spec` in order on `pool`; `kind = None` infers each sample's kind.
pub fn inspect(
    spec: &str,
    kind: Option<SampleKind>,
    ctx: &ProcessCtx,
    opener: &dyn ShardOpener,
    pool: &rayon::ThreadPool,
) -> Result<InspectReport> {
    let urls = expand_spec(spec)?;
    let mut report = InspectReport {
        shards: urls.len(),
        samples: 0,
        images: 0,
        tokens: 0,
        by_kind: BTreeMap::new(),
        skipped: SkipCounts::default(),
        keys_sha256: String::new(),
    };
    let mut keys = Vec::new();
    let skip = |report: &mut InspectReport, s: Skip| {
        s.warn();
        report.skipped.add(s.reason);
    };
    for url in &urls {
        let it = match opener.open(url) {
            Ok(it) => it,
            Err(e) => {
                skip(
                    &mut report,
                    Skip {
                        reason: SkipReason::MissingShard,
                        shard: url.clone(),
                        key: String::new(),
                        detail: e,
                    },
                );
                continue;
            }
        };
        let mut raws: Vec<RawSample> = Vec::new();
        let flush = |report: &mut InspectReport, raws: &mut Vec<RawSample>| {
            let results: Vec<_> = pool.install(|| {
                raws.par_iter()
                    .map(|raw| {
                        let k = kind.unwrap_or_else(|| infer_kind(raw));
                        process(raw, url, k, ctx)
                    })
                    .collect()
            });
            for r in results {
                match r {
                    Ok(doc) => {
                        report.samples += 1;
                        *report.by_kind.entry(doc.kind.name().to_string()).or_default() += 1;
                        for u in &doc.units {
                            match u {
                                Unit::Image(_) => report.images += 1,
                                Unit::Text(ids) => report.tokens += ids.len() as u64,
                            }
                        }
                    }
                    Err(s) => skip(report, s),
                }
            }
            raws.clear();
        };
        for item in it {
            match item {
                ShardItem::Sample(raw) => {
                    keys.push(raw.key.clone());
                    raws.push(raw);
                    if raws.len() >= 64 {
                        flush(&mut report, &mut raws);
                    }
                }
                ShardItem::Truncated(e) => {
                    flush(&mut report, &mut raws);
                    skip(
                        &mut report,
                        Skip {
                            reason: SkipReason::TruncatedShard,
                            shard: url.clone(),
                            key: String::new(),
                            detail: e,
                        },
                    );
                }
            }
        }
        flush(&mut report, &mut raws);
    }
    if report.samples == 0 && report.skipped.total() == 0 {
        return Err(DataError::Shards(format!("{spec}: no samples in {} shards", urls.len())));
    }
    keys.sort_unstable();
    report.keys_sha256 = crate::assemble::keys_sha256(&keys);
    Ok(report)
}
