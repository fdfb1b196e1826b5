//! `report.md` (plots as `plots/*.svg`) and the self-contained `report.html` (plots inline).

use std::collections::BTreeMap;
use std::path::Path;

use toml::Value;

use super::collect::{SweepData, metric_rank};
use super::stats::fmt_num;
use super::study::{BOOTSTRAP_REPS, Study, study};
use super::svg::{Series, error_bar_chart, line_chart};
use crate::{Mode, SweepError, lookup, resolved_base, short};

/// One plot: file stem, title, SVG text.
struct Plot {
    stem: String,
    title: String,
    svg: String,
}

/// A table: header and rows of cells.
struct Table {
    header: Vec<String>,
    rows: Vec<Vec<String>>,
}

fn metric_title(m: &str) -> String {
    match m {
        "train_loss" => "final train loss".into(),
        "wall_time_s" => "wall time (s)".into(),
        other => other.to_string(),
    }
}

/// Splits `task/Nshot/metric[_blank]` and `task/majority/metric` keys into `(task/metric, column)`;
/// columns read `0-shot`, `0-shot blank image`, `majority`.
fn shot_key(m: &str) -> Option<(String, String)> {
    let parts: Vec<&str> = m.split('/').collect();
    match parts.as_slice() {
        [task, "majority", metric] => Some((format!("{task}/{metric}"), "majority".into())),
        [task, shot, metric] if shot.ends_with("shot") => match metric.strip_suffix("_blank") {
            Some(metric) => Some((format!("{task}/{metric}"), format!("{shot} blank image"))),
            None => Some((format!("{task}/{metric}"), (*shot).to_string())),
        },
        _ => None,
    }
}

fn arm_row(d: &SweepData, a: &super::collect::ArmSummary, keys: &[String]) -> Vec<String> {
    let mut row = vec![d.plan.arms[a.index].name.clone()];
    row.extend(keys.iter().map(|m| a.stats.get(m).map_or("–".into(), |s| s.show())));
    row
}

/// One table per eval score (rows: arms; columns: shot counts and their average), then one table
/// of losses and cost (held-out losses, final train loss, tokens, wall time, seeds done).
fn results_tables(d: &SweepData) -> Vec<(String, Table)> {
    let mut by_score: Vec<(String, Vec<(String, String)>)> = Vec::new();
    let mut rest = Vec::new();
    for m in &d.metrics {
        match shot_key(m) {
            Some((score, col)) => match by_score.iter_mut().find(|(s, _)| *s == score) {
                Some((_, cols)) => cols.push((col, m.clone())),
                None => by_score.push((score, vec![(col, m.clone())])),
            },
            None => rest.push(m.clone()),
        }
    }
    let mut out = Vec::new();
    for (score, mut cols) in by_score {
        // 0shot, 0shot blank image, 4shot, ..., majority (each shot count its own column: never averaged)
        cols.sort_by_key(|(c, _)| {
            let shots = c.split("shot").next().and_then(|n| n.parse::<u32>().ok()).unwrap_or(0);
            (c == "majority", shots, c.ends_with("blank image"))
        });
        let mut header = vec!["arm".to_string()];
        header.extend(cols.iter().map(|(c, _)| c.replace("shot", "-shot")));
        let keys: Vec<String> = cols.into_iter().map(|(_, m)| m).collect();
        let rows = d.arms.iter().map(|a| arm_row(d, a, &keys)).collect();
        out.push((score, Table { header, rows }));
    }
    let mut header = vec!["arm".to_string()];
    header.extend(rest.iter().map(|m| metric_title(m)));
    header.push("seeds done".into());
    let rows = d
        .arms
        .iter()
        .map(|a| {
            let mut row = arm_row(d, a, &rest);
            row.push(format!("{}/{}", a.runs.iter().filter(|r| r.finished).count(), a.runs.len()));
            row
        })
        .collect();
    out.push(("losses and cost".into(), Table { header, rows }));
    out
}

fn opt_num(x: Option<f64>) -> String {
    x.map_or("–".into(), fmt_num)
}

/// `12.3`, `∞` (every seed gave the same non-zero difference) or `–` (fewer than 2 seeds).
fn show_se(x: f64) -> String {
    if x.is_nan() {
        "–".into()
    } else if x.is_infinite() {
        "∞".into()
    } else {
        format!("{x:.1}")
    }
}

fn opt_interval(x: Option<&super::stats::Interval>) -> String {
    x.map_or("–".into(), |i| format!("[{}, {}]", fmt_num(i.lo), fmt_num(i.hi)))
}

/// The per-task statistics and the paired differences against the control, with their notes.
fn study_tables(d: &SweepData, st: &Study) -> Vec<(String, String, Table)> {
    if st.per_arm.is_empty() {
        return vec![];
    }
    let arm_name = |i: usize| d.plan.arms[i].name.clone();
    let header = |h: &[&str]| h.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let rows = st
        .per_arm
        .iter()
        .map(|t| {
            vec![
                t.task.clone(),
                t.gate.clone().unwrap_or_else(|| "–".into()),
                t.metric.clone(),
                arm_name(t.arm),
                fmt_num(t.mean),
                opt_interval(t.seeds.as_ref()),
                opt_interval(t.items.as_ref()),
                opt_num(t.blank_image),
                opt_num(t.majority),
                t.scores.len().to_string(),
                t.n_items.to_string(),
            ]
        })
        .collect();
    let per_task = Table {
        header: header(&[
            "task",
            "gate",
            "metric",
            "arm",
            "mean",
            "95% over seeds (t)",
            "95% over items (bootstrap)",
            "blank image",
            "majority",
            "seeds",
            "items",
        ]),
        rows,
    };
    let note = format!(
        "Headline 0-shot score per task (forced-choice accuracy on closed-set tasks, else the 0-shot \
         generative metric), finished runs only. Seeds interval: mean ± t(0.975, n−1)·s/√n; items \
         interval: percentile bootstrap ({BOOTSTRAP_REPS} resamples, fixed seed) of the per-item score \
         averaged over seeds. Baselines: the same checkpoints on a blank image, and the majority answer."
    );
    let mut out = vec![("Per-task statistics".to_string(), note, per_task)];
    let Some(c) = st.control else {
        out.push((
            "Paired differences".into(),
            "No arm is the base config unchanged (a grid without it): no control to pair against.".into(),
            Table { header: vec![], rows: vec![] },
        ));
        return out;
    };
    let rows = st
        .diffs
        .iter()
        .map(|p| {
            vec![
                p.task.clone(),
                arm_name(p.arm),
                p.by_seed.map_or("–".into(), |i| fmt_num(i.mean)),
                opt_interval(p.by_seed.as_ref()),
                p.by_seed.map_or("–".into(), |i| show_se(super::stats::standard_errors_from_zero(&i))),
                opt_interval(p.by_item.as_ref()),
                p.seeds_used.len().to_string(),
                p.verdict.to_string(),
            ]
        })
        .collect();
    let note = format!(
        "Arm minus `{}` on the same seed (a seed fixes initialisation and data order), mean and 95% t \
         interval over seeds, and how many paired standard errors (s/√n over seeds) the mean lies from \
         0; beside it the bootstrap interval over items. A difference reads \
         \"effect\" only when its interval over seeds excludes 0, else \"not separated\" (also with \
         fewer than 2 paired seeds).",
        arm_name(c)
    );
    out.push((
        format!("Paired differences against the control `{}`", arm_name(c)),
        note,
        Table {
            header: header(&[
                "task",
                "arm",
                "difference",
                "95% over seeds (t)",
                "SEs from 0",
                "95% over items (bootstrap)",
                "seeds",
                "reading",
            ]),
            rows,
        },
    ));
    out
}

fn md_table(t: &Table) -> String {
    if t.header.is_empty() {
        return String::new();
    }
    let mut s = format!("| {} |\n|{}|\n", t.header.join(" | "), vec!["---"; t.header.len()].join("|"));
    for r in &t.rows {
        s += &format!("| {} |\n", r.join(" | "));
    }
    s
}

fn html_table(t: &Table) -> String {
    if t.header.is_empty() {
        return String::new();
    }
    let mut s = "<table>\n<tr>".to_string();
    for h in &t.header {
        s += &format!("<th>{}</th>", html_esc(h));
    }
    s += "</tr>\n";
    for r in &t.rows {
        s += "<tr>";
        for c in r {
            s += &format!("<td>{}</td>", html_esc(c));
        }
        s += "</tr>\n";
    }
    s + "</table>\n"
}

/// Each arm's delta from the base: `key: base → value`.
fn delta_lines(d: &SweepData) -> Vec<(String, Vec<String>)> {
    let base_tree = resolved_base(&d.plan.base, &d.plan.overlays).ok();
    let base_of = |k: &str| -> String {
        base_tree.as_ref().and_then(|t| lookup(t, k)).map_or("(default)".into(), |v| crate::toml_literal(&v))
    };
    d.plan
        .arms
        .iter()
        .map(|arm| {
            let lines = if arm.delta.is_empty() {
                vec!["control: the base config unchanged".to_string()]
            } else {
                arm.delta
                    .iter()
                    .map(|(k, v)| format!("{k}: {} → {}", base_of(k), crate::toml_literal(v)))
                    .collect()
            };
            (arm.name.clone(), lines)
        })
        .collect()
}

fn loss_plot(d: &SweepData) -> Option<Plot> {
    let series: Vec<Series> = d
        .arms
        .iter()
        .filter(|a| !a.mean_curve.is_empty())
        .map(|a| Series {
            name: d.plan.arms[a.index].name.clone(),
            points: a.mean_curve.clone(),
            err: vec![],
        })
        .collect();
    if series.is_empty() {
        return None;
    }
    let title = format!("{}: training loss (mean over seeds)", d.plan.name);
    Some(Plot { stem: "loss".into(), svg: line_chart(&title, "step", "loss", &series), title })
}

/// Metrics worth a plot against each axis: the 0-shot eval scores (forced choice first; else all
/// eval scores), up to three held-out losses and the final training loss.
fn headline_metrics(d: &SweepData) -> Vec<String> {
    let evals: Vec<&String> = d.metrics.iter().filter(|m| metric_rank(m) == 0).collect();
    let mut zero: Vec<&String> = evals
        .iter()
        .copied()
        .filter(|m| m.contains("/0shot/") && !m.ends_with("_blank") && !m.ends_with("exact_match"))
        .collect();
    zero.sort_by_key(|m| !m.ends_with("choice_accuracy"));
    let mut out: Vec<String> =
        if zero.is_empty() { evals } else { zero }.into_iter().take(8).cloned().collect();
    out.extend(d.metrics.iter().filter(|m| metric_rank(m) == 1).take(3).cloned());
    if d.metrics.iter().any(|m| m == "train_loss") {
        out.push("train_loss".into());
    }
    out
}

fn as_number(v: &Value) -> Option<f64> {
    match v {
        Value::Integer(i) => Some(*i as f64),
        Value::Float(f) => Some(*f),
        _ => None,
    }
}

/// Metric vs the values of one axis, with error bars over seeds.
fn axis_plots(d: &SweepData, axis: &str, values: &[Value], metrics: &[String]) -> Vec<Plot> {
    // Arms that belong on this axis, keyed by the series they belong to.
    let mut groups: BTreeMap<String, Vec<(usize, Value)>> = BTreeMap::new();
    for a in &d.arms {
        let arm = &d.plan.arms[a.index];
        let on_axis = match d.plan.mode {
            Mode::OneAtATime => arm.varies.as_deref() == Some(axis) || arm.delta.is_empty(),
            Mode::Grid => true,
        };
        let Some(v) = arm.axis_values.get(axis).filter(|_| on_axis) else { continue };
        let others: Vec<String> = arm
            .axis_values
            .iter()
            .filter(|(k, _)| k.as_str() != axis && d.plan.mode == Mode::Grid)
            .map(|(k, v)| format!("{}={}", k.rsplit('.').next().unwrap_or(k), short(v)))
            .collect();
        let key = if others.is_empty() { d.plan.name.clone() } else { others.join(",") };
        groups.entry(key).or_default().push((a.index, v.clone()));
    }
    let numeric = groups.values().flatten().all(|(_, v)| as_number(v).is_some());
    // Categorical positions: the axis's values in file order, then any base value not listed.
    let mut cats: Vec<String> = values.iter().map(short).collect();
    for (_, v) in groups.values().flatten() {
        if !cats.contains(&short(v)) {
            cats.push(short(v));
        }
    }
    let x_of = |v: &Value| -> f64 {
        if numeric {
            as_number(v).unwrap_or(0.0)
        } else {
            cats.iter().position(|c| *c == short(v)).unwrap_or(0) as f64
        }
    };
    let labels: Vec<(f64, String)> = cats.iter().enumerate().map(|(i, c)| (i as f64, c.clone())).collect();
    let mut plots = vec![];
    for m in metrics {
        let series: Vec<Series> = groups
            .iter()
            .filter_map(|(name, arms)| {
                let mut pts: Vec<(f64, f64, f64)> = arms
                    .iter()
                    .filter_map(|(i, v)| d.arms[*i].stats.get(m).map(|s| (x_of(v), s.mean, s.std)))
                    .collect();
                pts.sort_by(|a, b| a.0.total_cmp(&b.0));
                (!pts.is_empty()).then(|| Series {
                    name: name.clone(),
                    points: pts.iter().map(|p| (p.0, p.1)).collect(),
                    err: pts.iter().map(|p| p.2).collect(),
                })
            })
            .collect();
        if series.is_empty() {
            continue;
        }
        let title = format!("{} vs {axis}", metric_title(m));
        let svg = error_bar_chart(&title, axis, &metric_title(m), &series, (!numeric).then_some(&labels[..]));
        let stem = format!("{}__{}", sanitize(axis), sanitize(m));
        plots.push(Plot { stem, title, svg });
    }
    plots
}

fn sanitize(s: &str) -> String {
    s.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' { c } else { '_' }).collect()
}

fn all_plots(d: &SweepData) -> (Option<Plot>, Vec<(String, Vec<Plot>)>) {
    let metrics = headline_metrics(d);
    let per_axis = d
        .plan
        .axes
        .iter()
        .map(|(axis, values)| (axis.clone(), axis_plots(d, axis, values, &metrics)))
        .collect();
    (loss_plot(d), per_axis)
}

/// A path relative to the working directory when it lies below it (reports get committed).
fn shown(path: &Path) -> String {
    let cwd = std::env::current_dir().unwrap_or_default();
    path.strip_prefix(&cwd).unwrap_or(path).display().to_string()
}

fn header_lines(d: &SweepData) -> Vec<String> {
    let p = &d.plan;
    let finished: usize = d.arms.iter().map(|a| a.runs.iter().filter(|r| r.finished).count()).sum();
    let mut out = vec![
        format!("mode: {}", if p.mode == Mode::Grid { "grid" } else { "one factor at a time from the base" }),
        format!("base config: {}", shown(&p.base)),
    ];
    out.extend(p.overlays.iter().map(|o| format!("overlay: {}", shown(o))));
    out.push(format!("seeds: {:?}; runs finished: {finished}/{}", p.seeds, p.runs.len()));
    if let Some(s) = p.steps {
        out.push(format!("train.steps = {s} for every arm"));
    }
    out.extend(p.common.iter().map(|(k, v)| format!("every arm: {k} = {}", crate::toml_literal(v))));
    out.push("cells: mean ± sample std over seeds".into());
    out
}

/// `report.md`; plots are referenced as `plots/<stem>.svg`.
pub fn render_markdown(d: &SweepData) -> String {
    let mut s = format!("# Sweep `{}`\n\n", d.plan.name);
    for l in header_lines(d) {
        s += &format!("- {l}\n");
    }
    s += "\n## Results\n";
    for (title, t) in results_tables(d) {
        s += &format!(
            "\n### {title}\n\n| {} |\n|{}|\n",
            t.header.join(" | "),
            vec!["---"; t.header.len()].join("|")
        );
        for r in &t.rows {
            s += &format!("| {} |\n", r.join(" | "));
        }
    }
    for (title, note, t) in study_tables(d, &study(d)) {
        s += &format!("\n## {title}\n\n{note}\n\n{}", md_table(&t));
    }
    let (loss, per_axis) = all_plots(d);
    if let Some(p) = loss {
        s += &format!("\n## Training loss\n\n![{}](plots/{}.svg)\n", p.title, p.stem);
    }
    for (axis, plots) in &per_axis {
        if plots.is_empty() {
            continue;
        }
        s += &format!("\n## Scores vs `{axis}`\n\n");
        for p in plots {
            s += &format!("![{}](plots/{}.svg)\n", p.title, p.stem);
        }
    }
    s += "\n## Config delta of each arm\n\n";
    for (arm, lines) in delta_lines(d) {
        s += &format!(
            "- **{arm}**: {}\n",
            lines.iter().map(|l| format!("`{l}`")).collect::<Vec<_>>().join(", ")
        );
    }
    s
}

fn html_esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

/// `report.html`: one file, plots inline.
pub fn render_html(d: &SweepData) -> String {
    let mut s = format!(
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>Sweep {0}</title><style>\
         body{{font-family:sans-serif;max-width:1100px;margin:2em auto}}table{{border-collapse:collapse}}\
         td,th{{border:1px solid #ccc;padding:3px 8px;text-align:right}}td:first-child{{text-align:left}}\
         code{{background:#f4f4f4}}</style></head><body>\n<h1>Sweep <code>{0}</code></h1>\n<ul>\n",
        html_esc(&d.plan.name)
    );
    for l in header_lines(d) {
        s += &format!("<li>{}</li>\n", html_esc(&l));
    }
    s += "</ul>\n<h2>Results</h2>\n";
    for (title, t) in results_tables(d) {
        s += &format!("<h3>{}</h3>\n{}", html_esc(&title), html_table(&t));
    }
    for (title, note, t) in study_tables(d, &study(d)) {
        s += &format!("<h2>{}</h2>\n<p>{}</p>\n{}", html_esc(&title), html_esc(&note), html_table(&t));
    }
    let (loss, per_axis) = all_plots(d);
    if let Some(p) = loss {
        s += &format!("<h2>Training loss</h2>\n{}", p.svg);
    }
    for (axis, plots) in &per_axis {
        if plots.is_empty() {
            continue;
        }
        s += &format!("<h2>Scores vs <code>{}</code></h2>\n", html_esc(axis));
        for p in plots {
            s += &p.svg;
        }
    }
    s += "<h2>Config delta of each arm</h2>\n<ul>\n";
    for (arm, lines) in delta_lines(d) {
        let items: Vec<String> = lines.iter().map(|l| format!("<code>{}</code>", html_esc(l))).collect();
        s += &format!("<li><b>{}</b>: {}</li>\n", html_esc(&arm), items.join(", "));
    }
    s + "</ul>\n</body></html>\n"
}

/// Writes `report.md`, `plots/*.svg`, `report.html` and `runs.jsonl` into the sweep folder; returns
/// the paths (report.md and report.html first).
pub fn write_report(d: &SweepData) -> Result<Vec<std::path::PathBuf>, SweepError> {
    let write = |p: &Path, text: &str| std::fs::write(p, text).map_err(|e| SweepError::io(p, e));
    let plots_dir = d.dir.join("plots");
    std::fs::create_dir_all(&plots_dir).map_err(|e| SweepError::io(&plots_dir, e))?;
    let (loss, per_axis) = all_plots(d);
    let mut written = vec![];
    for p in loss.iter().chain(per_axis.iter().flat_map(|(_, ps)| ps.iter())) {
        let path = plots_dir.join(format!("{}.svg", p.stem));
        write(&path, &p.svg)?;
        written.push(path);
    }
    let md = d.dir.join("report.md");
    write(&md, &render_markdown(d))?;
    let html = d.dir.join("report.html");
    write(&html, &render_html(d))?;
    let runs = d.dir.join("runs.jsonl");
    write(&runs, &super::study::runs_jsonl(d))?;
    written.push(runs);
    written.insert(0, html);
    written.insert(0, md);
    Ok(written)
}
