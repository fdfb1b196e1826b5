#!/usr/bin/env python3
"""Python reference for `mm1-data bench`: webdataset + PIL decode, shortest-side bicubic resize,
centre crop and CLIP normalisation of every image in a shard spec, single process.

    ~/.venvs/mm1-data/bin/pip install webdataset pillow numpy
    ~/.venvs/mm1-data/bin/python scripts/data_bench_python.py "DIR/caption-{000000..000001}.tar" --resolution 224

Prints one JSON line with images, wall seconds, CPU seconds and CPU seconds per image, the metric
`scripts/data_bench.sh` compares with the Rust pipeline.
"""
import argparse
import io
import json
import time

import numpy as np
import webdataset as wds
from PIL import Image

MEAN = np.array([0.48145466, 0.4578275, 0.40821073], dtype=np.float32)
STD = np.array([0.26862954, 0.26130258, 0.27577711], dtype=np.float32)
IMAGE_EXTS = ("jpg", "jpeg", "png", "webp")


def preprocess(data, size):
    im = Image.open(io.BytesIO(data)).convert("RGB")
    w, h = im.size
    scale = size / min(w, h)
    im = im.resize((round(w * scale), round(h * scale)), Image.BICUBIC)
    w, h = im.size
    left, top = int(round((w - size) / 2.0)), int(round((h - size) / 2.0))
    im = im.crop((left, top, left + size, top + size))
    x = (np.asarray(im, dtype=np.float32) / 255.0 - MEAN) / STD
    return np.ascontiguousarray(x.transpose(2, 0, 1))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("spec")
    ap.add_argument("--resolution", type=int, default=224)
    ap.add_argument("--max-images", type=int, default=0)
    a = ap.parse_args()
    images = 0
    t0, c0 = time.perf_counter(), time.process_time()
    for sample in wds.WebDataset(a.spec, shardshuffle=False):
        for k, v in sample.items():
            if k.startswith("__"):
                continue
            if k.split(".")[-1] in IMAGE_EXTS:
                preprocess(v, a.resolution)
                images += 1
        if a.max_images and images >= a.max_images:
            break
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    print(json.dumps({"impl": "python webdataset+PIL", "resolution": a.resolution, "images": images,
                      "wall_s": wall, "cpu_s": cpu, "images_per_s": images / wall,
                      "cpu_s_per_image": cpu / max(images, 1)}))


if __name__ == "__main__":
    main()
