//! Image bytes → `[3, s, s]` f32, CLIP-normalised (the preprocessing of CLIP/MM1's image encoder).
//!
//! JPEG decodes with `zune-jpeg`; PNG/WebP with the `image` crate; resizing uses
//! `fast_image_resize` (never `image::imageops::resize`, which alone is slower than PIL).
//! The pixel count is read from the header and checked *before* decoding (decompression bombs).

mod resize;

use std::io::Cursor;

use image::ImageDecoder;
use zune_jpeg::JpegDecoder;
use zune_jpeg::zune_core::bytestream::ZCursor;
use zune_jpeg::zune_core::colorspace::ColorSpace;
use zune_jpeg::zune_core::options::DecoderOptions;

use crate::config::ResizeMode;
use crate::skip::SkipReason;

pub use resize::{CentreCrop, resize_rgb8, resize_rgb8_pixels};

/// CLIP's normalisation constants (openai/CLIP `clip.py` `_transform`).
pub const CLIP_MEAN: [f32; 3] = [0.481_454_66, 0.457_827_5, 0.408_210_73];
pub const CLIP_STD: [f32; 3] = [0.268_629_54, 0.261_302_6, 0.275_777_1];

/// Image extensions a caption sample may carry, in lookup order.
pub const IMAGE_EXTS: [&str; 4] = ["jpg", "jpeg", "png", "webp"];

/// Why an image was rejected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageError {
    pub reason: SkipReason,
    pub detail: String,
}

pub(crate) fn corrupt(detail: impl Into<String>) -> ImageError {
    ImageError { reason: SkipReason::CorruptImage, detail: detail.into() }
}

/// Decoded RGB8 pixels.
pub struct Rgb8 {
    pub width: usize,
    pub height: usize,
    pub pixels: Vec<u8>,
}

fn check_pixels(w: usize, h: usize, max_pixels: u64) -> Result<(), ImageError> {
    if w == 0 || h == 0 {
        return Err(corrupt(format!("image header says {w}x{h}")));
    }
    if (w as u64) * (h as u64) > max_pixels {
        return Err(ImageError {
            reason: SkipReason::ImageTooLarge,
            detail: format!("{w}x{h} = {} pixels > max_image_pixels {max_pixels}", w as u64 * h as u64),
        });
    }
    Ok(())
}

/// Decodes JPEG/PNG/WebP (format sniffed from the bytes, not the extension) to RGB8.
pub fn decode_rgb8(bytes: &[u8], max_pixels: u64) -> Result<Rgb8, ImageError> {
    if bytes.starts_with(&[0xff, 0xd8, 0xff]) {
        return decode_jpeg(bytes, max_pixels);
    }
    let format = image::guess_format(bytes).map_err(|e| corrupt(format!("unknown image format: {e}")))?;
    match format {
        image::ImageFormat::Png | image::ImageFormat::WebP => {}
        other => return Err(corrupt(format!("unsupported image format {other:?}"))),
    }
    let reader = image::ImageReader::with_format(Cursor::new(bytes), format);
    let decoder = reader.into_decoder().map_err(|e| corrupt(e.to_string()))?;
    let (w, h) = decoder.dimensions();
    check_pixels(w as usize, h as usize, max_pixels)?;
    let img = image::DynamicImage::from_decoder(decoder).map_err(|e| corrupt(e.to_string()))?;
    let rgb = img.into_rgb8();
    Ok(Rgb8 { width: w as usize, height: h as usize, pixels: rgb.into_raw() })
}

fn decode_jpeg(bytes: &[u8], max_pixels: u64) -> Result<Rgb8, ImageError> {
    let options = DecoderOptions::default()
        .jpeg_set_out_colorspace(ColorSpace::RGB)
        .set_max_width(1 << 16)
        .set_max_height(1 << 16);
    let mut dec = JpegDecoder::new_with_options(ZCursor::new(bytes), options);
    dec.decode_headers().map_err(|e| corrupt(format!("jpeg header: {e:?}")))?;
    let info = dec.info().ok_or_else(|| corrupt("jpeg header missing"))?;
    let (w, h) = (info.width as usize, info.height as usize);
    check_pixels(w, h, max_pixels)?;
    let pixels = dec.decode().map_err(|e| corrupt(format!("jpeg data: {e:?}")))?;
    if pixels.len() != w * h * 3 {
        return Err(corrupt(format!(
            "jpeg decoded to {} bytes, expected {w}x{h}x3 = {}",
            pixels.len(),
            w * h * 3
        )));
    }
    Ok(Rgb8 { width: w, height: h, pixels })
}

/// Interleaved RGB8 `[s, s, 3]` → planar f32 `[3, s, s]`, `(x/255 - mean) / std`.
pub fn normalize_clip(rgb: &[u8], size: usize) -> Vec<f32> {
    let hw = size * size;
    let mut out = vec![0f32; 3 * hw];
    let scale: [f32; 3] = std::array::from_fn(|c| 1.0 / (255.0 * CLIP_STD[c]));
    let shift: [f32; 3] = std::array::from_fn(|c| CLIP_MEAN[c] / CLIP_STD[c]);
    let (r, rest) = out.split_at_mut(hw);
    let (g, b) = rest.split_at_mut(hw);
    for (i, px) in rgb.chunks_exact(3).take(hw).enumerate() {
        r[i] = px[0] as f32 * scale[0] - shift[0];
        g[i] = px[1] as f32 * scale[1] - shift[1];
        b[i] = px[2] as f32 * scale[2] - shift[2];
    }
    out
}

/// The whole image path: bytes → `[3, size, size]` f32.
pub fn preprocess(
    bytes: &[u8],
    size: usize,
    mode: ResizeMode,
    max_pixels: u64,
) -> Result<Vec<f32>, ImageError> {
    let img = decode_rgb8(bytes, max_pixels)?;
    let rgb = resize_rgb8(&img, size, mode)?;
    Ok(normalize_clip(&rgb, size))
}
