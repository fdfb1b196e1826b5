#!/usr/bin/env bash
# Data-parallel training on one machine: N ranks of mm1-train under mpirun.
#
#   scripts/launch-local.sh N CONFIG [mm1-train arguments...]
#   scripts/launch-local.sh 2 configs/quickstart.toml --set train.steps=20 --run-dir runs/dp2
#
# Every rank gets the same arguments (`--config CONFIG` first, then yours, e.g. --set,
# --with, --run-dir); each reads its own shards, rank 0 writes logs and checkpoints.
# `[parallel] dp` is set to N unless you pass your own `--set parallel.dp=...`.
# Needs a build with MPI:  cargo build -p mm1-trainer --features mpi --bin mm1-train
# (apt: libopenmpi-dev openmpi-bin libclang-dev). MM1_TRAIN_BIN overrides the binary path.
set -euo pipefail

if [ $# -lt 2 ]; then
  echo "usage: $0 N CONFIG [mm1-train arguments...]" >&2
  exit 2
fi
n="$1"; config="$2"; shift 2
case "$n" in (''|*[!0-9]*|0) echo "$0: N must be a positive integer, got '$n'" >&2; exit 2;; esac
[ -f "$config" ] || { echo "$0: config file '$config' not found" >&2; exit 2; }

root="$(cd "$(dirname "$0")/.." && pwd)"
bin="${MM1_TRAIN_BIN:-${CARGO_TARGET_DIR:-$root/target}/debug/mm1-train}"
[ -x "$bin" ] || {
  echo "$0: $bin not found; build it with: cargo build -p mm1-trainer --features mpi --bin mm1-train" >&2
  exit 2
}
command -v mpirun >/dev/null || { echo "$0: mpirun not found (apt-get install openmpi-bin)" >&2; exit 2; }

extra=()
[ "$(id -u)" = 0 ] && extra+=(--allow-run-as-root)
dp_set=(--set "parallel.dp=$n")
for a in "$@"; do case "$a" in parallel.dp=*) dp_set=();; esac; done

# --oversubscribe: allow more ranks than cores; --bind-to none: leave thread placement to
# rayon (each rank computes with several threads). OMP/RAYON threads split the cores.
threads=$(( $(nproc) / n )); [ "$threads" -ge 1 ] || threads=1
exec mpirun "${extra[@]}" --oversubscribe --bind-to none -n "$n" \
  -x "RAYON_NUM_THREADS=${RAYON_NUM_THREADS:-$threads}" \
  "$bin" --config "$config" "${dp_set[@]}" "$@"
