//! `metrics.jsonl`: one JSON object per logging step, `{"step": 10, "loss": 5.31, ...}`.
//! Scripts and sweeps read it (`step` and `loss` are always present when the trainer logs).

use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

pub const METRICS_JSONL: &str = "metrics.jsonl";

/// Appends lines to `<run_dir>/metrics.jsonl`.
pub struct MetricsJsonl {
    out: BufWriter<File>,
    path: PathBuf,
}

impl MetricsJsonl {
    /// Opens the file for appending. When resuming from `resume_step`, lines of later steps
    /// (logged after that checkpoint by the run that died) and a torn last line are dropped
    /// first, so the file reads as one uninterrupted run.
    pub fn open(run_dir: &Path, resume_step: Option<u64>) -> io::Result<Self> {
        std::fs::create_dir_all(run_dir)?;
        let path = run_dir.join(METRICS_JSONL);
        if let Some(step) = resume_step
            && path.exists()
        {
            truncate_after(&path, step)?;
        }
        let file = OpenOptions::new().create(true).append(true).open(&path)?;
        Ok(Self { out: BufWriter::new(file), path })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes `{"step": step, name: value, ...}` in the given order and flushes the line.
    /// Non-finite values are written as `null` (JSON has no NaN).
    pub fn write<'a>(
        &mut self,
        step: u64,
        values: impl IntoIterator<Item = (&'a str, f64)>,
    ) -> io::Result<()> {
        // Written by hand so keys keep the given order (`step` first) without
        // serde_json's `preserve_order` feature.
        let mut line = format!("{{\"step\":{step}");
        for (k, v) in values {
            line.push(',');
            line.push_str(&Value::from(k).to_string());
            line.push(':');
            line.push_str(&Value::from(v).to_string());
        }
        line.push('}');
        self.out.write_all(line.as_bytes())?;
        self.out.write_all(b"\n")?;
        self.out.flush()
    }
}

/// Keeps the complete lines whose `step` is at most `step`.
fn truncate_after(path: &Path, step: u64) -> io::Result<()> {
    let mut kept = String::new();
    for line in BufReader::new(File::open(path)?).lines() {
        let line = line?;
        let keep = serde_json::from_str::<Value>(&line)
            .ok()
            .and_then(|v| v.get("step").and_then(Value::as_u64))
            .is_some_and(|s| s <= step);
        if keep {
            kept.push_str(&line);
            kept.push('\n');
        }
    }
    let tmp = path.with_extension("jsonl.tmp");
    std::fs::write(&tmp, kept)?;
    std::fs::rename(tmp, path)
}

/// Reads a `metrics.jsonl` back: one map per line (tests, sweeps, reports).
pub fn read_metrics_jsonl(path: &Path) -> io::Result<Vec<Map<String, Value>>> {
    let mut out = Vec::new();
    for (i, line) in BufReader::new(File::open(path)?).lines().enumerate() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<Value>(&line) {
            Ok(Value::Object(m)) => out.push(m),
            _ => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("{}:{}: not a JSON object", path.display(), i + 1),
                ));
            }
        }
    }
    Ok(out)
}
