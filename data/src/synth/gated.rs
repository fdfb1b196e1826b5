//! Scenes whose answers depend on what an ablation changes (issue #15, item 2), each question tagged
//! with what it needs (`gate`): `resolution`, `tokens`, or `none` for the controls.
//!
//! Rendered at the benchmark's native size `n` (`[data.synth] image_size`, which should be the
//! largest resolution arm) and stored as PNG, so the only loss is the loader's own resize:
//! - `stripes` (`resolution`): 1-px stripes, horizontal or vertical, around a random background
//!   colour, over the whole picture. Catmull-Rom at a 2x downscale
//!   puts each output pixel between two source rows with symmetric weights, so every weight pair
//!   covers one dark and one light stripe and the field comes out flat (at `n/2` the answer is
//!   gone). The stripe contrast ramps in over 8 px from the edge with a raised cosine, so the
//!   edge keeps no orientation either: Catmull-Rom reproduces linear ramps, and what is left of a
//!   smooth ramp is below one grey level (measured by `mm1-data probe`, docs/data.md).
//! - `patch_colour` (`none`): the whole picture one flat tint of four, with a film grain
//!   ([`GRAIN`]), "what colour is the patch?": a downscale keeps the mean, so the answer survives
//!   every arm; the control that must stay flat while `stripes` moves.
//!
//!   Both (nearly) fill the frame since generator 7. As squares of a quarter to half the side at
//!   a random place, the CPU-scale model learnt them in some seeds only (stripes in 5 of 20 runs
//!   at 64 px, the tint in about 60 %): it must first learn where to look. Filling the frame, both
//!   were learnt in every seed (docs/data.md, "Gated tasks"). A film grain keeps every image
//!   unique ([`GRAIN`]).
//! - `row_index` (`tokens`) and `row_colour` (`none`), two questions on one scene since generator
//!   8: an 8x8 grid of grey cells (`n/8` px each: one ViT patch each at 64 px and patch 8) whose
//!   cells in one row are red, green, blue or yellow. "which row is coloured?" needs the place of
//!   one row of patches: 64 image tokens keep it (8 coloured tokens at their own places), 16 keep
//!   it to 2 rows (a 4x4 pooling puts two rows in one token) and 4 only to the half (2x2 tokens
//!   average four rows each), so a pooled read-out is capped at 0.5 and 0.25. "what colour is the
//!   coloured row?" survives any pooling (the average keeps the colour): the control that must
//!   stay flat across token counts.
//!
//!   A row, not one cell: with a single coloured cell, "which row is the coloured cell in?" was
//!   learnt at 64 tokens in 2 of 3 seeds, its column in none (generator 8 drafts, docs/data.md
//!   "Gated tasks"). Generator 7's `grid` ("what colour is the top left cell?" of an 8x8 grid of
//!   four colours) was learnt by no CPU-scale run at 4, 16 or 64 tokens.

use crate::rng::Rng;

use super::render::Canvas;
use super::scene::Qa;

/// Colours of the coloured row of a `row_index` / `row_colour` scene.
pub const ROW_COLOURS: [(&str, [u8; 3]); 4] =
    [("red", [220, 40, 40]), ("green", [40, 170, 60]), ("blue", [40, 80, 220]), ("yellow", [240, 200, 30])];
/// Tints of the `patch_colour` square, 96 levels apart per channel.
pub const TINTS: [(&str, [u8; 3]); 4] =
    [("red", [176, 80, 80]), ("green", [80, 176, 80]), ("blue", [80, 80, 176]), ("yellow", [176, 176, 80])];
/// Rows and columns of a coloured-row grid.
const GRID: usize = 8;
const ORIENTATIONS: [&str; 2] = ["horizontal", "vertical"];

/// A gated task: its name (the eval items' `task`) and what it needs (`gate`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GatedTask {
    pub name: &'static str,
    pub gate: &'static str,
}

pub const STRIPES: GatedTask = GatedTask { name: "stripes", gate: "resolution" };
pub const PATCH_COLOUR: GatedTask = GatedTask { name: "patch_colour", gate: "none" };
pub const ROW_INDEX: GatedTask = GatedTask { name: "row_index", gate: "tokens" };
pub const ROW_COLOUR: GatedTask = GatedTask { name: "row_colour", gate: "none" };
pub const GATED_TASKS: [GatedTask; 4] = [STRIPES, PATCH_COLOUR, ROW_INDEX, ROW_COLOUR];
/// Answers of `row_index`, top to bottom.
pub const ROWS: [&str; GRID] = ["first", "second", "third", "fourth", "fifth", "sixth", "seventh", "eighth"];
/// Grey levels of a coloured-row scene's cells: the scene's background level plus a jitter of up
/// to this many levels per cell, so that no two scenes are equal.
const GREY_JITTER: usize = 8;

impl GatedTask {
    pub fn by_name(name: &str) -> Option<GatedTask> {
        GATED_TASKS.iter().copied().find(|t| t.name == name)
    }

    /// The closed answer set (first answers), in a fixed order.
    pub fn classes(&self) -> Vec<&'static str> {
        match self.name {
            "row_colour" => ROW_COLOURS.iter().map(|c| c.0).collect(),
            "row_index" => ROWS.to_vec(),
            "patch_colour" => TINTS.iter().map(|c| c.0).collect(),
            _ => ORIENTATIONS.to_vec(),
        }
    }
}

#[derive(Debug, Clone)]
pub enum GatedScene {
    /// 1-px stripes in the rectangle at `(x0, y0)` of size `w`x`h` on a background of colour
    /// `bg`; stripes are `bg -+ contrast` in every channel. The grain of seed `grain` covers
    /// only the pixels at least `GRAIN_INSET` from every edge of the picture (see [`GRAIN`]).
    Stripes {
        horizontal: bool,
        x0: usize,
        y0: usize,
        w: usize,
        h: usize,
        bg: [u8; 3],
        contrast: u8,
        grain: u64,
    },
    /// A flat square of colour `TINTS[tint]` on a grey background of level `bg`, with the film
    /// grain of seed `grain`.
    Patch { tint: usize, x0: usize, y0: usize, side: usize, bg: u8, grain: u64 },
    /// An 8x8 grid of grey cells (levels row by row) whose row `row` is `ROW_COLOURS[colour]`;
    /// `ask_index` says which question [`Self::question`] asks (`row_index` or `row_colour`).
    ColouredRow { greys: Vec<u8>, row: usize, colour: usize, ask_index: bool },
}

/// Film grain of a `patch_colour` scene: every pixel moves by a uniform `-GRAIN..=GRAIN` grey
/// levels (the same in its three channels), drawn from the scene's own seed. Without it a
/// full-frame tint has four possible images (`data/tests/synth.rs` checks that no two images of
/// the benchmark are equal). The stripes get it only [`GRAIN_INSET`] px or more inside the
/// picture: what the resize leaves of them near the edge (the raised-cosine ramp, under a grey
/// level) is removed by the 8-bit rounding, but a grain there dithers that rounding, and a
/// linear probe then read the orientation at 32 px (0.76 on 400 test scenes, majority 0.54).
/// Inside, the stripes are at full contrast and cancel exactly in the resize, grain or not.
pub const GRAIN: u8 = 4;
/// Distance from the edge of the stripes' grain: the ramp (8 px) plus the reach of a 2x
/// Catmull-Rom downscale on both sides of an output pixel (4 + 4 px).
pub const GRAIN_INSET: usize = 16;

/// `GRAIN` noise in levels for each pixel of an `n`x`n` picture, row by row; 0 closer than
/// `inset` to an edge.
fn grain_field(seed: u64, n: usize, inset: usize) -> Vec<f64> {
    let mut rng = Rng::from_words(&[seed]);
    let span = 2 * GRAIN as usize + 1;
    let inner = |i: usize| i >= inset && i + inset < n;
    (0..n * n)
        .map(|i| {
            let noise = rng.below(span) as f64 - GRAIN as f64;
            if inner(i % n) && inner(i / n) { noise } else { 0.0 }
        })
        .collect()
}

/// An `n`x`n` picture of `level(x, y)` (RGB, in grey levels) plus the grain of seed `grain`
/// from `inset` px inside, rounded and clamped to 8 bits.
fn render_levels(n: usize, (grain, inset): (u64, usize), level: impl Fn(usize, usize) -> [f64; 3]) -> Canvas {
    let noise = grain_field(grain, n, inset);
    let mut c = Canvas::new(n, n, [0; 3]);
    for y in 0..n {
        for x in 0..n {
            let v = level(x, y).map(|l| (l + noise[y * n + x]).round().clamp(0.0, 255.0) as u8);
            c.fill_rect(x as i64, y as i64, 1, 1, v);
        }
    }
    c
}

/// Raised-cosine ramp over the first and last `RAMP` pixels of a patch of side `side`.
const RAMP: usize = 8;
fn envelope(i: usize, side: usize) -> f64 {
    let d = i.min(side - 1 - i) as f64 + 0.5;
    if d >= RAMP as f64 { 1.0 } else { 0.5 - 0.5 * (std::f64::consts::PI * d / RAMP as f64).cos() }
}

impl GatedScene {
    /// A scene of `task` for native size `n` (>= 24).
    pub fn sample(task: GatedTask, n: usize, rng: &mut Rng) -> Self {
        match task.name {
            "row_index" | "row_colour" => {
                let bg = 90 + rng.below(77);
                let jitter = 2 * GREY_JITTER + 1;
                GatedScene::ColouredRow {
                    greys: (0..GRID * GRID).map(|_| (bg + rng.below(jitter) - GREY_JITTER) as u8).collect(),
                    row: rng.below(GRID),
                    colour: rng.below(ROW_COLOURS.len()),
                    ask_index: task == ROW_INDEX,
                }
            }
            _ => {
                if task == PATCH_COLOUR {
                    // The whole frame.
                    GatedScene::Patch {
                        tint: rng.below(TINTS.len()),
                        x0: 0,
                        y0: 0,
                        side: n,
                        bg: 100 + rng.below(57) as u8,
                        grain: rng.next_u64(),
                    }
                } else {
                    // The whole frame; the corner (0, 0) keeps the stripes' phase fixed on the
                    // pixel grid (dark on even rows and columns). (A centred rectangle with a flat
                    // border of 8-16 px was not learnt: 0.49 and 0.53 in 2 seeds at 64 px.)
                    GatedScene::Stripes {
                        horizontal: rng.below(2) == 0,
                        x0: 0,
                        y0: 0,
                        w: n,
                        h: n,
                        bg: std::array::from_fn(|_| 100 + rng.below(57) as u8),
                        contrast: 60 + rng.below(31) as u8,
                        grain: rng.next_u64(),
                    }
                }
            }
        }
    }

    pub fn task(&self) -> GatedTask {
        match self {
            GatedScene::Stripes { .. } => STRIPES,
            GatedScene::Patch { .. } => PATCH_COLOUR,
            GatedScene::ColouredRow { ask_index: true, .. } => ROW_INDEX,
            GatedScene::ColouredRow { ask_index: false, .. } => ROW_COLOUR,
        }
    }

    pub fn render(&self, n: usize) -> Canvas {
        match self {
            &GatedScene::Stripes { horizontal, x0, y0, w, h, bg, contrast, grain } => {
                // Stripe offset in levels at (x, y): 0 outside the rectangle.
                let stripe = |x: usize, y: usize| {
                    let inside = (x0..x0 + w).contains(&x) && (y0..y0 + h).contains(&y);
                    if !inside {
                        return 0.0;
                    }
                    let along = if horizontal { y } else { x };
                    let sign = if along.is_multiple_of(2) { -1.0 } else { 1.0 };
                    sign * contrast as f64 * envelope(x - x0, w) * envelope(y - y0, h)
                };
                render_levels(n, (grain, GRAIN_INSET), |x, y| bg.map(|g| g as f64 + stripe(x, y)))
            }
            &GatedScene::Patch { tint, x0, y0, side, bg, grain } => {
                let inside =
                    |x: usize, y: usize| (x0..x0 + side).contains(&x) && (y0..y0 + side).contains(&y);
                let rgb = |x, y| if inside(x, y) { TINTS[tint].1 } else { [bg; 3] };
                render_levels(n, (grain, 0), |x, y| rgb(x, y).map(f64::from))
            }
            GatedScene::ColouredRow { greys, row, colour, .. } => {
                let mut c = Canvas::new(n, n, [0; 3]);
                for (i, &g) in greys.iter().enumerate() {
                    let (r, col) = (i / GRID, i % GRID);
                    let (x0, x1) = (col * n / GRID, (col + 1) * n / GRID);
                    let (y0, y1) = (r * n / GRID, (r + 1) * n / GRID);
                    let rgb = if r == *row { ROW_COLOURS[*colour].1 } else { [g; 3] };
                    c.fill_rect(x0 as i64, y0 as i64, (x1 - x0) as i64, (y1 - y0) as i64, rgb);
                }
                c
            }
        }
    }

    /// The task's question with its ground truth, tagged with the task's gate.
    pub fn question(&self) -> Qa {
        let t = self.task();
        match self {
            GatedScene::Stripes { horizontal, .. } => Qa {
                task: t.name,
                gate: Some(t.gate),
                question: "are the thin stripes horizontal or vertical?".into(),
                answers: vec![ORIENTATIONS[usize::from(!horizontal)].into()],
            },
            GatedScene::Patch { tint, .. } => Qa {
                task: t.name,
                gate: Some(t.gate),
                question: "what colour is the patch?".into(),
                answers: vec![TINTS[*tint].0.into()],
            },
            &GatedScene::ColouredRow { row, colour, ask_index, .. } => {
                coloured_row_qa(row, colour, ask_index)
            }
        }
    }

    /// Training questions: the task's question, and for a coloured row also the other one (its
    /// place or its colour).
    pub fn questions(&self) -> Vec<Qa> {
        let mut qas = vec![self.question()];
        if let &GatedScene::ColouredRow { row, colour, ask_index, .. } = self {
            qas.push(coloured_row_qa(row, colour, !ask_index));
        }
        qas
    }

    /// Three reference captions (the first is the training caption).
    pub fn captions(&self) -> Vec<String> {
        match self {
            GatedScene::ColouredRow { row, colour, .. } => {
                let (c, k) = (ROW_COLOURS[*colour].0, ROWS[*row]);
                vec![
                    format!("a grey grid whose {k} row is {c}."),
                    format!("{c} cells fill the {k} row of a grey grid."),
                    format!("the {k} row is {c}."),
                ]
            }
            GatedScene::Stripes { horizontal, .. } => {
                let o = ORIENTATIONS[usize::from(!horizontal)];
                vec![
                    format!("thin {o} stripes."),
                    format!("a grey picture with a patch of thin {o} stripes."),
                    format!("the stripes are thin and {o}."),
                ]
            }
            GatedScene::Patch { tint, .. } => {
                let c = TINTS[*tint].0;
                vec![
                    format!("a {c} patch."),
                    format!("a grey picture with a {c} square."),
                    format!("the patch is {c}."),
                ]
            }
        }
    }
}

/// The question of a coloured-row scene: its place (`row_index`) or its colour (`row_colour`).
fn coloured_row_qa(row: usize, colour: usize, ask_index: bool) -> Qa {
    let t = if ask_index { ROW_INDEX } else { ROW_COLOUR };
    let (question, answer) = if ask_index {
        ("which row is coloured?", ROWS[row])
    } else {
        ("what colour is the coloured row?", ROW_COLOURS[colour].0)
    };
    Qa { task: t.name, gate: Some(t.gate), question: question.into(), answers: vec![answer.into()] }
}
