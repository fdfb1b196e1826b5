//! TensorBoard event files written by hand: `prost` messages in TFRecord framing
//! (instead of `tensorboard-rs`, whose protobuf 2.x fails `cargo audit`).

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use prost::Message;

use super::proto::{
    DATA_CLASS_TENSOR, DT_STRING, Event, PluginData, Summary, SummaryMetadata, SummaryValue, TensorProto,
    TensorShapeProto, Value, What,
};
use super::record::write_record;

/// Appends events to `events.out.tfevents.<unix seconds>.<host>` in a run folder.
pub struct EventWriter {
    out: BufWriter<File>,
    path: PathBuf,
}

fn now() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0)
}

/// Host name as it may appear in a file name.
fn host() -> String {
    let h = gethostname::gethostname().to_string_lossy().into_owned();
    let h: String =
        h.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '.' { c } else { '_' }).collect();
    if h.is_empty() { "localhost".into() } else { h }
}

impl EventWriter {
    /// Creates a new event file in `dir` (never reuses one: a resumed run adds a file, and
    /// TensorBoard merges every `tfevents` file of a folder) and writes the version record.
    pub fn create(dir: &Path) -> io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let base = format!("events.out.tfevents.{:010}.{}", now() as u64, host());
        let mut path = dir.join(&base);
        let mut n = 1;
        while path.exists() {
            path = dir.join(format!("{base}.{n}"));
            n += 1;
        }
        let mut w = Self { out: BufWriter::new(File::create_new(&path)?), path };
        w.write_event(0, What::FileVersion("brain.Event:2".into()))?;
        w.flush()?;
        Ok(w)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn write_event(&mut self, step: u64, what: What) -> io::Result<()> {
        let event = Event { wall_time: now(), step: step as i64, what: Some(what) };
        write_record(&mut self.out, &event.encode_to_vec())
    }

    /// One event holding several scalars (TensorBoard's `simple_value`, stored as f32).
    pub fn scalars<'a>(
        &mut self,
        step: u64,
        values: impl IntoIterator<Item = (&'a str, f64)>,
    ) -> io::Result<()> {
        let value = values
            .into_iter()
            .map(|(tag, v)| SummaryValue {
                tag: tag.to_string(),
                metadata: None,
                value: Some(Value::SimpleValue(v as f32)),
            })
            .collect();
        self.write_event(step, What::Summary(Summary { value }))
    }

    pub fn scalar(&mut self, tag: &str, step: u64, value: f64) -> io::Result<()> {
        self.scalars(step, [(tag, value)])
    }

    /// A text summary (TensorBoard's text plugin renders it as markdown): a rank-0
    /// `DT_STRING` tensor with plugin `"text"`, as `tf.summary.text` writes it.
    pub fn text(&mut self, tag: &str, step: u64, text: &str) -> io::Result<()> {
        let value = SummaryValue {
            tag: tag.to_string(),
            metadata: Some(SummaryMetadata {
                plugin_data: Some(PluginData { plugin_name: "text".into(), content: Vec::new() }),
                data_class: DATA_CLASS_TENSOR,
            }),
            value: Some(Value::Tensor(TensorProto {
                dtype: DT_STRING,
                tensor_shape: Some(TensorShapeProto { dim: Vec::new() }),
                string_val: vec![text.as_bytes().to_vec()],
            })),
        };
        self.write_event(step, What::Summary(Summary { value: vec![value] }))
    }

    /// Pushes buffered records to the file (call once per logging step).
    pub fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

impl Drop for EventWriter {
    fn drop(&mut self) {
        let _ = self.out.flush();
    }
}
