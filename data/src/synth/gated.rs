//! Scenes whose answers depend on what an ablation changes (issue #15, item 2), each question tagged
//! with what it needs (`gate`): `resolution`, `tokens`, or `none` for the controls.
//!
//! Rendered at the benchmark's native size `n` (`[data.synth] image_size`, which should be the
//! largest resolution arm) and stored as PNG, so the only loss is the loader's own resize:
//! - `stripes` (`resolution`): a square patch of 1-px stripes, horizontal or vertical, on a grey
//!   background. Catmull-Rom at a 2x downscale puts each output pixel between two source rows with
//!   symmetric weights, so every weight pair covers one dark and one light stripe and the interior
//!   comes out flat (at `n/2` the answer is gone). The stripe contrast ramps in over 8 px with a
//!   raised cosine, so the patch border keeps no orientation either: Catmull-Rom reproduces linear
//!   ramps, and what is left of a smooth ramp is below one grey level (measured by `mm1-data
//!   probe`, docs/data.md).
//! - `patch_colour` (`none`): a flat square of the same sizes and places, in one of four tints,
//!   "what colour is the patch?": a downscale keeps the mean, so the answer survives every arm; the
//!   control that must stay flat while `stripes` moves. Its own scenes, not the striped ones: on
//!   one scene, the CPU-scale model learnt whichever of tint and stripes had the larger pixel
//!   contrast and not the other (docs/data.md, "Gated tasks").
//! - `grid` (`tokens`): an 8x8 grid of coloured cells (`n/8` px each), "what colour is the top left
//!   cell?" (one of the four corners): the pixels keep it at every arm, but a connector that pools
//!   the grid into 2x2 tokens averages each corner cell with 15 others. (Questions naming any
//!   row and column were not learnt by the CPU-scale model at 64 tokens either: 0.29 against
//!   0.26 for a blank image after 3000 steps; a corner is a fixed place to look.)

use crate::rng::Rng;

use super::render::Canvas;
use super::scene::Qa;

/// Colours of the grid cells.
pub const GRID_COLOURS: [(&str, [u8; 3]); 4] =
    [("red", [220, 40, 40]), ("green", [40, 170, 60]), ("blue", [40, 80, 220]), ("yellow", [240, 200, 30])];
/// Tints of the `patch_colour` square, 96 levels apart per channel.
pub const TINTS: [(&str, [u8; 3]); 4] =
    [("red", [176, 80, 80]), ("green", [80, 176, 80]), ("blue", [80, 80, 176]), ("yellow", [176, 176, 80])];
const GRID: usize = 8;
/// The cells a grid question can name: (row, column, words).
const CORNERS: [(usize, usize, &str); 4] = [
    (0, 0, "top left"),
    (0, GRID - 1, "top right"),
    (GRID - 1, 0, "bottom left"),
    (GRID - 1, GRID - 1, "bottom right"),
];
const ORIENTATIONS: [&str; 2] = ["horizontal", "vertical"];

/// A gated task: its name (the eval items' `task`) and what it needs (`gate`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GatedTask {
    pub name: &'static str,
    pub gate: &'static str,
}

pub const STRIPES: GatedTask = GatedTask { name: "stripes", gate: "resolution" };
pub const PATCH_COLOUR: GatedTask = GatedTask { name: "patch_colour", gate: "none" };
pub const GRID_CELL: GatedTask = GatedTask { name: "grid", gate: "tokens" };
pub const GATED_TASKS: [GatedTask; 3] = [STRIPES, PATCH_COLOUR, GRID_CELL];

impl GatedTask {
    pub fn by_name(name: &str) -> Option<GatedTask> {
        GATED_TASKS.iter().copied().find(|t| t.name == name)
    }

    /// The closed answer set (first answers), in a fixed order.
    pub fn classes(&self) -> Vec<&'static str> {
        match self.name {
            "grid" => GRID_COLOURS.iter().map(|c| c.0).collect(),
            "patch_colour" => TINTS.iter().map(|c| c.0).collect(),
            _ => ORIENTATIONS.to_vec(),
        }
    }
}

#[derive(Debug, Clone)]
pub enum GatedScene {
    /// 1-px stripes in a square at `(x0, y0)` of side `side` on a background of colour `bg`;
    /// stripes are `bg -+ contrast` in every channel.
    Stripes { horizontal: bool, x0: usize, y0: usize, side: usize, bg: [u8; 3], contrast: u8 },
    /// A flat square of colour `TINTS[tint]` on a grey background of level `bg`.
    Patch { tint: usize, x0: usize, y0: usize, side: usize, bg: u8 },
    /// Cell colours row by row, and the corner the question asks about (index into `CORNERS`).
    Grid { cells: Vec<usize>, ask: usize },
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
            "grid" => GatedScene::Grid {
                cells: (0..GRID * GRID).map(|_| rng.below(GRID_COLOURS.len())).collect(),
                ask: 0,
            },
            _ => {
                // A quarter to half the image, a multiple of 8 px; even corners keep the stripes'
                // phase fixed on the pixel grid (dark on even rows/columns).
                let sides: Vec<usize> = (1..=n / 16).map(|k| 8 * k).filter(|s| 4 * s >= n).collect();
                let side = if sides.is_empty() { 8 } else { sides[rng.below(sides.len())] };
                let pos = |rng: &mut Rng| 2 * rng.below((n - side) / 2 + 1);
                let (x0, y0) = (pos(rng), pos(rng));
                if task == PATCH_COLOUR {
                    GatedScene::Patch {
                        tint: rng.below(TINTS.len()),
                        x0,
                        y0,
                        side,
                        bg: 100 + rng.below(57) as u8,
                    }
                } else {
                    GatedScene::Stripes {
                        horizontal: rng.below(2) == 0,
                        x0,
                        y0,
                        side,
                        bg: std::array::from_fn(|_| 100 + rng.below(57) as u8),
                        contrast: 60 + rng.below(31) as u8,
                    }
                }
            }
        }
    }

    pub fn task(&self) -> GatedTask {
        match self {
            GatedScene::Stripes { .. } => STRIPES,
            GatedScene::Patch { .. } => PATCH_COLOUR,
            GatedScene::Grid { .. } => GRID_CELL,
        }
    }

    pub fn render(&self, n: usize) -> Canvas {
        match self {
            &GatedScene::Stripes { horizontal, x0, y0, side, bg, contrast } => {
                let mut c = Canvas::new(n, n, bg);
                for dy in 0..side.min(n - y0) {
                    for dx in 0..side.min(n - x0) {
                        let (x, y) = (x0 + dx, y0 + dy);
                        let along = if horizontal { y } else { x };
                        let sign = if along.is_multiple_of(2) { -1.0 } else { 1.0 };
                        let a = contrast as f64 * envelope(dx, side) * envelope(dy, side);
                        let v = bg.map(|g| (g as f64 + sign * a).round().clamp(0.0, 255.0) as u8);
                        c.fill_rect(x as i64, y as i64, 1, 1, v);
                    }
                }
                c
            }
            &GatedScene::Patch { tint, x0, y0, side, bg } => {
                let mut c = Canvas::new(n, n, [bg; 3]);
                c.fill_rect(x0 as i64, y0 as i64, side as i64, side as i64, TINTS[tint].1);
                c
            }
            GatedScene::Grid { cells, .. } => {
                let mut c = Canvas::new(n, n, [0; 3]);
                for (i, &colour) in cells.iter().enumerate() {
                    let (r, col) = (i / GRID, i % GRID);
                    let (x0, x1) = (col * n / GRID, (col + 1) * n / GRID);
                    let (y0, y1) = (r * n / GRID, (r + 1) * n / GRID);
                    let rgb = GRID_COLOURS[colour].1;
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
            GatedScene::Grid { cells, ask } => {
                let (r, c, words) = CORNERS[*ask];
                Qa {
                    task: t.name,
                    gate: Some(t.gate),
                    question: format!("what colour is the {words} cell?"),
                    answers: vec![GRID_COLOURS[cells[r * GRID + c]].0.to_string()],
                }
            }
        }
    }

    /// Training questions: the task's question, and for a grid two more corners drawn from `rng`.
    pub fn questions(&self, rng: &mut Rng) -> Vec<Qa> {
        let mut qas = vec![self.question()];
        if let GatedScene::Grid { cells, .. } = self {
            for _ in 0..2 {
                let other = GatedScene::Grid { cells: cells.clone(), ask: rng.below(CORNERS.len()) };
                qas.push(other.question());
            }
        }
        qas
    }

    /// Three reference captions (the first is the training caption).
    pub fn captions(&self) -> Vec<String> {
        match self {
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
            GatedScene::Grid { cells, .. } => {
                let name = |r: usize, c: usize| GRID_COLOURS[cells[r * GRID + c]].0;
                let (l, b) = (GRID - 1, GRID - 1);
                vec![
                    format!(
                        "a grid of 8 by 8 coloured cells. the top left cell is {} and the bottom right cell is {}.",
                        name(0, 0),
                        name(l, b)
                    ),
                    format!(
                        "a checkered grid whose corner cells are {}, {}, {} and {}.",
                        name(0, 0),
                        name(0, b),
                        name(l, 0),
                        name(l, b)
                    ),
                    format!("coloured squares in 8 rows and 8 columns, starting with {}.", name(0, 0)),
                ]
            }
        }
    }
}
