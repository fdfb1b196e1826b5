//! Image preprocessing against PIL + CLIP's reference (`scripts/data_make_fixtures.py`):
//! shortest-side bicubic resize, centre crop, CLIP mean/std, CHW.

mod common;

use common::fixture;
use mm1_data::ResizeMode;
use mm1_data::image::{CLIP_MEAN, CLIP_STD, decode_rgb8, normalize_clip, preprocess};

#[test]
fn matches_pil_bicubic_resize_centre_crop_and_clip_normalisation() {
    let png = std::fs::read(fixture("clip_ref.png")).unwrap();
    let r: serde_json::Value =
        serde_json::from_slice(&std::fs::read(fixture("clip_ref.json")).unwrap()).unwrap();
    let size = r["size"].as_u64().unwrap() as usize;
    let want: Vec<f32> = r["chw"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap() as f32).collect();
    let got = preprocess(&png, size, ResizeMode::ShortestSideCrop, 1 << 20).unwrap();
    assert_eq!(got.len(), want.len());
    let diffs: Vec<f32> = got.iter().zip(&want).map(|(a, b)| (a - b).abs()).collect();
    let max = diffs.iter().cloned().fold(0.0, f32::max);
    let mean = diffs.iter().sum::<f32>() / diffs.len() as f32;
    // one 8-bit level is 1/255/0.27 = 0.0146 after normalisation
    assert!(mean < 0.015, "mean |ours - PIL| = {mean}");
    assert!(max < 0.1, "max |ours - PIL| = {max}");
}

#[test]
fn normalisation_is_clip_mean_std_planar() {
    // 2x1... as a 1x2 interleaved image: planes are [r0 r1][g0 g1][b0 b1]
    let rgb = [255u8, 0, 128, 0, 255, 64];
    let hw = 2;
    let x = normalize_clip(&rgb, 1);
    assert_eq!(x.len(), 3, "size 1 uses the first pixel only");
    let planar = {
        let mut out = vec![0f32; 3 * hw];
        for p in 0..hw {
            for c in 0..3 {
                out[c * hw + p] = (rgb[p * 3 + c] as f32 / 255.0 - CLIP_MEAN[c]) / CLIP_STD[c];
            }
        }
        out
    };
    for c in 0..3 {
        assert!((x[c] - planar[c * hw]).abs() < 1e-5);
    }
}

#[test]
fn decodes_jpeg_png_and_webp_from_the_python_fixture() {
    let mut ar = tar::Archive::new(std::fs::File::open(fixture("wds_mixed.tar")).unwrap());
    let mut formats = 0;
    for e in ar.entries().unwrap() {
        let mut e = e.unwrap();
        let name = e.path().unwrap().display().to_string();
        if name.starts_with("cap/") && !name.ends_with(".txt") && !name.ends_with(".json") {
            let mut b = Vec::new();
            std::io::Read::read_to_end(&mut e, &mut b).unwrap();
            let img = decode_rgb8(&b, 1 << 20).unwrap_or_else(|e| panic!("{name}: {e:?}"));
            assert_eq!((img.width, img.height), (40, 30), "{name}");
            formats += 1;
        }
    }
    assert_eq!(formats, 5);
}
