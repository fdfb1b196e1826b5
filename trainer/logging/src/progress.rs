//! Progress on stderr: an indicatif bar with step, loss, throughput and ETA when stderr is a
//! terminal, plain log lines otherwise (batch jobs, CI logs, `tee`).

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

use mm1_config::ProgressMode;

enum Sink {
    Bar(ProgressBar),
    Plain,
    Off,
}

/// Shows training progress; `update` once per logging step.
pub struct Progress {
    sink: Sink,
    total: u64,
    start_step: u64,
    started: Instant,
}

impl Progress {
    /// `start_step`: steps already done (non-zero when resuming), so the ETA only uses
    /// the throughput of this process.
    pub fn new(mode: ProgressMode, start_step: u64, total_steps: u64) -> Self {
        let bar = mode == ProgressMode::Auto && std::io::stderr().is_terminal();
        let sink = if bar {
            let pb = ProgressBar::new(total_steps).with_position(start_step);
            let style =
                ProgressStyle::with_template("{elapsed_precise} [{bar:30}] {pos}/{len} {msg} eta {eta}")
                    .expect("static template")
                    .progress_chars("=> ");
            pb.set_style(style);
            Sink::Bar(pb)
        } else if mode == ProgressMode::Off {
            Sink::Off
        } else {
            Sink::Plain
        };
        Self { sink, total: total_steps, start_step, started: Instant::now() }
    }

    /// Whether the terminal bar is in use.
    pub fn is_bar(&self) -> bool {
        matches!(self.sink, Sink::Bar(_))
    }

    /// Reports `step` (optimizer steps completed) with its metrics.
    pub fn update<'a>(&mut self, step: u64, values: impl IntoIterator<Item = (&'a str, f64)>) {
        let values: Vec<(&str, f64)> = values.into_iter().collect();
        match &self.sink {
            Sink::Bar(pb) => {
                pb.set_position(step);
                pb.set_message(format_metrics(&values));
            }
            Sink::Plain => {
                let eta = eta(
                    self.started.elapsed(),
                    step.saturating_sub(self.start_step),
                    self.total.saturating_sub(step),
                );
                eprintln!("{}", format_line(step, self.total, &values, eta));
            }
            Sink::Off => {}
        }
    }

    /// A message that does not break the bar (eval results, checkpoints, warnings).
    pub fn println(&self, msg: &str) {
        match &self.sink {
            Sink::Bar(pb) => pb.println(msg),
            Sink::Plain => eprintln!("{msg}"),
            Sink::Off => {}
        }
    }

    pub fn finish(&self) {
        if let Sink::Bar(pb) = &self.sink {
            pb.finish();
        }
    }
}

/// Remaining time at the throughput so far (`None` before the first step).
pub fn eta(elapsed: Duration, steps_done: u64, steps_left: u64) -> Option<Duration> {
    (steps_done > 0).then(|| elapsed.mul_f64(steps_left as f64 / steps_done as f64))
}

/// `loss 5.3120 lr 1.00e-4 tok/s 1234 tflops 0.512 mfu 41.0%` from the metrics the line shows
/// (others are in the files).
pub fn format_metrics(values: &[(&str, f64)]) -> String {
    let get = |k: &str| values.iter().find(|(n, _)| *n == k).map(|(_, v)| *v);
    let mut parts = Vec::new();
    if let Some(v) = get("loss") {
        parts.push(format!("loss {v:.4}"));
    }
    if let Some(v) = get("lr") {
        parts.push(format!("lr {v:.2e}"));
    }
    if let Some(v) = get("grad_norm") {
        parts.push(format!("gnorm {v:.3}"));
    }
    if let Some(v) = get("tokens_per_s") {
        parts.push(format!("tok/s {v:.0}"));
    }
    if let Some(v) = get("perf/tflops") {
        parts.push(format!("tflops {v:.3}"));
    }
    if let Some(v) = get("perf/mfu") {
        parts.push(format!("mfu {v:.1}%"));
    }
    parts.join(" ")
}

/// `step 10/1000 loss 5.3120 lr 1.00e-4 tok/s 1234 eta 3m20s`.
pub fn format_line(step: u64, total: u64, values: &[(&str, f64)], eta: Option<Duration>) -> String {
    let eta = eta.map_or_else(|| "?".to_string(), format_duration);
    format!("step {step}/{total} {} eta {eta}", format_metrics(values))
}

/// `1h02m03s`, `3m20s`, `45s`.
pub fn format_duration(d: Duration) -> String {
    let s = d.as_secs();
    match (s / 3600, (s / 60) % 60, s % 60) {
        (0, 0, sec) => format!("{sec}s"),
        (0, m, sec) => format!("{m}m{sec:02}s"),
        (h, m, sec) => format!("{h}h{m:02}m{sec:02}s"),
    }
}
