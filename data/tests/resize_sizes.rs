//! Every image size resizes at every resolution (issue #19): 10 000 random sizes of 1-4000 px per
//! side (an eighth 1×N, an eighth N×1), each at one of MM1's resolutions (224, 336, 378, 448) or a
//! CPU scale (32, 48, 64) in turn, plus the sizes that used to fail, at all seven. A flat image must
//! come out flat: the crop window is in bounds and the filter weights sum to one.

use mm1_data::ResizeMode;
use mm1_data::image::{CentreCrop, resize_rgb8_pixels};
use mm1_data::rng::Rng;
use rayon::prelude::*;

const RESOLUTIONS: [usize; 7] = [224, 336, 378, 448, 32, 48, 64];
const COLOUR: [u8; 3] = [77, 140, 201];
const MAX_SIDE: usize = 4000;

fn check(buffer: &[u8], w: usize, h: usize, size: usize, mode: ResizeMode) {
    // a flat `w x h` image: the first `w*h*3` bytes of the shared buffer
    let out = resize_rgb8_pixels(w, h, &buffer[..w * h * 3], size, mode)
        .unwrap_or_else(|e| panic!("{w}x{h} at {size} ({mode:?}): {}", e.detail));
    assert_eq!(out.len(), size * size * 3, "{w}x{h} at {size}");
    for (i, px) in out.chunks_exact(3).enumerate() {
        for c in 0..3 {
            assert!(
                px[c].abs_diff(COLOUR[c]) <= 1,
                "{w}x{h} at {size} ({mode:?}): pixel {i} channel {c} = {} (flat input {})",
                px[c],
                COLOUR[c]
            );
        }
    }
}

fn colour_buffer(pixels: usize) -> Vec<u8> {
    COLOUR.iter().copied().cycle().take(pixels * 3).collect()
}

fn random_size(rng: &mut Rng) -> (usize, usize) {
    let side = |rng: &mut Rng| 1 + rng.below(MAX_SIDE);
    match rng.below(8) {
        0 => (1, side(rng)),
        1 => (side(rng), 1),
        _ => (side(rng), side(rng)),
    }
}

#[test]
fn ten_thousand_random_sizes_resize_at_every_resolution() {
    let mut rng = Rng(0x5eed_0019);
    let sizes: Vec<(usize, usize)> = (0..10_000).map(|_| random_size(&mut rng)).collect();
    let largest = sizes.iter().map(|(w, h)| w * h).max().unwrap();
    let buffer = colour_buffer(largest);
    sizes.par_iter().enumerate().for_each(|(i, &(w, h))| {
        check(&buffer, w, h, RESOLUTIONS[i % RESOLUTIONS.len()], ResizeMode::ShortestSideCrop);
    });
    // squash shares the resizer; a sample of sizes is enough
    for &(w, h) in sizes.iter().step_by(50) {
        check(&buffer, w, h, 224, ResizeMode::Squash);
    }
}

#[test]
fn edge_sizes_and_the_reported_failures_resize_at_all_resolutions() {
    let reported = [(727, 492), (990, 253), (1135, 471), (1187, 963), (1012, 1110), (232, 116)];
    let edges = [(1, 1), (1, 2), (2, 1), (1, 4000), (4000, 1), (2, 4000), (4000, 3), (4000, 4000), (3, 5)];
    let buffer = colour_buffer(MAX_SIDE * MAX_SIDE);
    for &(w, h) in reported.iter().chain(&edges) {
        for size in RESOLUTIONS {
            check(&buffer, w, h, size, ResizeMode::ShortestSideCrop);
        }
    }
}

#[test]
fn centre_crop_geometry_is_torchvision_s() {
    // torchvision 0.2x: Resize(224) of 727x492 gives int(224*727/492) = 330 x 224, and
    // CenterCrop(224) starts at int(round((330-224)/2)) = 53; round(0.5) = 0, round(1.5) = 2.
    assert_eq!(CentreCrop::new(727, 492, 224), CentreCrop { resized: (330, 224), offset: (53, 0) });
    assert_eq!(CentreCrop::new(492, 727, 224), CentreCrop { resized: (224, 330), offset: (0, 53) });
    assert_eq!(CentreCrop::new(225, 224, 224).offset, (0, 0), "(225-224)/2 = 0.5 rounds to 0");
    assert_eq!(CentreCrop::new(227, 224, 224).offset, (2, 0), "(227-224)/2 = 1.5 rounds to 2");
    assert_eq!(CentreCrop::new(1, 4000, 448).resized, (448, 1_792_000));
    assert_eq!(CentreCrop::new(300, 300, 336), CentreCrop { resized: (336, 336), offset: (0, 0) });
}
