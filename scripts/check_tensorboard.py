#!/usr/bin/env python3
"""Reads a TensorBoard event file (or a run folder) written by mm1-train with TensorBoard's own
EventAccumulator, the reader behind `tensorboard --logdir`, and prints what it finds: every
scalar tag with its number of points and first/last (step, value), and every text summary.
Not run by CI (CI checks the files with our Rust reader, trainer/logging/tests/tensorboard_roundtrip.rs).

Setup:  python3 -m venv ~/.venvs/mm1-tb && ~/.venvs/mm1-tb/bin/pip install tensorboard
Usage:  ~/.venvs/mm1-tb/bin/python scripts/check_tensorboard.py PATH [--expect TAG=N]... [--json]
        --expect loss=50 fails (exit 1) unless tag `loss` has exactly 50 points."""
import argparse
import json
import sys

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.util import tensor_util


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("path", help="an events.out.tfevents.* file or a folder holding some")
    ap.add_argument("--expect", action="append", default=[], metavar="TAG=N")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    acc = EventAccumulator(args.path, size_guidance={"scalars": 0, "tensors": 0})
    acc.Reload()
    tags = acc.Tags()
    report = {"file_version": acc.file_version, "scalars": {}, "texts": {}}
    for tag in sorted(tags["scalars"]):
        ev = acc.Scalars(tag)
        report["scalars"][tag] = {
            "points": len(ev),
            "first": [ev[0].step, ev[0].value],
            "last": [ev[-1].step, ev[-1].value],
        }
    try:
        text_tags = set(acc.PluginTagToContent("text"))
    except KeyError:  # no summary with the text plugin in the file
        text_tags = set()
    for tag in sorted(tags["tensors"]):
        if tag not in text_tags:
            continue
        ev = acc.Tensors(tag)
        value = tensor_util.make_ndarray(ev[-1].tensor_proto)
        text = value.item() if value.shape == () else value.ravel()[0]
        report["texts"][tag] = {"points": len(ev), "last": text.decode("utf-8")[:200]}

    failures = []
    for exp in args.expect:
        tag, n = exp.split("=")
        got = report["scalars"].get(tag, {}).get("points", 0)
        if got != int(n):
            failures.append(f"{tag}: expected {n} points, found {got}")

    if args.json:
        print(json.dumps(report, indent=1))
    else:
        print(f"file_version {report['file_version']}")
        for tag, s in report["scalars"].items():
            print(f"scalar {tag}: {s['points']} points, first {s['first']}, last {s['last']}")
        for tag, t in report["texts"].items():
            print(f"text {tag}: {t['points']} points, last {t['last']!r}")
    for f in failures:
        print("FAIL", f, file=sys.stderr)
    sys.exit(1 if failures or not report["scalars"] else 0)


if __name__ == "__main__":
    main()
