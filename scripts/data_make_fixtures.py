#!/usr/bin/env python3
"""Writes the data-crate test fixtures with Python's reference `webdataset.TarWriter` and PIL.

Run with the venv holding `webdataset` and `pillow` (`python -m venv ~/.venvs/mm1-data &&
~/.venvs/mm1-data/bin/pip install webdataset pillow`):

    ~/.venvs/mm1-data/bin/python scripts/data_make_fixtures.py

Outputs (committed, read by data/tests/*.rs; CI never runs Python):
  data/tests/fixtures/wds_mixed.tar            caption / interleaved / text samples, mixed image extensions
  data/tests/fixtures/wds_mixed.expected.json  what Python's webdataset reads back (keys, member names),
                                               plus inspect expectations and the keys hash
  data/tests/fixtures/clip_ref.png + clip_ref.json  an image and PIL's shortest-side bicubic resize +
                                               centre crop + CLIP normalisation of it
"""
import hashlib
import io
import json
import os

import numpy as np
import webdataset as wds
from PIL import Image

OUT = os.path.join(os.path.dirname(__file__), "..", "data", "tests", "fixtures")
MEAN = np.array([0.48145466, 0.4578275, 0.40821073], dtype=np.float32)
STD = np.array([0.26862954, 0.26130258, 0.27577711], dtype=np.float32)


def image_bytes(seed, fmt, size=(40, 30)):
    rng = np.random.default_rng(seed)
    arr = (rng.random((size[1], size[0], 3)) * 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format=fmt)
    return buf.getvalue()


def main():
    os.makedirs(OUT, exist_ok=True)
    tar = os.path.join(OUT, "wds_mixed.tar")
    samples = []
    # captions with every image extension, including an upper-case one (grouping lowercases it)
    for i, (ext, fmt) in enumerate([("jpg", "JPEG"), ("jpeg", "JPEG"), ("png", "PNG"), ("webp", "WEBP"), ("JPG", "JPEG")]):
        samples.append({"__key__": f"cap/s{i:03d}", ext: image_bytes(i, fmt), "txt": f"caption number {i}".encode(),
                        "json": json.dumps({"i": i}).encode()})
    # interleaved OBELICS documents: image entries name members of the same sample
    for i in range(3):
        doc = {"texts": ["intro text", None, f"after image zero of doc {i}", None, "the end"],
               "images": [None, "0.jpg", None, "1.png", None]}
        samples.append({"__key__": f"doc/d{i:03d}", "json": json.dumps(doc).encode(),
                        "0.jpg": image_bytes(100 + i, "JPEG"), "1.png": image_bytes(200 + i, "PNG")})
    # text-only, as txt and as json {"text": ...}
    for i in range(4):
        if i % 2 == 0:
            samples.append({"__key__": f"txt/t{i:03d}", "txt": f"plain text document {i}.".encode()})
        else:
            samples.append({"__key__": f"txt/t{i:03d}", "json": json.dumps({"text": f"json text document {i}."}).encode()})
    with wds.TarWriter(tar) as w:
        for s in samples:
            w.write(s)

    # what the reference reader groups
    read = []
    for s in wds.WebDataset(tar, shardshuffle=False):
        read.append({"key": s["__key__"], "members": sorted(k for k in s if not k.startswith("__"))})
    keys = sorted(r["key"] for r in read)
    h = hashlib.sha256()
    for k in keys:
        h.update(k.encode() + b"\n")
    expected = {"samples": read, "by_kind": {"caption": 5, "interleaved": 3, "text": 4}, "images": 5 + 2 * 3,
                "keys_sha256": h.hexdigest()}
    with open(os.path.join(OUT, "wds_mixed.expected.json"), "w") as f:
        json.dump(expected, f, indent=1)

    # CLIP preprocessing reference: shortest side -> 32 (bicubic), centre crop 32, normalise, CHW
    write_clip_ref()


def write_clip_ref():
    """clip_ref.png and PIL + torchvision's CLIP preprocessing of it (clip_ref.json)."""
    # smooth content: resamplers agree on it up to rounding, so the comparison tests the geometry
    yy, xx = np.mgrid[0:48, 0:64].astype(np.float32)
    smooth = np.stack([128 + 100 * np.sin(xx / 9.0), 128 + 100 * np.cos(yy / 7.0), (xx + yy) * 2.0], axis=-1)
    buf = io.BytesIO()
    Image.fromarray(smooth.clip(0, 255).astype(np.uint8)).save(buf, format="PNG")
    png = buf.getvalue()
    with open(os.path.join(OUT, "clip_ref.png"), "wb") as f:
        f.write(png)
    im = Image.open(io.BytesIO(png)).convert("RGB")
    s = 32
    w, h = im.size
    # torchvision `_compute_resized_output_size`: the long side is truncated, not rounded
    short, long = min(w, h), max(w, h)
    new_long = int(s * long / short)
    im = im.resize((s, new_long) if w <= h else (new_long, s), Image.BICUBIC)
    w, h = im.size
    left, top = int(round((w - s) / 2.0)), int(round((h - s) / 2.0))  # torchvision CenterCrop
    im = im.crop((left, top, left + s, top + s))
    x = (np.asarray(im, dtype=np.float32) / 255.0 - MEAN) / STD
    with open(os.path.join(OUT, "clip_ref.json"), "w") as f:
        json.dump({"size": s, "chw": x.transpose(2, 0, 1).reshape(-1).round(5).tolist()}, f)


if __name__ == "__main__":
    main()
