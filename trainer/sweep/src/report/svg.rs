//! Small hand-written SVG charts (no plotting dependency): line charts for loss curves and
//! error-bar charts for a metric against a swept value.

use super::stats::fmt_num;

const W: f64 = 640.0;
const H: f64 = 380.0;
const LEFT: f64 = 70.0;
const RIGHT: f64 = 190.0; // legend column
const TOP: f64 = 30.0;
const BOTTOM: f64 = 50.0;
const COLORS: [&str; 10] = [
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22",
    "#17becf",
];

/// One named series of points; `err` (same length as `points`, may be empty) draws error bars.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub name: String,
    pub points: Vec<(f64, f64)>,
    pub err: Vec<f64>,
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// A tick label: the number format of the tables without trailing zeros (`30`, `0.15`).
fn tick_label(t: f64) -> String {
    let s = fmt_num(t);
    if s.contains('.') && !s.contains('e') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

/// About five round tick values covering `[lo, hi]`.
fn ticks(lo: f64, hi: f64) -> Vec<f64> {
    let span = (hi - lo).max(1e-12);
    let raw = span / 5.0;
    let mag = 10f64.powf(raw.log10().floor());
    let step =
        [1.0, 2.0, 2.5, 5.0, 10.0].iter().map(|m| m * mag).find(|s| span / s <= 6.0).unwrap_or(10.0 * mag);
    let mut t = (lo / step).ceil() * step;
    let mut out = vec![];
    while t <= hi + step * 1e-9 {
        out.push(if t.abs() < step * 1e-9 { 0.0 } else { t });
        t += step;
    }
    out
}

struct Frame {
    x0: f64,
    x1: f64,
    y0: f64,
    y1: f64,
}

impl Frame {
    fn px(&self, x: f64) -> f64 {
        LEFT + (x - self.x0) / (self.x1 - self.x0).max(1e-12) * (W - LEFT - RIGHT)
    }
    fn py(&self, y: f64) -> f64 {
        H - BOTTOM - (y - self.y0) / (self.y1 - self.y0).max(1e-12) * (H - TOP - BOTTOM)
    }
}

fn frame(series: &[Series], x_pad: f64) -> Frame {
    let xs = series.iter().flat_map(|s| s.points.iter().map(|p| p.0));
    let (mut x0, mut x1) = xs.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), x| (a.min(x), b.max(x)));
    let mut y0 = f64::INFINITY;
    let mut y1 = f64::NEG_INFINITY;
    for s in series {
        for (i, p) in s.points.iter().enumerate() {
            let e = s.err.get(i).copied().unwrap_or(0.0);
            y0 = y0.min(p.1 - e);
            y1 = y1.max(p.1 + e);
        }
    }
    if !x0.is_finite() {
        (x0, x1, y0, y1) = (0.0, 1.0, 0.0, 1.0);
    }
    if x1 - x0 < 1e-12 {
        x0 -= 0.5;
        x1 += 0.5;
    }
    if y1 - y0 < 1e-12 {
        y0 -= 0.5;
        y1 += 0.5;
    }
    let pad = (y1 - y0) * 0.05;
    let xp = (x1 - x0) * x_pad;
    Frame { x0: x0 - xp, x1: x1 + xp, y0: y0 - pad, y1: y1 + pad }
}

/// Axes, ticks, labels and title; `x_labels` replaces numeric x ticks (categorical axes).
fn axes(f: &Frame, title: &str, x_label: &str, y_label: &str, x_labels: Option<&[(f64, String)]>) -> String {
    let mut s = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{W}\" height=\"{H}\" viewBox=\"0 0 {W} {H}\" \
         font-family=\"sans-serif\" font-size=\"11\">\n<rect width=\"{W}\" height=\"{H}\" fill=\"white\"/>\n"
    );
    s += &format!(
        "<text x=\"{}\" y=\"18\" font-size=\"13\" text-anchor=\"middle\">{}</text>\n",
        (LEFT + W - RIGHT) / 2.0,
        esc(title)
    );
    let (xa, xb, ya, yb) = (LEFT, W - RIGHT, TOP, H - BOTTOM);
    s += &format!(
        "<rect x=\"{xa}\" y=\"{ya}\" width=\"{}\" height=\"{}\" fill=\"none\" stroke=\"#444\"/>\n",
        xb - xa,
        yb - ya
    );
    for t in ticks(f.y0, f.y1) {
        let y = f.py(t);
        s += &format!("<line x1=\"{xa}\" x2=\"{xb}\" y1=\"{y:.1}\" y2=\"{y:.1}\" stroke=\"#eee\"/>\n");
        s += &format!(
            "<text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>\n",
            xa - 4.0,
            y + 4.0,
            tick_label(t)
        );
    }
    let numeric: Vec<(f64, String)>;
    let labels = match x_labels {
        Some(l) => l,
        None => {
            numeric = ticks(f.x0, f.x1).into_iter().map(|t| (t, tick_label(t))).collect();
            &numeric
        }
    };
    for (t, label) in labels {
        let x = f.px(*t);
        s +=
            &format!("<line x1=\"{x:.1}\" x2=\"{x:.1}\" y1=\"{yb}\" y2=\"{}\" stroke=\"#444\"/>\n", yb + 4.0);
        s +=
            &format!("<text x=\"{x:.1}\" y=\"{}\" text-anchor=\"middle\">{}</text>\n", yb + 16.0, esc(label));
    }
    s += &format!(
        "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">{}</text>\n",
        (xa + xb) / 2.0,
        H - 12.0,
        esc(x_label)
    );
    s += &format!(
        "<text transform=\"translate(16,{}) rotate(-90)\" text-anchor=\"middle\">{}</text>\n",
        (ya + yb) / 2.0,
        esc(y_label)
    );
    s
}

fn legend(series: &[Series]) -> String {
    let mut s = String::new();
    for (i, se) in series.iter().enumerate() {
        let y = TOP + 8.0 + 16.0 * i as f64;
        let x = W - RIGHT + 12.0;
        let c = COLORS[i % COLORS.len()];
        s += &format!(
            "<line x1=\"{x}\" x2=\"{}\" y1=\"{y}\" y2=\"{y}\" stroke=\"{c}\" stroke-width=\"2\"/>\n",
            x + 16.0
        );
        let name: String = se.name.chars().take(26).collect();
        s += &format!("<text x=\"{}\" y=\"{}\">{}</text>\n", x + 20.0, y + 4.0, esc(&name));
    }
    s
}

/// Loss curves (or any y against step): one polyline per series.
pub fn line_chart(title: &str, x_label: &str, y_label: &str, series: &[Series]) -> String {
    let f = frame(series, 0.0);
    let mut s = axes(&f, title, x_label, y_label, None);
    for (i, se) in series.iter().enumerate() {
        let pts: Vec<String> =
            se.points.iter().map(|&(x, y)| format!("{:.1},{:.1}", f.px(x), f.py(y))).collect();
        s += &format!(
            "<polyline fill=\"none\" stroke=\"{}\" stroke-width=\"1.5\" points=\"{}\"/>\n",
            COLORS[i % COLORS.len()],
            pts.join(" ")
        );
    }
    s + &legend(series) + "</svg>\n"
}

/// Mean ± std against a swept value: markers, error bars, lines between points of a series.
/// `x_labels` names categorical positions (then point x values are the category indices).
pub fn error_bar_chart(
    title: &str,
    x_label: &str,
    y_label: &str,
    series: &[Series],
    x_labels: Option<&[(f64, String)]>,
) -> String {
    let f = frame(series, 0.08);
    let mut s = axes(&f, title, x_label, y_label, x_labels);
    for (i, se) in series.iter().enumerate() {
        let c = COLORS[i % COLORS.len()];
        let pts: Vec<String> =
            se.points.iter().map(|&(x, y)| format!("{:.1},{:.1}", f.px(x), f.py(y))).collect();
        if pts.len() > 1 {
            s += &format!(
                "<polyline fill=\"none\" stroke=\"{c}\" stroke-width=\"1.2\" points=\"{}\"/>\n",
                pts.join(" ")
            );
        }
        for (j, &(x, y)) in se.points.iter().enumerate() {
            let (px, py) = (f.px(x), f.py(y));
            if let Some(&e) = se.err.get(j).filter(|e| **e > 0.0) {
                let (top, bot) = (f.py(y + e), f.py(y - e));
                s += &format!(
                    "<path d=\"M{px:.1},{top:.1}V{bot:.1}M{:.1},{top:.1}H{:.1}M{:.1},{bot:.1}H{:.1}\" stroke=\"{c}\"/>\n",
                    px - 4.0,
                    px + 4.0,
                    px - 4.0,
                    px + 4.0
                );
            }
            s += &format!("<circle cx=\"{px:.1}\" cy=\"{py:.1}\" r=\"3.5\" fill=\"{c}\"/>\n");
        }
    }
    s + &legend(series) + "</svg>\n"
}
