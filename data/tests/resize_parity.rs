//! What the model sees matches torchvision (issue #19): 60 images of varied sizes, aspect ratios,
//! colour modes and formats (`scripts/data_make_resize_fixtures.py`) against PIL `.convert("RGB")`
//! + torchvision `Resize(s, BICUBIC)` + `CenterCrop(s)` at s in {224, 336, 378, 448, 32, 48, 64}.
//!
//! The geometry (resized size, crop offset) must be torchvision's exactly. Pixels differ by the
//! rounding of two fixed-point filters (fast_image_resize filters columns first, PIL rows first,
//! each rounding its intermediate to 8 bits) and, for JPEG, by the decoder (zune-jpeg vs
//! libjpeg-turbo): the bounds below are those measured with margin; docs/data.md quotes them.

mod common;

use common::fixture;
use mm1_data::ResizeMode;
use mm1_data::image::{CentreCrop, decode_rgb8, resize_rgb8};

/// Per format: (max mean |diff| of one image, max |diff| of any pixel), in 8-bit levels.
fn bounds(format: &str) -> (f64, u8) {
    match format {
        "jpg" => (0.5, 5),
        _ => (0.3, 2),
    }
}

#[test]
fn pixels_and_geometry_match_torchvision_on_sixty_real_looking_images() {
    let dir = fixture("resize");
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("manifest.json")).unwrap()).unwrap();
    let images = manifest["images"].as_array().unwrap();
    assert!(images.len() >= 50);
    let mut worst: std::collections::BTreeMap<String, (f64, u8, f64, usize)> = Default::default();
    for m in images {
        let file = m["file"].as_str().unwrap();
        let format = m["format"].as_str().unwrap();
        let size = m["size"].as_u64().unwrap() as usize;
        let img = decode_rgb8(&std::fs::read(dir.join(file)).unwrap(), 1 << 24).unwrap();
        let pair = |v: &serde_json::Value| (v[0].as_u64().unwrap() as usize, v[1].as_u64().unwrap() as usize);
        assert_eq!(
            CentreCrop::new(img.width, img.height, size),
            CentreCrop { resized: pair(&m["resized"]), offset: pair(&m["offset"]) },
            "{file}: geometry"
        );
        let ours = resize_rgb8(&img, size, ResizeMode::ShortestSideCrop).unwrap();
        let reference = image::open(dir.join(m["ref"].as_str().unwrap())).unwrap().into_rgb8().into_raw();
        assert_eq!(ours.len(), reference.len(), "{file}");
        let diffs: Vec<u8> = ours.iter().zip(&reference).map(|(a, b)| a.abs_diff(*b)).collect();
        let mean = diffs.iter().map(|&d| d as f64).sum::<f64>() / diffs.len() as f64;
        let max = diffs.iter().copied().max().unwrap();
        let (mean_bound, max_bound) = bounds(format);
        let key = format!("{format} {}", m["mode"].as_str().unwrap());
        let w = worst.entry(key).or_default();
        *w = (w.0.max(mean), w.1.max(max), w.2 + mean, w.3 + 1);
        assert!(
            mean <= mean_bound,
            "{file} ({format}, {}x{} at {size}): mean |diff| {mean:.3} > {mean_bound}",
            img.width,
            img.height
        );
        assert!(
            max <= max_bound,
            "{file} ({format}, {}x{} at {size}): max |diff| {max} > {max_bound}",
            img.width,
            img.height
        );
    }
    for (k, (worst_mean, worst_max, sum_mean, n)) in worst {
        eprintln!(
            "{k:10} n={n:2} mean|diff| avg {:.3} worst {worst_mean:.3}  max|diff| {worst_max}",
            sum_mean / n as f64
        );
    }
}
