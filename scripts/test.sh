#!/usr/bin/env bash
# The project's test command (README "Run the tests"; .ci/run calls exactly this).
# Installs what the tests need on a fresh machine, idempotently, then runs
# formatting, lints, the whole test suite and the CUDA type-check.
set -euo pipefail
cd "$(dirname "$0")/.."

# Shared, incremental build folder outside the clone (a clean run still passes).
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/mm1/target}"
export CARGO_TERM_COLOR=never

need_apt=()
# Add Debian packages the tests need here (e.g. MPI for the distributed tests).
for pkg in libopenmpi-dev openmpi-bin libclang-dev mesa-vulkan-drivers libvulkan1 libopenblas-dev "${MM1_APT_PACKAGES[@]:-}"; do
  [ -n "$pkg" ] && ! dpkg -s "$pkg" >/dev/null 2>&1 && need_apt+=("$pkg")
done
if [ ${#need_apt[@]} -gt 0 ]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}"
fi
rustup component list --installed 2>/dev/null | grep -q clippy || rustup component add clippy rustfmt || true

echo "== fmt";    cargo fmt --all -- --check
echo "== clippy"; cargo clippy --workspace --all-targets -- -D warnings
echo "== test";   cargo test --workspace --features mm1-trainer/mpi
echo "== openblas: the GEMM path through the system's OpenBLAS against the same references"
cargo clippy -p mm1-models --features openblas --all-targets -- -D warnings
cargo test -p mm1-models --features openblas --lib --test fused_ops --test parity
echo "== wgpu: two training steps on the wgpu device (lavapipe software Vulkan) vs flex"
cargo test -p mm1-trainer --features wgpu --test wgpu_step
echo "== cuda + mpi type-check (no GPU build possible offline)"
DOCS_RS=1 cargo check --workspace --features cuda,mm1-trainer/mpi
echo "== all checks passed"
