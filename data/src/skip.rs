//! Bad input is skipped, never fatal alone: each skip is logged with shard and key and counted
//! per reason; `Loader` turns too many skips into `DataError::TooManySkipped`.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

/// Why a sample (or the rest of a shard) was skipped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SkipReason {
    /// Image bytes that do not decode (corrupt JPEG/PNG/WebP, unknown format).
    CorruptImage,
    /// Image header announces more than `data.max_image_pixels` pixels.
    ImageTooLarge,
    /// Caption sample without an image member, interleaved image entry naming no member.
    MissingImage,
    /// Caption sample without `txt`, text sample without `txt`/`json.text`.
    MissingText,
    /// A text member or JSON string that is not UTF-8.
    InvalidUtf8,
    /// JSON that does not parse or does not follow the kind's schema.
    MalformedJson,
    /// A document with no text and no image after parsing.
    Empty,
    /// The tar ended in the middle of a member (rest of the shard skipped).
    TruncatedShard,
    /// A shard file that cannot be opened / a `pipe:` command that fails.
    MissingShard,
    /// A shard whose reader made no progress for `data.read_timeout_s` (rest of the shard skipped).
    StalledShard,
    /// A decoder, the resizer or the tokenizer panicked on this sample (a bug in that library or
    /// ours, caught so that one sample cannot end the run; the message is in the detail).
    Panicked,
}

impl SkipReason {
    pub fn name(self) -> &'static str {
        match self {
            SkipReason::CorruptImage => "corrupt_image",
            SkipReason::ImageTooLarge => "image_too_large",
            SkipReason::MissingImage => "missing_image",
            SkipReason::MissingText => "missing_text",
            SkipReason::InvalidUtf8 => "invalid_utf8",
            SkipReason::MalformedJson => "malformed_json",
            SkipReason::Empty => "empty",
            SkipReason::TruncatedShard => "truncated_shard",
            SkipReason::MissingShard => "missing_shard",
            SkipReason::StalledShard => "stalled_shard",
            SkipReason::Panicked => "panicked",
        }
    }
}

/// The message of a caught panic payload (`panic!` gives `&str` or `String`).
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "panic with a non-string payload".to_string())
}

/// Runs one sample's work; a panic inside it becomes the `Skip` that `on_panic` makes of the
/// panic's message, so that one bad sample cannot end the process.
pub fn guard<T>(
    work: impl FnOnce() -> Result<T, Skip>,
    on_panic: impl FnOnce(String) -> Skip,
) -> Result<T, Skip> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(work))
        .unwrap_or_else(|payload| Err(on_panic(panic_message(payload.as_ref()))))
}

/// A skipped sample: reason plus where it was.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skip {
    pub reason: SkipReason,
    pub shard: String,
    pub key: String,
    pub detail: String,
}

impl fmt::Display for Skip {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "skipped {} in shard {} key {:?}: {}",
            self.reason.name(),
            self.shard,
            self.key,
            self.detail
        )
    }
}

impl Skip {
    /// Logs the skip to stderr (the crate has no logging dependency; the trainer captures stderr).
    pub fn warn(&self) {
        eprintln!("warning: mm1-data: {self}");
    }
}

/// Counts per reason (sorted map so serialisation is stable).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SkipCounts(pub BTreeMap<String, u64>);

impl SkipCounts {
    pub fn add(&mut self, reason: SkipReason) {
        *self.0.entry(reason.name().to_string()).or_default() += 1;
    }
    pub fn get(&self, reason: SkipReason) -> u64 {
        self.0.get(reason.name()).copied().unwrap_or(0)
    }
    pub fn total(&self) -> u64 {
        self.0.values().sum()
    }
}

impl fmt::Display for SkipCounts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self.0.iter().map(|(k, v)| format!("{k}={v}")).collect();
        write!(f, "{}", if parts.is_empty() { "none".into() } else { parts.join(", ") })
    }
}
