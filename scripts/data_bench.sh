#!/usr/bin/env bash
# Rust pipeline (`mm1-data bench`: decode, resize, normalise, tokenise, pack) vs Python webdataset
# + PIL (decode, resize, normalise) on the same synthetic 448-pixel shards, same machine, one run.
# Usage: bash scripts/data_bench.sh --python PYTHON [RESOLUTION...]   (default resolutions: 224 336)
#    or: PY=PYTHON bash scripts/data_bench.sh [RESOLUTION...]
# PYTHON is an interpreter with webdataset, pillow and numpy, e.g. a venv's bin/python after
# `python3 -m venv VENV && VENV/bin/pip install webdataset pillow numpy`.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "${1:-}" = --python ]; then
  [ $# -ge 2 ] || { echo "scripts/data_bench.sh: --python needs a path" >&2; exit 2; }
  PY="$2"
  shift 2
fi
PY="${PY:-}"
if [ -z "$PY" ]; then
  echo "scripts/data_bench.sh: no Python given: pass --python PATH or set PY=PATH" \
    "(an interpreter with webdataset, pillow and numpy)" >&2
  exit 2
fi
if ! command -v "$PY" >/dev/null; then
  echo "scripts/data_bench.sh: the Python '$PY' (from --python or PY) is not an executable" >&2
  exit 2
fi
if ! "$PY" -c 'import webdataset, PIL, numpy' 2>/dev/null; then
  echo "scripts/data_bench.sh: '$PY' lacks webdataset, pillow or numpy: $PY -m pip install webdataset pillow numpy" >&2
  exit 2
fi
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/mm1/target}"
DIR="${BENCH_DIR:-/tmp/mm1-data-bench}"
cargo build -q -p mm1-data --bin mm1-data
BIN="$CARGO_TARGET_DIR/debug/mm1-data"
[ -f "$DIR/manifest.json" ] || "$BIN" synth --out "$DIR" --seed 0 --shards-per-kind 2 --samples-per-shard 500 --eval-vqa 4 --eval-captions 4 >/dev/null
SPEC="$DIR/caption-{000000..000001}.tar"
RESOLUTIONS=("$@")
[ ${#RESOLUTIONS[@]} -gt 0 ] || RESOLUTIONS=(224 336)
for R in "${RESOLUTIONS[@]}"; do
  "$PY" scripts/data_bench_python.py "$SPEC" --resolution "$R"
  for W in 1 2; do
    "$BIN" bench "$SPEC" --kind caption --resolution "$R" --workers "$W" --tokenizer "$DIR/tokenizer.json" \
      --num-image-tokens 64 --batches 10
  done
done
