//! Resize to the encoder's square input: torchvision's `Resize(s, BICUBIC)` + `CenterCrop(s)` (the
//! transform of openai/CLIP `clip.py` and of MM1's encoder), or a plain squash to `s x s`.
//!
//! The centre crop is computed as torchvision does (`transforms/functional.py`:
//! `_compute_resized_output_size` and `center_crop`), then only the `s x s` window of the virtual
//! resized image is filtered: `fast_image_resize` places output pixel `j` of a crop box starting at
//! `x0` with scale `k` at source centre `x0 + (j + 0.5) k` and clamps the filter support to the
//! whole source image, not to the box (`convolution::precompute_coefficients`). With `x0 = left·w/rw`
//! and `k = w/rw` that is exactly the centre of resized pixel `left + j`, so the crop reads the same
//! source pixels with the same weights as resizing everything and cropping afterwards, without
//! filtering the `rw − s` columns that are thrown away (a 1×4000 image at 448 px would otherwise be
//! resized to 448×1 792 000).

use std::cell::RefCell;

use fast_image_resize::images::{Image, ImageRef};
use fast_image_resize::{FilterType, PixelType, ResizeAlg, ResizeOptions, Resizer};

use super::{ImageError, Rgb8, corrupt};
use crate::config::ResizeMode;

thread_local! {
    // One resizer per decode worker: it keeps its scratch buffers between images.
    static RESIZER: RefCell<Resizer> = RefCell::new(Resizer::new());
}

/// Where torchvision's `Resize(size)` + `CenterCrop(size)` puts a `width x height` image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CentreCrop {
    /// Size after `Resize(size)`: the shortest side becomes `size`, the other
    /// `int(size * long / short)` (truncated, as torchvision and HF's CLIPImageProcessor do).
    pub resized: (usize, usize),
    /// Top-left corner of the `size x size` crop in the resized image:
    /// `int(round((resized - size) / 2))`, Python's `round` (half to even).
    pub offset: (usize, usize),
}

impl CentreCrop {
    pub fn new(width: usize, height: usize, size: usize) -> Self {
        let (short, long) = (width.min(height), width.max(height));
        // f64 holds every product here exactly and the division is correctly rounded, so
        // `new_long >= size` whenever `long >= short` (the true quotient is at least `size`).
        let new_long = (size as f64 * long as f64 / short as f64) as usize;
        let resized = if width <= height { (size, new_long) } else { (new_long, size) };
        let offset_of = |len: usize| ((len - size) as f64 / 2.0).round_ties_even() as usize;
        Self { resized, offset: (offset_of(resized.0), offset_of(resized.1)) }
    }

    /// The source window `[x0, x1) x [y0, y1)` (fractional source pixels) whose resize to
    /// `size x size` equals the crop. Always inside the image: with `left + size <= rw`,
    /// `(left + size)·w / rw <= w` holds after rounding too, since `(left + size)·w` and `rw·w`
    /// are exact in f64 and correctly rounded division is monotonic (`w` itself is representable).
    fn source_window(&self, width: usize, height: usize, size: usize) -> [f64; 4] {
        let axis = |len: usize, resized: usize, offset: usize| {
            let (len, resized) = (len as f64, resized as f64);
            let lo = offset as f64 * len / resized;
            let hi = ((offset + size) as f64 * len / resized).min(len);
            (lo, hi)
        };
        let (x0, x1) = axis(width, self.resized.0, self.offset.0);
        let (y0, y1) = axis(height, self.resized.1, self.offset.1);
        [x0, y0, x1, y1]
    }
}

/// Resizes to `size x size` with bicubic (Catmull-Rom, PIL's `BICUBIC`) filtering: shortest side +
/// centre crop as CLIP's `Resize(BICUBIC) + CenterCrop`, or squash.
pub fn resize_rgb8(img: &Rgb8, size: usize, mode: ResizeMode) -> Result<Vec<u8>, ImageError> {
    resize_rgb8_pixels(img.width, img.height, &img.pixels, size, mode)
}

/// `resize_rgb8` on borrowed interleaved RGB8 pixels (the first `width * height * 3` bytes).
pub fn resize_rgb8_pixels(
    width: usize,
    height: usize,
    pixels: &[u8],
    size: usize,
    mode: ResizeMode,
) -> Result<Vec<u8>, ImageError> {
    if size == 0 || width == 0 || height == 0 || pixels.len() < width * height * 3 {
        return Err(corrupt(format!("resize {width}x{height} ({} bytes) to {size}", pixels.len())));
    }
    let window = match mode {
        ResizeMode::ShortestSideCrop => {
            CentreCrop::new(width, height, size).source_window(width, height, size)
        }
        ResizeMode::Squash => [0.0, 0.0, width as f64, height as f64],
    };
    let fail = |e: String| corrupt(format!("resize {width}x{height} to {size}: {e}"));
    RESIZER.with(|r| resize_window(&mut r.borrow_mut(), width, height, pixels, window, size)).map_err(fail)
}

/// Filters the source window `[x0, y0, x1, y1]` to `size x size` in two single-axis passes:
/// widths first into an 8-bit intermediate, then heights, which is PIL's order (`ImagingResample`).
/// The passes are separate calls because fast_image_resize 5.5's own two-pass path for u8 shifts its
/// horizontal bounds by the first bound's start, which is not the smallest when a zero weight was
/// trimmed from it: `b.start -= x_first` then underflows (an out-of-bounds read in release builds,
/// the abort of issue #19 with debug assertions). A single-axis pass shifts nothing.
fn resize_window(
    resizer: &mut Resizer,
    width: usize,
    height: usize,
    pixels: &[u8],
    [x0, y0, x1, y1]: [f64; 4],
    size: usize,
) -> Result<Vec<u8>, String> {
    // Rows the height pass reads: the window plus the filter's reach (Catmull-Rom support 2,
    // stretched by the downscale factor as PIL and fast_image_resize do), plus one for rounding.
    let reach = 2.0 * ((y1 - y0) / size as f64).max(1.0) + 1.0;
    let r0 = (y0 - reach).floor().max(0.0) as usize;
    let r1 = ((y1 + reach).ceil() as usize).min(height);
    let rows = r1 - r0;
    let band = &pixels[r0 * width * 3..r1 * width * 3];
    let src = ImageRef::new(width as u32, rows as u32, band, PixelType::U8x3).map_err(|e| e.to_string())?;
    let mut wide = Image::new(size as u32, rows as u32, PixelType::U8x3);
    let filter = ResizeAlg::Convolution(FilterType::CatmullRom);
    let widths = ResizeOptions::new().resize_alg(filter).crop(x0, 0.0, fit(x0, x1, width), rows as f64);
    resizer.resize(&src, &mut wide, &widths).map_err(|e| e.to_string())?;
    let mut out = Image::new(size as u32, size as u32, PixelType::U8x3);
    let top = y0 - r0 as f64;
    let heights =
        ResizeOptions::new().resize_alg(filter).crop(0.0, top, size as f64, fit(top, top + (y1 - y0), rows));
    resizer.resize(&wide, &mut out, &heights).map_err(|e| e.to_string())?;
    Ok(out.into_vec())
}

/// The length of `[start, end)` such that the library's own bound check, `start + len <= limit`,
/// holds in floating point too (`start + (end - start)` can round one ulp above `end`).
fn fit(start: f64, end: f64, limit: usize) -> f64 {
    let limit = limit as f64;
    let mut len = end.min(limit) - start;
    while start + len > limit {
        len = len.next_down();
    }
    len
}
