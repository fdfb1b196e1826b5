//! Random scenes (coloured shapes in a 3x3 grid + one short string), their captions, and
//! questions with ground-truth answers (counting, colour, position, reading).

use crate::rng::Rng;

use super::render::Canvas;

pub const COLOURS: [(&str, [u8; 3]); 7] = [
    ("red", [220, 40, 40]),
    ("green", [40, 170, 60]),
    ("blue", [40, 80, 220]),
    ("yellow", [240, 200, 30]),
    ("purple", [140, 60, 180]),
    ("orange", [245, 130, 30]),
    ("black", [20, 20, 20]),
];
pub const SHAPES: [&str; 3] = ["circle", "square", "triangle"];
pub const CELLS: [&str; 9] =
    ["top left", "top", "top right", "left", "center", "right", "bottom left", "bottom", "bottom right"];
const GLYPHS: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZ23456789";
const NUMBERS: [&str; 10] = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"];

#[derive(Debug, Clone)]
pub struct Object {
    pub shape: usize,
    pub colour: usize,
    pub cell: usize,
}

#[derive(Debug, Clone)]
pub struct Scene {
    pub objects: Vec<Object>,
    pub text: String,
    pub text_cell: usize,
    /// Font scale relative to a 448-pixel image (1 = 8-pixel glyphs at 448).
    pub text_scale: usize,
    pub bg: [u8; 3],
    /// Per-object size within its cell, 0.5..0.85.
    sizes: Vec<f64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Qa {
    pub task: &'static str,
    /// What the task needs (`resolution`, `tokens`, `none`); `None` for the scene tasks, which are
    /// not certified either way (docs/data.md).
    pub gate: Option<&'static str>,
    pub question: String,
    pub answers: Vec<String>,
}

impl Scene {
    pub fn sample(rng: &mut Rng) -> Self {
        let mut cells: Vec<usize> = (0..9).collect();
        rng.shuffle(&mut cells);
        let n = 1 + rng.below(5);
        let objects: Vec<Object> = (0..n)
            .map(|i| Object { shape: rng.below(3), colour: rng.below(COLOURS.len()), cell: cells[i] })
            .collect();
        let len = 2 + rng.below(3);
        let text = (0..len).map(|_| GLYPHS[rng.below(GLYPHS.len())] as char).collect();
        let sizes = (0..n).map(|_| 0.5 + 0.35 * rng.next_f64()).collect();
        let g = 200 + rng.below(40) as u8;
        Scene {
            objects,
            text,
            text_cell: cells[n],
            text_scale: 1 + rng.below(4),
            bg: [g, g, g.saturating_sub(10)],
            sizes,
        }
    }

    pub fn render(&self, size: usize) -> Canvas {
        let mut c = Canvas::new(size, size, self.bg);
        let cell = size as f64 / 3.0;
        let centre = |i: usize| (((i % 3) as f64 + 0.5) * cell, ((i / 3) as f64 + 0.5) * cell);
        for (o, s) in self.objects.iter().zip(&self.sizes) {
            let (cx, cy) = centre(o.cell);
            let r = (cell * s / 2.0) as i64;
            let col = COLOURS[o.colour].1;
            match o.shape {
                0 => c.fill_circle(cx as i64, cy as i64, r, col),
                1 => c.fill_rect(cx as i64 - r, cy as i64 - r, 2 * r, 2 * r, col),
                _ => c.fill_triangle(cx as i64, cy as i64, r, col),
            }
        }
        let scale = ((self.text_scale * size) as f64 / 448.0).round().max(1.0) as i64;
        let w = self.text.len() as i64 * 8 * scale;
        let (cx, cy) = centre(self.text_cell);
        // small images: 8-pixel glyphs may be wider than a cell; keep the string inside the image
        let x0 = (cx as i64 - w / 2).clamp(0, (size as i64 - w).max(0));
        let y0 = (cy as i64 - 4 * scale).clamp(0, (size as i64 - 8 * scale).max(0));
        c.text(x0, y0, &self.text, scale, [10, 10, 10]);
        c
    }

    fn count(&self, shape: usize) -> usize {
        self.objects.iter().filter(|o| o.shape == shape).count()
    }

    /// "2 red circles, a blue square and a green triangle".
    pub fn object_phrase(&self) -> String {
        let mut groups: Vec<(usize, usize, usize)> = Vec::new(); // (colour, shape, count)
        for o in &self.objects {
            match groups.iter_mut().find(|g| g.0 == o.colour && g.1 == o.shape) {
                Some(g) => g.2 += 1,
                None => groups.push((o.colour, o.shape, 1)),
            }
        }
        let parts: Vec<String> = groups
            .iter()
            .map(|&(c, s, n)| {
                if n == 1 {
                    format!("a {} {}", COLOURS[c].0, SHAPES[s])
                } else {
                    format!("{n} {} {}s", COLOURS[c].0, SHAPES[s])
                }
            })
            .collect();
        match parts.len() {
            1 => parts[0].clone(),
            k => format!("{} and {}", parts[..k - 1].join(", "), parts[k - 1]),
        }
    }

    /// Three reference captions (the first is the training caption).
    pub fn captions(&self) -> Vec<String> {
        let objs = self.object_phrase();
        let where_: Vec<String> = self
            .objects
            .iter()
            .map(|o| format!("a {} {} at the {}", COLOURS[o.colour].0, SHAPES[o.shape], CELLS[o.cell]))
            .collect();
        vec![
            format!("{objs}. the text reads {}.", self.text),
            format!(
                "a picture of {objs} with the word {} written at the {}.",
                self.text, CELLS[self.text_cell]
            ),
            format!("{}. it says {}.", where_.join(", "), self.text),
        ]
    }

    /// One question per task, ground truth included.
    pub fn questions(&self, rng: &mut Rng) -> Vec<Qa> {
        let shape = rng.below(3);
        let n = self.count(shape);
        let mut qas = vec![Qa {
            task: "counting",
            gate: None,
            question: format!("how many {}s are there?", SHAPES[shape]),
            answers: vec![n.to_string(), NUMBERS[n].to_string()],
        }];
        let unique: Vec<&Object> = self.objects.iter().filter(|o| self.count(o.shape) == 1).collect();
        if !unique.is_empty() {
            let o = unique[rng.below(unique.len())];
            qas.push(Qa {
                task: "colour",
                gate: None,
                question: format!("what colour is the {}?", SHAPES[o.shape]),
                answers: vec![COLOURS[o.colour].0.to_string()],
            });
            let o = unique[rng.below(unique.len())];
            qas.push(Qa {
                task: "position",
                gate: None,
                question: format!("where is the {}?", SHAPES[o.shape]),
                answers: vec![CELLS[o.cell].to_string()],
            });
        }
        qas.push(Qa {
            task: "reading",
            gate: None,
            question: "what does the text say?".into(),
            answers: vec![self.text.clone(), self.text.to_lowercase()],
        });
        qas
    }
}

/// A text-only document in the same vocabulary: scene descriptions and arithmetic facts.
pub fn text_document(rng: &mut Rng) -> String {
    let mut out = Vec::new();
    for _ in 0..3 + rng.below(6) {
        if rng.below(2) == 0 {
            let (a, b) = (rng.below(10), rng.below(10));
            out.push(match rng.below(3) {
                0 => format!("{a} plus {b} is {}.", a + b),
                1 if a >= b => format!("{a} minus {b} is {}.", a - b),
                _ => format!("{} times {} is {}.", a, b, a * b),
            });
        } else {
            let s = Scene::sample(rng);
            out.push(format!("there are {}. the sign says {}.", s.object_phrase(), s.text));
        }
    }
    out.join(" ")
}
