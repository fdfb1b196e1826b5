#!/usr/bin/env python3
"""Writes the resize parity fixture (issue #19): 60 images of varied sizes, aspect ratios, colour
modes and formats, and what torchvision's CLIP preprocessing makes of each.

Reference, per image: PIL opens the bytes, `.convert("RGB")` (HF CLIPImageProcessor's
`do_convert_rgb`; openai/CLIP converts after the crop, which is the same for every mode here but
RGBA/LA, whose alpha PIL's resize would premultiply), then torchvision
`Compose([Resize(s, InterpolationMode.BICUBIC), CenterCrop(s)])`, s cycling over 224, 336, 378, 448
and the CPU scales 32, 48, 64. The resized size and crop offset torchvision used are recorded too.

Run with a venv holding torch, torchvision, pillow and numpy (outside the repo):

    python -m venv ~/.venvs/mm1 && ~/.venvs/mm1/bin/pip install torch torchvision pillow numpy
    ~/.venvs/mm1/bin/python scripts/data_make_resize_fixtures.py

Outputs (committed; read by data/tests/resize_parity.rs; CI never runs Python):
  data/tests/fixtures/resize/NNN.{png,jpg,webp}   the source images
  data/tests/fixtures/resize/NNN.ref.png          torchvision's s x s RGB output
  data/tests/fixtures/resize/manifest.json        per image: file, format, mode, size, s, resized, offset
"""
import io
import json
import os

import numpy as np
import torchvision
from PIL import Image, ImageDraw
from torchvision.transforms import CenterCrop, Compose, InterpolationMode, Resize

OUT = os.path.join(os.path.dirname(__file__), "..", "data", "tests", "fixtures", "resize")
RESOLUTIONS = [224, 336, 378, 448, 32, 48, 64]
# (format, PIL mode written, save options): every mode a real shard holds that PIL and our
# decoders both read as 8-bit
KINDS = [
    ("png", "RGB", {}),
    ("png", "L", {}),
    ("png", "RGBA", {}),
    ("png", "P", {}),
    ("png", "LA", {}),
    ("jpg", "RGB", {"quality": 92, "subsampling": 0}),  # 4:4:4
    ("jpg", "RGB", {"quality": 85}),  # 4:2:0, PIL's default
    ("jpg", "L", {"quality": 90}),
    ("webp", "RGB", {"lossless": True}),
    ("webp", "RGBA", {"lossless": True}),
]


def photo_like(rng, w, h):
    """Smooth gradients, a few shapes and mild noise: what resampling sees in real photographs."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    base = np.stack([
        127 + 120 * np.sin(xx / max(w, 1) * rng.uniform(1, 9) + rng.uniform(0, 6)),
        127 + 120 * np.cos(yy / max(h, 1) * rng.uniform(1, 9) + rng.uniform(0, 6)),
        127 + 120 * np.sin((xx + yy) / max(w + h, 1) * rng.uniform(1, 9)),
    ], axis=-1)
    img = Image.fromarray(np.clip(base + rng.normal(0, 3, base.shape), 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(img)
    for _ in range(int(rng.integers(2, 8))):
        x0, y0 = int(rng.integers(0, w)), int(rng.integers(0, h))
        x1, y1 = x0 + int(rng.integers(1, max(2, w // 3))), y0 + int(rng.integers(1, max(2, h // 3)))
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        (draw.rectangle if rng.random() < 0.5 else draw.ellipse)([x0, y0, x1, y1], fill=colour)
    return img


def random_size(rng, i):
    if i % 10 == 7:
        return int(rng.integers(1, 4)), int(rng.integers(40, 700))  # 1-3 px wide strips
    if i % 10 == 8:
        return int(rng.integers(40, 700)), int(rng.integers(1, 4))
    return int(rng.integers(8, 512)), int(rng.integers(8, 512))


def encode(img, fmt, mode, opts, rng):
    img = img.convert(mode)
    if mode == "RGBA" or mode == "LA":
        alpha = np.asarray(img)[..., -1].copy()
        alpha[:] = rng.integers(0, 256)  # a varying alpha channel that convert("RGB") drops
        img.putalpha(Image.fromarray(alpha))
    if mode == "P":
        img = img.convert("RGB").quantize(colors=int(rng.integers(4, 256)))
    buf = io.BytesIO()
    img.save(buf, format={"png": "PNG", "jpg": "JPEG", "webp": "WEBP"}[fmt], **opts)
    return buf.getvalue()


def main():
    os.makedirs(OUT, exist_ok=True)
    rng = np.random.default_rng(19)
    manifest = []
    for i in range(60):
        fmt, mode, opts = KINDS[i % len(KINDS)]
        w, h = random_size(rng, i)
        size = RESOLUTIONS[i % len(RESOLUTIONS)]
        data = encode(photo_like(rng, w, h), fmt, mode, opts, rng)
        name = f"{i:03d}.{fmt}"
        with open(os.path.join(OUT, name), "wb") as f:
            f.write(data)
        rgb = Image.open(io.BytesIO(data)).convert("RGB")
        resized = Resize(size, interpolation=InterpolationMode.BICUBIC)(rgb)
        out = CenterCrop(size)(resized)
        assert out.size == (size, size)
        rw, rh = resized.size
        offset = [int(round((rw - size) / 2.0)), int(round((rh - size) / 2.0))]
        ref = f"{i:03d}.ref.png"
        out.save(os.path.join(OUT, ref))
        manifest.append({"file": name, "format": fmt, "mode": mode, "width": w, "height": h, "size": size,
                         "resized": [rw, rh], "offset": offset, "ref": ref})
    with open(os.path.join(OUT, "manifest.json"), "w") as f:
        json.dump({"torchvision": torchvision.__version__, "pillow": Image.__version__, "images": manifest}, f,
                  indent=1)
    total = sum(os.path.getsize(os.path.join(OUT, n)) for n in os.listdir(OUT))
    print(f"wrote {len(manifest)} images and references to {OUT} ({total / 1e6:.1f} MB)")


if __name__ == "__main__":
    main()
