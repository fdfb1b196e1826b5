#!/usr/bin/env bash
# Rust pipeline (`mm1-data bench`: decode, resize, normalise, tokenise, pack) vs Python webdataset
# + PIL (decode, resize, normalise) on the same synthetic 448-pixel shards, same machine, one run.
# Usage: bash scripts/data_bench.sh [RESOLUTION...]   (needs /work/venv-data or $PY with webdataset, pillow, numpy)
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/mm1/target}"
PY="${PY:-/work/venv-data/bin/python}"
DIR="${BENCH_DIR:-/tmp/mm1-data-bench}"
cargo build -q -p mm1-data --bin mm1-data
BIN="$CARGO_TARGET_DIR/debug/mm1-data"
[ -f "$DIR/manifest.json" ] || "$BIN" synth --out "$DIR" --seed 0 --shards-per-kind 2 --samples-per-shard 500 --eval-vqa 4 --eval-captions 4 >/dev/null
SPEC="$DIR/caption-{000000..000001}.tar"
for R in "${@:-224 336}"; do
  "$PY" scripts/data_bench_python.py "$SPEC" --resolution "$R"
  for W in 1 2; do
    "$BIN" bench "$SPEC" --kind caption --resolution "$R" --workers "$W" --tokenizer "$DIR/tokenizer.json" \
      --num-image-tokens 64 --batches 10
  done
done
