//! The step loop of [`super::train`]: each step trains, logs, evaluates when due, checkpoints
//! when due and decides whether the run goes on, each a named step below.

use std::path::Path;
use std::time::Instant;

use burn::tensor::Device;

use super::evals::{self, EvalOutcome};
use super::metrics::{LogSink, StepTiming, step_metrics};
use super::ranks::Ranks;
use super::session::Session;
use super::signals::{EXIT_PREEMPTED, StopSignals, signal_name};
use super::{RunError, RunOptions, RunSummary, checkpoint, count_step, next_batches, written_message};
use crate::checkpoint::{BackgroundWriter, CheckpointDir};
use crate::config::RunConfig;
use crate::eval::WorkSplit;
use crate::plan::PerfMeter;
use crate::recompute::Recompute;
use crate::schedule::LrSchedule;
use crate::step::{NonFiniteGuard, StepReport, train_step_with_recompute};

/// What the loop does after a step.
enum Next {
    Continue,
    /// Stopped early with its checkpoint written (a signal or `--stop-after`).
    Break,
}

/// Everything a step needs besides the session.
pub(super) struct TrainLoop<'a> {
    pub cfg: &'a RunConfig,
    pub opts: &'a RunOptions,
    pub ranks: &'a Ranks,
    pub device: &'a Device,
    pub run_dir: &'a Path,
    pub ckpts: &'a CheckpointDir,
    pub config_text: &'a str,
    pub split: WorkSplit<'a>,
    pub log: LogSink,
    pub start_step: u64,
}

/// The loop's own state: schedule, meters, guards and what it reports at the end.
struct LoopState {
    schedule: LrSchedule,
    meter: PerfMeter,
    recompute: Recompute,
    guard: NonFiniteGuard,
    signals: &'static StopSignals,
    writer: BackgroundWriter,
    summary: RunSummary,
}

impl TrainLoop<'_> {
    /// Steps until `train.steps`, a stop signal or `--stop-after`; then waits for the last
    /// checkpoint and for every rank.
    pub fn run(mut self, mut s: Session, peak_lr: f64) -> Result<RunSummary, RunError> {
        let mut st = self.state(&s, peak_lr)?;
        while s.state.step < self.cfg.train.steps {
            let next;
            (s, next) = self.step(s, &mut st)?;
            if let Next::Break = next {
                break;
            }
        }
        if let Some(w) = st.writer.wait()? {
            self.log.message(&written_message(&w));
        }
        // No rank exits before rank 0's last checkpoint is published: under `srun
        // --kill-on-bad-exit` the first rank to exit with 85 ends the others.
        self.ranks.barrier()?;
        self.log.finish()?;
        st.summary.end_step = s.state.step;
        st.summary.skipped_steps = st.guard.total;
        Ok(st.summary)
    }

    fn state(&self, s: &Session, peak_lr: f64) -> Result<LoopState, RunError> {
        let guard = NonFiniteGuard {
            max_in_a_row: self.cfg.train.max_nonfinite_in_a_row as u64,
            in_a_row: s.state.counters.nonfinite_in_a_row,
            total: s.state.counters.skipped_steps,
        };
        let summary = RunSummary {
            run_dir: self.run_dir.to_path_buf(),
            rank: self.ranks.rank(),
            start_step: self.start_step,
            end_step: self.start_step,
            losses: Vec::new(),
            eval: Vec::new(),
            fewshot: Vec::new(),
            skipped_steps: guard.total,
            preempted: None,
        };
        Ok(LoopState {
            schedule: LrSchedule::new(&self.cfg.schedule, peak_lr, self.cfg.train.steps),
            // model FLOPs of a step from the planner, for perf/tflops and perf/mfu
            meter: PerfMeter::new(self.cfg),
            recompute: Recompute::from_config(&self.cfg.train),
            guard,
            signals: StopSignals::install().map_err(RunError::Stop)?,
            writer: BackgroundWriter::new(),
            summary,
        })
    }

    /// One step: train, log, evaluate, checkpoint, decide.
    fn step(&mut self, s: Session, st: &mut LoopState) -> Result<(Session, Next), RunError> {
        let (mut s, report, timing) = self.train_once(s, st)?;
        let step = s.state.step;
        let stop = st.guard.record(step, &report);
        count_step(&mut s, &st.guard, &report);
        st.summary.losses.push((step, report.loss));
        let last = self.is_last(step);
        let mut values = Vec::new();
        if self.log.should_log(step) || last {
            values = step_metrics(&report, &timing, &s);
        }
        if let Err(msg) = stop {
            self.log.values(step, &values)?;
            return Err(self.stop(msg));
        }
        // A failing evaluation stops the run only after this step is logged and checkpointed.
        let eval_error = self.evaluate(&s, st, report.loss, &mut values).err();
        self.log.values(step, &values)?;
        let preempted = self.preempted(st, step)?;
        if self.checkpoint_due(step) || last || eval_error.is_some() || preempted.is_some() {
            s = checkpoint(
                s,
                (self.ckpts, self.config_text),
                self.ranks,
                (&mut st.writer, self.cfg.checkpoint.background),
                &self.log,
            )?;
        }
        if let Some(e) = eval_error {
            self.log.message(&format!("evaluation at step {step} failed: {e}"));
            return Err(self.stop_with(e));
        }
        if let Some(signal) = preempted {
            self.log.message(&format!(
                "received {signal}: stopped after step {step} with its checkpoint written; \
                 exit status {EXIT_PREEMPTED}, the next start (or --resume) continues from step {step}"
            ));
            st.summary.preempted = Some(signal);
            return Ok((s, Next::Break));
        }
        if step < self.cfg.train.steps && last {
            let ran = step - self.start_step;
            self.log.message(&format!("stopping after {ran} steps (--stop-after); resume to continue"));
            return Ok((s, Next::Break));
        }
        Ok((s, Next::Continue))
    }

    /// The optimizer step on the next batches; the step counters move on.
    fn train_once(
        &self,
        mut s: Session,
        st: &LoopState,
    ) -> Result<(Session, StepReport, StepTiming), RunError> {
        self.ranks.set_step(s.state.step + 1);
        let t0 = Instant::now();
        let batches = next_batches(&mut s.loader, self.cfg.optim.grad_accum.max(1))?;
        let data_wait = t0.elapsed().as_secs_f64();
        let lr = st.schedule.lr(s.state.scheduler_step);
        let (model, report) = train_step_with_recompute(
            s.model,
            &mut s.optim,
            &batches,
            lr,
            self.device,
            self.ranks.step_sync(),
            st.recompute,
        )?;
        s.model = model;
        let step_time = t0.elapsed().as_secs_f64();
        let comm = self.ranks.take_comm_stats();
        let perf = st.meter.values(report.images, step_time);
        s.state.step += 1;
        if report.applied {
            s.state.scheduler_step += 1;
        }
        Ok((s, report, StepTiming { lr, data_wait, step_time, comm, perf }))
    }

    /// Held-out and few-shot evaluation when due; their scalars join the step's `values`.
    fn evaluate(
        &self,
        s: &Session,
        st: &mut LoopState,
        loss: f64,
        values: &mut Vec<(String, f64)>,
    ) -> Result<(), RunError> {
        let step = s.state.step;
        let eval_dir = self.ranks.is_main().then_some(self.run_dir);
        let ev: EvalOutcome = evals::evaluate_due(
            &s.model,
            self.cfg,
            (step, self.cfg.train.steps),
            (eval_dir, &self.split),
            self.device,
            &self.log,
        )?;
        if !ev.values.is_empty() && values.is_empty() {
            // Eval lines carry the step's training loss too: every metrics.jsonl line has `loss`.
            values.push(("loss".into(), loss));
        }
        values.extend(ev.values);
        if !ev.heldout.is_empty() {
            st.summary.eval = ev.heldout;
        }
        if !ev.fewshot.is_empty() {
            st.summary.fewshot = ev.fewshot;
        }
        Ok(())
    }

    /// The signal every rank stops on after this step, if any rank received one (one collective
    /// per step); none at the last step.
    fn preempted(&self, st: &LoopState, step: u64) -> Result<Option<String>, RunError> {
        let signal = self.ranks.agree_max(st.signals.received().map_or(0, |s| s as u64))?;
        Ok((signal > 0 && step < self.cfg.train.steps).then(|| signal_name(signal as i32)))
    }

    fn is_last(&self, step: u64) -> bool {
        step == self.cfg.train.steps || self.opts.stop_after.is_some_and(|n| step - self.start_step >= n)
    }

    fn checkpoint_due(&self, step: u64) -> bool {
        self.cfg.checkpoint.every > 0 && step.is_multiple_of(self.cfg.checkpoint.every)
    }

    /// Ends the log with `msg` and returns the run's error.
    fn stop(&mut self, msg: String) -> RunError {
        self.log.message(&msg);
        self.stop_with(RunError::Stop(msg))
    }

    fn stop_with(&mut self, e: RunError) -> RunError {
        let _ = self.log.finish();
        e
    }
}
