//! A reader of our own for event files: parses the records, checks every crc and returns
//! the scalars and texts (used by tests; real TensorBoard is checked by
//! `scripts/check_tensorboard.py`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use prost::Message;

use super::proto::{DT_STRING, Event, Value, What};
use super::record::{RecordError, read_records};

/// What an event file holds, by tag.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EventLog {
    /// `file_version` of the first record (`"brain.Event:2"`).
    pub file_version: Option<String>,
    /// Tag → `(step, value)` in file order.
    pub scalars: BTreeMap<String, Vec<(i64, f32)>>,
    /// Tag → `(step, text)` for text-plugin summaries.
    pub texts: BTreeMap<String, Vec<(i64, String)>>,
    /// The file ended inside a record (its writer was killed mid-write).
    pub truncated: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum EventReadError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    Record {
        path: PathBuf,
        #[source]
        source: RecordError,
    },
    #[error("{path}: record {index} is not an Event: {message}")]
    Decode { path: PathBuf, index: usize, message: String },
}

/// Reads one event file.
pub fn read_event_file(path: &Path) -> Result<EventLog, EventReadError> {
    let bytes =
        std::fs::read(path).map_err(|source| EventReadError::Io { path: path.to_path_buf(), source })?;
    let (records, truncated) =
        read_records(&bytes).map_err(|source| EventReadError::Record { path: path.to_path_buf(), source })?;
    let mut log = EventLog { truncated, ..EventLog::default() };
    for (index, data) in records.into_iter().enumerate() {
        let event = Event::decode(data).map_err(|e| EventReadError::Decode {
            path: path.to_path_buf(),
            index,
            message: e.to_string(),
        })?;
        match event.what {
            Some(What::FileVersion(v)) => log.file_version = Some(v),
            Some(What::Summary(s)) => {
                for v in s.value {
                    match v.value {
                        Some(Value::SimpleValue(x)) => {
                            log.scalars.entry(v.tag).or_default().push((event.step, x));
                        }
                        Some(Value::Tensor(t)) if t.dtype == DT_STRING => {
                            let text = t
                                .string_val
                                .iter()
                                .map(|b| String::from_utf8_lossy(b).into_owned())
                                .collect::<Vec<_>>()
                                .join("\n");
                            log.texts.entry(v.tag).or_default().push((event.step, text));
                        }
                        _ => {}
                    }
                }
            }
            None => {}
        }
    }
    Ok(log)
}

/// Every `*tfevents*` file of a folder, oldest name first.
pub fn event_files(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.file_name().is_some_and(|n| n.to_string_lossy().contains("tfevents")))
        .collect();
    files.sort();
    Ok(files)
}
