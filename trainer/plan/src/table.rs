//! The planner's printed report: three small tables (parameters, memory, FLOPs/time).

use std::fmt::Write;

use super::{Plan, PlanOptions};

/// `1.23B`, `45.6M`, `7.8K`.
fn count(n: f64) -> String {
    let (v, s) = match n.abs() {
        x if x >= 1e9 => (n / 1e9, "B"),
        x if x >= 1e6 => (n / 1e6, "M"),
        x if x >= 1e3 => (n / 1e3, "K"),
        _ => (n, ""),
    };
    format!("{v:.2}{s}")
}

/// Bytes in GiB (2³⁰) or MiB.
fn bytes(n: f64) -> String {
    let gib = n / 1024f64.powi(3);
    if gib >= 1.0 { format!("{gib:.2} GiB") } else { format!("{:.1} MiB", n / 1024f64.powi(2)) }
}

fn flops(n: f64) -> String {
    match n {
        x if x >= 1e15 => format!("{:.2} PFLOP", n / 1e15),
        x if x >= 1e12 => format!("{:.2} TFLOP", n / 1e12),
        _ => format!("{:.2} GFLOP", n / 1e9),
    }
}

/// The report `mm1-train plan` prints.
pub fn render(p: &Plan, opts: &PlanOptions) -> String {
    let mut o = String::new();
    let precision = p.precision.name();
    let ckpt = &p.activation_checkpointing;
    let _ = writeln!(
        o,
        "plan per rank: dp {} ep {}, precision {precision}, activation checkpointing {ckpt}, zero {}",
        p.dp,
        p.ep,
        p.zero.stage()
    );
    let pc = &p.params;
    let _ = writeln!(o, "\nparameters            total        on this rank");
    let experts_rank = p.rank.held - (pc.total() - pc.experts);
    let rows = [
        ("vision", pc.vision, pc.vision),
        ("connector", pc.connector, pc.connector),
        ("llm (dense)", pc.llm_dense, pc.llm_dense),
        ("experts", pc.experts, experts_rank),
        ("total", pc.total(), p.rank.held),
    ];
    for (name, total, rank) in rows {
        let _ = writeln!(o, "  {name:<18}{:>10}  {:>14}", count(total as f64), count(rank as f64));
    }
    let _ = writeln!(
        o,
        "  {:<18}{:>10}  (per token: experts x top_k / num_experts)",
        "active",
        count(pc.active() as f64)
    );
    let trainable = p.rank.trainable_dense + p.rank.trainable_experts;
    let _ = writeln!(o, "  {:<18}{:>10}  on this rank", "trainable", count(trainable as f64));

    let m = &p.memory;
    let a = &p.activations;
    let _ = writeln!(o, "\nmemory per rank (one micro-batch of activations)");
    let act_note = format!(
        "vision {}, connector {}, llm {}, logits {}, transient {}, recompute {} values",
        count(a.vision),
        count(a.connector),
        count(a.llm),
        count(a.head),
        count(a.transient),
        count(a.recompute)
    );
    let grad_note = match p.unfinished_gradients {
        Some(n) => format!("own 1/{} of the sums + {} unreduced (one unit)", p.dp, count(n as f64)),
        None => "the whole local gradient".into(),
    };
    for (name, v, note) in [
        ("weights", m.weights, String::new()),
        ("master (f32)", m.master, String::new()),
        ("gradients", m.gradients, grad_note),
        ("optimizer (AdamW)", m.optimizer, "2 f32 moments".into()),
        ("activations", m.activations, act_note),
        ("peak", m.total(), String::new()),
    ] {
        let line = format!("  {name:<18}{:>12}  {note}", bytes(v));
        let _ = writeln!(o, "{}", line.trim_end());
    }
    if let Some(dev) = opts.device_memory {
        let verdict = if p.fits(dev) { "fits" } else { "does NOT fit" };
        let _ = writeln!(o, "  {verdict} in {} ({:.0} % used)", bytes(dev), 100.0 * m.total() / dev);
    }

    let [v, c, l, h] = p.step_flops;
    let _ = writeln!(
        o,
        "\nFLOPs per step on this rank ({} positions, {} images; training = 3 x forward)",
        count(p.tokens_per_step),
        count(p.images_per_step)
    );
    for (name, f) in
        [("vision", v), ("connector", c), ("llm layers", l), ("LM head", h), ("total", v + c + l + h)]
    {
        let _ = writeln!(o, "  {name:<18}{:>14}", flops(f));
    }
    let per_seq = p.flops.llm_per_seq + p.flops.head_per_seq;
    let _ = writeln!(
        o,
        "  of llm layers + head: attention products {:.1} % (full t x t, not the causal half)",
        100.0 * p.flops.attention_per_seq / per_seq
    );
    if p.step_time_s > 0.0 {
        let tps = p.tokens_per_step / p.step_time_s;
        let _ = writeln!(
            o,
            "  at {} TFLOP/s peak x {:.0} % MFU: {:.3} s/step, {:.0} tokens/s per rank, {:.0} tokens/s over {} ranks",
            opts.peak_tflops,
            opts.mfu * 100.0,
            p.step_time_s,
            tps,
            tps * p.dp as f64,
            p.dp
        );
    }
    o
}
