//! `mm1-data preview` writes what the model sees: PNGs equal to the training path's resized,
//! cropped pixels (opened here), texts with `<image>` markers, and the skipped samples with reasons.

use std::process::Command;

use mm1_data::ResizeMode;
use mm1_data::image::{decode_rgb8, resize_rgb8};
use mm1_data::synth::write_tar;

fn png(w: u32, h: u32, seed: u32) -> Vec<u8> {
    let img = image::RgbImage::from_fn(w, h, |x, y| {
        image::Rgb([(x * 3 + seed) as u8, (y * 5 + seed) as u8, ((x ^ y) * 7) as u8])
    });
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png).unwrap();
    out.into_inner()
}

#[test]
fn preview_writes_viewable_pngs_of_the_training_pixels_and_marked_texts() {
    let dir = tempfile::tempdir().unwrap();
    let shard = dir.path().join("mixed-000.tar");
    let (wide, tall) = (png(90, 40, 1), png(33, 120, 2));
    let doc = serde_json::json!({"texts": ["first", null, "second", null], "images": [null, "0.png", null, "1.png"]});
    write_tar(
        &shard,
        &[
            ("cap/a.png".into(), wide.clone()),
            ("cap/a.txt".into(), b"a wide picture".to_vec()),
            ("doc/b.json".into(), doc.to_string().into_bytes()),
            ("doc/b.0.png".into(), wide.clone()),
            ("doc/b.1.png".into(), tall.clone()),
            ("cap/c.png".into(), b"\x89PNG but broken".to_vec()),
            ("cap/c.txt".into(), b"broken image".to_vec()),
            ("txt/d.txt".into(), b"only words".to_vec()),
        ],
    )
    .unwrap();
    let out = dir.path().join("preview");
    let run = Command::new(env!("CARGO_BIN_EXE_mm1-data"))
        .args(["preview", shard.to_str().unwrap(), "--out", out.to_str().unwrap(), "--resolution", "48"])
        .args(["-n", "10"])
        .output()
        .unwrap();
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));

    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("index.json")).unwrap()).unwrap();
    let entries = index.as_array().unwrap();
    assert_eq!(entries.len(), 4);
    let kinds: Vec<&str> = entries.iter().map(|e| e["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["caption", "interleaved", "caption", "text"]);
    assert!(entries[2]["skipped"].as_str().unwrap().starts_with("corrupt_image"), "{}", entries[2]);

    // every PNG opens, is 48x48, and holds exactly the training path's resized pixels
    let expect = |bytes: &[u8]| {
        resize_rgb8(&decode_rgb8(bytes, 1 << 20).unwrap(), 48, ResizeMode::ShortestSideCrop).unwrap()
    };
    let images: Vec<&str> =
        entries[1]["images"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
    assert_eq!(images.len(), 2);
    for (name, source) in images.iter().zip([&wide, &tall]) {
        let img = image::open(out.join(name)).unwrap().into_rgb8();
        assert_eq!(img.dimensions(), (48, 48), "{name}");
        assert_eq!(img.into_raw(), expect(source), "{name}");
    }
    let doc_text = std::fs::read_to_string(out.join(entries[1]["text"].as_str().unwrap())).unwrap();
    assert_eq!(doc_text, "first\n<image>\nsecond\n<image>\n");
    let cap_text = std::fs::read_to_string(out.join(entries[0]["text"].as_str().unwrap())).unwrap();
    assert_eq!(cap_text, "<image>a wide picture\n");
}
