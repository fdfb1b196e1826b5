//! Event files: write with our writer, read back with our reader (crc-checked), compare
//! values; framing against hand-made bytes; metrics.jsonl and its resume truncation.

use mm1_config::{LogConfig, ProgressMode};
use mm1_logging::{
    EventWriter, MetricsJsonl, RunLogger, event_files, format_duration, format_line, masked_crc32c,
    read_event_file, read_metrics_jsonl, read_records, write_record,
};
use std::time::Duration;

#[test]
fn masked_crc_matches_tensorflow() {
    // crc32c("123456789") = 0xE3069283 (the CRC-32C check value); TF's mask
    // ((crc >> 15) | (crc << 17)) + 0xa282ead8 (mod 2^32), by hand: 0xC78AB0E5.
    let want: u32 = 0xC78A_B0E5;
    assert_eq!(masked_crc32c(b"123456789"), want);
    // Record layout: 8-byte length, its masked crc, data, data's masked crc.
    let mut buf = Vec::new();
    write_record(&mut buf, b"abc").unwrap();
    assert_eq!(buf.len(), 8 + 4 + 3 + 4);
    assert_eq!(&buf[..8], &3u64.to_le_bytes());
    assert_eq!(&buf[8..12], &masked_crc32c(&3u64.to_le_bytes()).to_le_bytes());
    assert_eq!(&buf[12..15], b"abc");
    assert_eq!(&buf[15..], &masked_crc32c(b"abc").to_le_bytes());
}

#[test]
fn scalars_and_text_read_back() {
    let dir = tempfile::tempdir().unwrap();
    // MM1_TB_OUT=DIR keeps a copy for scripts/check_tensorboard.py (real TensorBoard).
    let keep = std::env::var_os("MM1_TB_OUT").map(std::path::PathBuf::from);
    let mut w = EventWriter::create(keep.as_deref().unwrap_or(dir.path())).unwrap();
    let name = w.path().file_name().unwrap().to_string_lossy().into_owned();
    assert!(name.starts_with("events.out.tfevents."), "{name}");
    let losses: Vec<f64> = (0..50).map(|i| 6.0 * (-0.05 * i as f64).exp() + 0.1).collect();
    for (step, loss) in losses.iter().enumerate() {
        let lr = 1e-3 * (step + 1) as f64 / 50.0;
        w.scalars(step as u64, [("loss", *loss), ("lr", lr), ("loss/caption", loss * 1.1)]).unwrap();
    }
    w.text("config", 0, "[train]\nsteps = 50").unwrap();
    w.flush().unwrap();
    let log = read_event_file(w.path()).unwrap();
    assert_eq!(log.file_version.as_deref(), Some("brain.Event:2"));
    assert!(!log.truncated);
    let loss = &log.scalars["loss"];
    assert_eq!(loss.len(), 50);
    for (i, (step, v)) in loss.iter().enumerate() {
        assert_eq!(*step, i as i64);
        assert_eq!(*v, losses[i] as f32); // stored as f32, bit for bit
    }
    assert_eq!(log.scalars["lr"][49], (49, 1e-3_f32));
    assert_eq!(log.scalars["loss/caption"][0].1, (losses[0] * 1.1) as f32);
    assert_eq!(log.texts["config"], vec![(0, "[train]\nsteps = 50".to_string())]);
    // A second writer in the same folder (a resumed run) never overwrites the first file.
    let first = EventWriter::create(dir.path()).unwrap();
    let second = EventWriter::create(dir.path()).unwrap();
    assert_ne!(first.path(), second.path());
    assert_eq!(event_files(dir.path()).unwrap().len(), 2 + usize::from(keep.is_none()));
}

#[test]
fn corrupt_and_truncated_files() {
    let dir = tempfile::tempdir().unwrap();
    let mut w = EventWriter::create(dir.path()).unwrap();
    for step in 0..5 {
        w.scalar("loss", step, step as f64).unwrap();
    }
    w.flush().unwrap();
    let bytes = std::fs::read(w.path()).unwrap();
    let (records, truncated) = read_records(&bytes).unwrap();
    assert_eq!((records.len(), truncated), (6, false)); // version + 5 scalars
    // Cut inside the last record: the complete ones are kept, the cut is reported.
    let cut = dir.path().join("cut.tfevents");
    std::fs::write(&cut, &bytes[..bytes.len() - 3]).unwrap();
    let log = read_event_file(&cut).unwrap();
    assert!(log.truncated);
    assert_eq!(log.scalars["loss"].len(), 4);
    // A flipped byte in the payload fails the data crc and names the offset.
    let mut bad = bytes.clone();
    let n = bad.len();
    bad[n - 6] ^= 0x40;
    let flipped = dir.path().join("flipped.tfevents");
    std::fs::write(&flipped, &bad).unwrap();
    let err = read_event_file(&flipped).unwrap_err().to_string();
    assert!(err.contains("data crc mismatch") && err.contains("flipped.tfevents"), "{err}");
}

#[test]
fn metrics_jsonl_lines_and_resume() {
    let dir = tempfile::tempdir().unwrap();
    let mut m = MetricsJsonl::open(dir.path(), None).unwrap();
    for step in 1..=6 {
        m.write(step, [("loss", 10.0 - step as f64), ("lr", 0.5)]).unwrap();
    }
    m.write(7, [("loss", f64::NAN)]).unwrap();
    drop(m);
    // A torn last line, as a kill -9 mid-write leaves it.
    let path = dir.path().join("metrics.jsonl");
    let mut text = std::fs::read_to_string(&path).unwrap();
    text.push_str("{\"step\": 8, \"lo");
    std::fs::write(&path, text).unwrap();
    // Resume from the checkpoint at step 4: lines 5.. and the torn line go.
    let mut m = MetricsJsonl::open(dir.path(), Some(4)).unwrap();
    m.write(5, [("loss", 4.5)]).unwrap();
    let rows = read_metrics_jsonl(&path).unwrap();
    let steps: Vec<u64> = rows.iter().map(|r| r["step"].as_u64().unwrap()).collect();
    assert_eq!(steps, [1, 2, 3, 4, 5]);
    assert_eq!(rows[0]["loss"].as_f64(), Some(9.0));
    assert_eq!(rows[4]["loss"].as_f64(), Some(4.5));
    // Key order is the order given: step first, then the metrics.
    let first = std::fs::read_to_string(&path).unwrap().lines().next().unwrap().to_string();
    assert_eq!(first, r#"{"step":1,"loss":9.0,"lr":0.5}"#);
}

#[test]
fn run_logger_writes_every_sink() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = LogConfig { every: 2, tensorboard: true, progress: ProgressMode::Off };
    let mut log = RunLogger::open(dir.path(), &cfg, 0, 10).unwrap();
    log.log_config(0, "[train]\nsteps = 10\n", "abc123").unwrap();
    for step in 1..=10 {
        if log.should_log(step) {
            log.log(step, &[("loss", 1.0 / step as f64), ("tokens_per_s", 100.0)]).unwrap();
        }
    }
    log.finish().unwrap();
    let tb = read_event_file(log.event_file().unwrap()).unwrap();
    let steps: Vec<i64> = tb.scalars["loss"].iter().map(|(s, _)| *s).collect();
    assert_eq!(steps, [2, 4, 6, 8, 10]);
    assert_eq!(tb.scalars["loss"][4].1, 0.1_f32);
    assert!(tb.texts["config"][0].1.contains("    steps = 10") && tb.texts["config"][0].1.contains("abc123"));
    let rows = read_metrics_jsonl(&dir.path().join("metrics.jsonl")).unwrap();
    assert_eq!(rows.len(), 5);
    // Both sinks hold the same values (f32 in TensorBoard).
    for (row, (step, v)) in rows.iter().zip(&tb.scalars["loss"]) {
        assert_eq!(row["step"].as_i64(), Some(*step));
        assert_eq!(row["loss"].as_f64().unwrap() as f32, *v);
    }
}

#[test]
fn plain_progress_lines() {
    let line = format_line(
        10,
        100,
        &[("loss", 5.31234), ("lr", 1e-4), ("tokens_per_s", 1234.4)],
        Some(Duration::from_secs(200)),
    );
    assert_eq!(line, "step 10/100 loss 5.3123 lr 1.00e-4 tok/s 1234 eta 3m20s");
    assert_eq!(format_line(0, 5, &[], None), "step 0/5  eta ?");
    assert_eq!(format_duration(Duration::from_secs(3723)), "1h02m03s");
    assert_eq!(format_duration(Duration::from_secs(45)), "45s");
}

#[test]
fn reads_a_file_written_by_python_tensorboard() {
    // Written by TensorBoard's own EventFileWriter (scripts/make_tensorboard_fixture.py).
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tensorboard/python.tfevents");
    let log = read_event_file(&path).unwrap();
    assert_eq!(log.file_version.as_deref(), Some("brain.Event:2"));
    assert!(!log.truncated);
    let loss = &log.scalars["loss"];
    assert_eq!(loss.len(), 20);
    for (i, (step, v)) in loss.iter().enumerate() {
        let want = (6.0 * (-0.1 * i as f64).exp() + 0.25) as f32;
        assert_eq!(*step, i as i64);
        assert!((v - want).abs() <= 1e-6, "step {i}: {v} vs {want}");
    }
    assert_eq!(log.scalars["lr"][19], (19, 1e-3_f32));
    assert_eq!(log.texts["config"], vec![(0, "[train]\nsteps = 20".to_string())]);
}
