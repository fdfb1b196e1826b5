//! Drawing into an RGB8 canvas: filled shapes and `font8x8` text at an integer scale.

use font8x8::UnicodeFonts;

/// Interleaved RGB8, `w * h * 3` bytes.
pub struct Canvas {
    pub w: usize,
    pub h: usize,
    pub px: Vec<u8>,
}

impl Canvas {
    pub fn new(w: usize, h: usize, bg: [u8; 3]) -> Self {
        let mut px = Vec::with_capacity(w * h * 3);
        for _ in 0..w * h {
            px.extend_from_slice(&bg);
        }
        Self { w, h, px }
    }

    fn set(&mut self, x: i64, y: i64, c: [u8; 3]) {
        if x >= 0 && y >= 0 && (x as usize) < self.w && (y as usize) < self.h {
            let i = (y as usize * self.w + x as usize) * 3;
            self.px[i..i + 3].copy_from_slice(&c);
        }
    }

    pub fn fill_rect(&mut self, x0: i64, y0: i64, w: i64, h: i64, c: [u8; 3]) {
        for y in y0..y0 + h {
            for x in x0..x0 + w {
                self.set(x, y, c);
            }
        }
    }

    /// Disc centred at `(cx, cy)`.
    pub fn fill_circle(&mut self, cx: i64, cy: i64, r: i64, c: [u8; 3]) {
        for y in -r..=r {
            for x in -r..=r {
                if x * x + y * y <= r * r {
                    self.set(cx + x, cy + y, c);
                }
            }
        }
    }

    /// Upward triangle inscribed in the square of side `2r` centred at `(cx, cy)`.
    pub fn fill_triangle(&mut self, cx: i64, cy: i64, r: i64, c: [u8; 3]) {
        for dy in 0..=2 * r {
            let half = dy / 2; // width grows linearly from the apex
            for dx in -half..=half {
                self.set(cx + dx, cy - r + dy, c);
            }
        }
    }

    /// Draws `text` with the 8x8 font, each font pixel a `scale x scale` block; returns the width.
    pub fn text(&mut self, x0: i64, y0: i64, text: &str, scale: i64, c: [u8; 3]) -> i64 {
        for (i, ch) in text.chars().enumerate() {
            let glyph = font8x8::BASIC_FONTS.get(ch).unwrap_or([0; 8]);
            for (row, bits) in glyph.iter().enumerate() {
                for col in 0..8 {
                    if bits & (1 << col) != 0 {
                        let x = x0 + (i as i64 * 8 + col) * scale;
                        self.fill_rect(x, y0 + row as i64 * scale, scale, scale, c);
                    }
                }
            }
        }
        text.chars().count() as i64 * 8 * scale
    }

    /// Lossless: the gated tasks' pixels must reach the loader's resize unchanged.
    pub fn encode_png(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode_with(image::codecs::png::PngEncoder::new(&mut out));
        out
    }

    pub fn encode_jpeg(&self, quality: u8) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode_with(image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, quality));
        out
    }

    fn encode_with(&self, encoder: impl image::ImageEncoder) {
        encoder
            .write_image(&self.px, self.w as u32, self.h as u32, image::ExtendedColorType::Rgb8)
            .expect("encoding an in-memory RGB8 buffer of matching size cannot fail");
    }
}
