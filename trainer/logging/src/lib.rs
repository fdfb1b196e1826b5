//! Run logging: TensorBoard event files (own writer: `prost` + TFRecord framing with masked
//! crc32c, and a reader that checks them back), `metrics.jsonl`, and stderr progress.
//! `RunLogger` is the one object the training loop talks to.

mod event_reader;
mod event_writer;
mod jsonl;
mod progress;
mod proto;
mod record;
mod run_logger;

pub use event_reader::{EventLog, EventReadError, event_files, read_event_file};
pub use event_writer::EventWriter;
pub use jsonl::{METRICS_JSONL, MetricsJsonl, read_metrics_jsonl};
pub use progress::{Progress, eta, format_duration, format_line, format_metrics};
pub use record::{RecordError, masked_crc32c, read_records, write_record};
pub use run_logger::RunLogger;
