//! `RunConfig::validate`: every cross-section check, run before anything is allocated.
//! Messages name the key and carry both numbers.

use mm1_data::{PipelineShape, SampleKind};

use super::{ConfigError, LrRule, RunConfig};

type Check = Result<(), ConfigError>;

fn fail(key: &str, message: String) -> Check {
    Err(ConfigError::invalid(key, message))
}

fn positive_f(key: &str, v: f64) -> Check {
    if !(v.is_finite() && v > 0.0) {
        return fail(key, format!("must be a finite number > 0 (got {v})"));
    }
    Ok(())
}

fn at_least(key: &str, v: u64, min: u64) -> Check {
    if v < min {
        return fail(key, format!("must be at least {min} (got {v})"));
    }
    Ok(())
}

/// The first `model.…`/`data.…` key named in a component's message, so the origin of the
/// value can be looked up.
fn key_in_message(section: &str, message: &str) -> String {
    message
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '.'))
        .find(|w| w.starts_with(&format!("{section}.")))
        .map(|w| w.trim_end_matches('.').to_string())
        .unwrap_or_else(|| section.to_string())
}

impl RunConfig {
    /// Checks the whole run before allocation: the model's own rules, the data pipeline
    /// against the model's shape, and every trainer section.
    pub fn validate(&self) -> Check {
        self.model.validate().map_err(|e| {
            let m = e.to_string();
            ConfigError::invalid(key_in_message("model", &m), m)
        })?;
        self.validate_data()?;
        self.validate_optim()?;
        self.validate_loop()?;
        self.validate_schedule()?;
        self.validate_parallel()
    }

    /// `data.streams`, with 0 resolved to `parallel.dp` (one stream per rank).
    pub fn data_streams(&self) -> usize {
        if self.data.streams == 0 { self.parallel.dp } else { self.data.streams }
    }

    /// What the data pipeline must produce for this model.
    pub fn pipeline_shape(&self) -> PipelineShape {
        let [h, _] = self.model.image_size();
        PipelineShape { image_size: h, num_image_tokens: self.model.num_image_tokens() }
    }

    fn validate_data(&self) -> Check {
        let d = &self.data;
        let [h, w] = self.model.image_size();
        if h != w {
            return fail(
                "model.vision.image_size",
                format!("the data pipeline makes square images, got {h}x{w}"),
            );
        }
        for (i, s) in d.sources.iter().enumerate() {
            if !(s.weight.is_finite() && s.weight > 0.0) {
                return fail(
                    &format!("data.sources.{i}.weight"),
                    format!("mixture weight of {:?} must be > 0 (got {})", s.name, s.weight),
                );
            }
        }
        d.validate(&self.pipeline_shape()).map_err(|e| {
            let m = e.to_string();
            ConfigError::invalid(key_in_message("data", &m), m)
        })?;
        let uses_images = d.sources.iter().any(|s| s.kind != SampleKind::Text);
        let m = self.model.num_image_tokens();
        if uses_images && d.max_images_per_seq * m > d.seq_len {
            return fail(
                "data.seq_len",
                format!(
                    "data.max_images_per_seq × image tokens ({} × {m} = {}) exceeds data.seq_len ({})",
                    d.max_images_per_seq,
                    d.max_images_per_seq * m,
                    d.seq_len
                ),
            );
        }
        if d.seq_len > self.model.llm.max_seq_len {
            return fail(
                "data.seq_len",
                format!(
                    "data.seq_len ({}) exceeds model.llm.max_seq_len ({})",
                    d.seq_len, self.model.llm.max_seq_len
                ),
            );
        }
        Ok(())
    }

    fn validate_optim(&self) -> Check {
        let o = &self.optim;
        if o.lr_rule == LrRule::Fixed {
            positive_f("optim.lr", o.lr)?;
        }
        for (i, b) in o.betas.iter().enumerate() {
            if !(0.0..1.0).contains(b) {
                return fail(&format!("optim.betas.{i}"), format!("must be in [0, 1) (got {b})"));
            }
        }
        positive_f("optim.eps", o.eps)?;
        if !(o.weight_decay.is_finite() && o.weight_decay >= 0.0) {
            return fail("optim.weight_decay", format!("must be >= 0 (got {})", o.weight_decay));
        }
        if !(o.grad_clip.is_finite() && o.grad_clip >= 0.0) {
            return fail("optim.grad_clip", format!("must be >= 0, 0 = off (got {})", o.grad_clip));
        }
        at_least("optim.grad_accum", o.grad_accum as u64, 1)?;
        let m = &o.lr_multipliers;
        for (name, v) in [("vision", m.vision), ("connector", m.connector), ("llm", m.llm)] {
            if !(v.is_finite() && v >= 0.0) {
                return fail(&format!("optim.lr_multipliers.{name}"), format!("must be >= 0 (got {v})"));
            }
        }
        Ok(())
    }

    fn validate_schedule(&self) -> Check {
        let s = &self.schedule;
        if !(0.0..=1.0).contains(&s.min_lr_ratio) {
            return fail("schedule.min_lr_ratio", format!("must be in [0, 1] (got {})", s.min_lr_ratio));
        }
        if s.warmup_steps > self.train.steps {
            return fail(
                "schedule.warmup_steps",
                format!(
                    "schedule.warmup_steps ({}) exceeds train.steps ({})",
                    s.warmup_steps, self.train.steps
                ),
            );
        }
        Ok(())
    }

    fn validate_loop(&self) -> Check {
        at_least("train.steps", self.train.steps, 1)?;
        at_least("train.max_nonfinite_in_a_row", self.train.max_nonfinite_in_a_row as u64, 1)?;
        let peak = self.train.device_peak_tflops;
        if !(peak.is_finite() && peak >= 0.0) {
            return fail("train.device_peak_tflops", format!("must be a finite number >= 0 (got {peak})"));
        }
        self.validate_recompute()?;
        if self.eval.every > 0 {
            at_least("eval.batches", self.eval.batches as u64, 1)?;
        }
        self.validate_fewshot()?;
        at_least("checkpoint.keep_last", self.checkpoint.keep_last as u64, 1)?;
        at_least("log.every", self.log.every, 1)
    }

    fn validate_recompute(&self) -> Check {
        let every = self.train.activation_checkpointing_every as u64;
        at_least("train.activation_checkpointing_every", every, 1)
    }

    fn validate_fewshot(&self) -> Check {
        let f = &self.eval.fewshot;
        if f.every == 0 {
            return Ok(());
        }
        if let Err(e) = f.options() {
            return fail("eval.fewshot.zero_shot", e);
        }
        if f.shots.is_empty() {
            return fail("eval.fewshot.shots", "must name at least one shot count, e.g. [0, 4, 8]".into());
        }
        let most = f.shots.iter().copied().max().unwrap_or(0);
        if most > f.support_size {
            return fail(
                "eval.fewshot.shots",
                format!("{most} shots need eval.fewshot.support_size >= {most} (got {})", f.support_size),
            );
        }
        at_least("eval.fewshot.max_new_tokens", f.max_new_tokens as u64, 1)?;
        let d = &self.data;
        if d.synth.is_none() && d.eval.vqa.is_none() && d.eval.captions.is_none() {
            return fail(
                "eval.fewshot.every",
                "few-shot evaluation needs eval sets: [data.synth], data.eval.vqa or data.eval.captions"
                    .into(),
            );
        }
        Ok(())
    }

    fn validate_parallel(&self) -> Check {
        let p = &self.parallel;
        at_least("parallel.dp", p.dp as u64, 1)?;
        at_least("parallel.ep", p.ep as u64, 1)?;
        at_least("parallel.collective_timeout_s", p.collective_timeout_s, 1)?;
        if !p.dp.is_multiple_of(p.ep) {
            return fail("parallel.ep", format!("parallel.ep ({}) must divide parallel.dp ({})", p.ep, p.dp));
        }
        if p.zero > 2 {
            return fail("parallel.zero", format!("must be 0, 1 or 2 (got {})", p.zero));
        }
        if p.zero > 0 && p.ep > 1 {
            return fail(
                "parallel.zero",
                format!(
                    "parallel.zero ({}) > 0 needs parallel.ep = 1 (got {}): expert parallelism keeps each \
                     rank's experts' optimizer state already; set parallel.zero = 0 or parallel.ep = 1",
                    p.zero, p.ep
                ),
            );
        }
        if p.ep > 1 {
            let Some(moe) = &self.model.llm.moe else {
                return fail(
                    "parallel.ep",
                    format!("parallel.ep ({}) > 1 needs a MoE model ([model.llm.moe])", p.ep),
                );
            };
            if !moe.num_experts.is_multiple_of(p.ep) {
                return fail(
                    "parallel.ep",
                    format!(
                        "model.llm.moe.num_experts ({}) must be divisible by parallel.ep ({})",
                        moe.num_experts, p.ep
                    ),
                );
            }
        }
        // data streams (data.streams, 0 = dp): every rank reads the same whole number of them
        let streams = self.data_streams();
        if let Err(e) = mm1_data::streams::stream_rows(self.data.batch_size, p.dp, streams) {
            let key = if streams.is_multiple_of(p.dp) { "data.batch_size" } else { "data.streams" };
            return fail(key, e.to_string().trim_start_matches("data config: ").to_string());
        }
        let global = self.data.batch_size * p.dp * self.optim.grad_accum;
        let want = self.train.global_batch_size;
        if want != 0 && global != want {
            return fail(
                "train.global_batch_size",
                format!(
                    "train.global_batch_size ({want}) != data.batch_size × parallel.dp × optim.grad_accum ({} × {} × {} = {global})",
                    self.data.batch_size, p.dp, self.optim.grad_accum
                ),
            );
        }
        Ok(())
    }
}
