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

# One feature set for the lints and one for the tests, so that a cold run compiles burn twice (a
# check build and a test build) instead of once per phase: the features are additive (wgpu and cuda
# add CubeCL devices beside flex; DOCS_RS=1 lets the cuda crates type-check without downloading
# their LLVM), so the flex tests run the same code with them on.
FEATURES_LINT="cuda,mm1-trainer/mpi,mm1-trainer/wgpu,mm1-trainer/openblas"
FEATURES_TEST="mm1-trainer/mpi,mm1-trainer/wgpu"

echo "== fmt";    cargo fmt --all -- --check
echo "== clippy, every feature (cuda type-checked: no GPU build possible offline)"
DOCS_RS=1 cargo clippy --workspace --all-targets --features "$FEATURES_LINT" -- -D warnings
echo "== test (mpi; wgpu_step: two training steps on lavapipe's software Vulkan vs flex)"
cargo test --workspace --features "$FEATURES_TEST" --no-fail-fast
echo "== slurm: train.sbatch (= launch-local.sh), requeue (scontrol, USR1, time limit), a failing rank, mm1-sweep --submit on a one-node Slurm"
# scripts/slurm/local-cluster.sh installs Slurm 22.05 and munge when missing and runs them in a
# temporary folder; the trap stops every daemon and job of it however this script ends.
slurm_dir=$(mktemp -d "${TMPDIR:-/tmp}/mm1-slurm.XXXXXX")
trap 'scripts/slurm/local-cluster.sh stop "$slurm_dir"' EXIT
slurm_env=$(scripts/slurm/local-cluster.sh start "$slurm_dir") && eval "$slurm_env"
cargo test --workspace --features "$FEATURES_TEST" --test slurm_cluster -- --ignored --test-threads=1 --nocapture
scripts/slurm/local-cluster.sh stop "$slurm_dir" && rm -rf "$slurm_dir" && trap - EXIT && unset SLURM_CONF
echo "== openblas: the GEMM path through the system's OpenBLAS against the same references"
# The test phase's features plus openblas, over the workspace: `-p mm1-kernels --features openblas`
# resolved the features of that package's graph alone, which differ from the workspace's, and a
# cold run rebuilt about 110 crates for it (7 min 15 s here); this way only the mm1 crates
# rebuild. Every lib's unit tests run again with OpenBLAS GEMMs, besides fused_ops and parity.
cargo test --workspace --features "$FEATURES_TEST,mm1-trainer/openblas" --lib --test fused_ops --test parity
echo "== all checks passed"
