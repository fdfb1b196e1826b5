#!/usr/bin/env bash
# Capture what real launchers put in a rank's environment, trimmed to the variables that rank
# discovery (trainer/parallel/src/env.rs) reads or could confuse, as the fixtures of
# trainer/parallel/tests/launch_env.rs (trainer/parallel/tests/fixtures/launch-env/).
#
#   eval "$(scripts/slurm/local-cluster.sh start)"
#   scripts/slurm/capture-launch-env.sh trainer/parallel/tests/fixtures/launch-env
#   scripts/slurm/local-cluster.sh stop
#
# Every case runs 2 ranks and writes CASE.RANK.env: srun --mpi=pmix, --mpi=pmi2 and without an
# MPI plugin inside an `sbatch -n 2` job (as scripts/slurm/train.sbatch does), the batch script's
# own environment (not a rank), Open MPI's mpirun alone and inside the job, and torchrun alone
# and started by srun when TORCHRUN names one (e.g. a venv's bin/torchrun after `pip install torch`).
set -euo pipefail

[ $# -eq 1 ] || { echo "usage: $0 OUT_DIR" >&2; exit 2; }
out=$(mkdir -p "$1" && cd "$1" && pwd)
: "${SLURM_CONF:?start a cluster first: eval \"\$(scripts/slurm/local-cluster.sh start)\"}"
raw=$(mktemp -d)
trap 'rm -rf "$raw"' EXIT

# The variables kept: launchers' rank/size/local-rank families and the ones that tell a Slurm
# job step from the batch script.
keep='^(SLURM_(PROCID|LOCALID|NODEID|NTASKS|NPROCS|NNODES|STEP_ID|STEPID|STEP_NUM_TASKS|STEP_NUM_NODES|STEP_TASKS_PER_NODE|TASKS_PER_NODE|JOB_ID|JOBID|CPUS_PER_TASK)|PMI_[A-Z_]+|PMIX_(RANK|NAMESPACE|VERSION)|OMPI_COMM_WORLD_[A-Z_]+|OMPI_UNIVERSE_SIZE|MPI_LOCALRANKID|RANK|WORLD_SIZE|LOCAL_RANK|LOCAL_WORLD_SIZE|GROUP_RANK|GROUP_WORLD_SIZE|ROLE_RANK|ROLE_WORLD_SIZE|MASTER_ADDR|MASTER_PORT|TORCHELASTIC_RUN_ID)='

# Each rank dumps `env -0` to $raw/CASE.RANK; RANK_VAR names the variable that holds its rank.
dump() { # CASE RANK_VAR -> a bash command line for the rank
  echo "env -0 > $raw/$1.\${$2:-x}"
}

sbatch --wait --quiet -n 2 -o "$raw/job.out" --wrap "
  set -e
  env -0 > $raw/sbatch-batch-step.0
  srun --mpi=pmix bash -c '$(dump srun-pmix SLURM_PROCID)'
  srun --mpi=pmi2 bash -c '$(dump srun-pmi2 SLURM_PROCID)'
  srun --mpi=none bash -c '$(dump srun-none SLURM_PROCID)'
  mpirun --allow-run-as-root -n 2 bash -c '$(dump mpirun-in-sbatch OMPI_COMM_WORLD_RANK)'
  if [ -n \"\${TORCHRUN:-}\" ]; then
    srun -n 1 \"\$TORCHRUN\" --standalone --nproc-per-node=2 --no-python \\
      bash -c '$(dump srun-torchrun RANK)' 2>/dev/null
  fi
" || { cat "$raw/job.out" >&2; exit 1; }
mpirun --allow-run-as-root --oversubscribe -n 2 bash -c "$(dump mpirun OMPI_COMM_WORLD_RANK)"
if [ -n "${TORCHRUN:-}" ]; then
  "$TORCHRUN" --standalone --nproc-per-node=2 --no-python bash -c "$(dump torchrun RANK)" 2>/dev/null
fi

declare -A how=(
  [srun-pmix]="srun --mpi=pmix -n 2 inside sbatch -n 2"
  [srun-pmi2]="srun --mpi=pmi2 -n 2 inside sbatch -n 2"
  [srun-none]="srun --mpi=none -n 2 inside sbatch -n 2"
  [sbatch-batch-step]="the batch script of sbatch -n 2 itself (no job step)"
  [mpirun-in-sbatch]="mpirun -n 2 inside sbatch -n 2"
  [mpirun]="mpirun -n 2"
  [torchrun]="torchrun --standalone --nproc-per-node=2"
  [srun-torchrun]="srun -n 1 torchrun --standalone --nproc-per-node=2 inside sbatch -n 2"
)
versions="$(srun --version 2>/dev/null | head -n1); $(mpirun --version 2>/dev/null | head -n1)"
[ -n "${TORCHRUN:-}" ] && versions+="; torch $("$(dirname "$TORCHRUN")/python" -c 'import torch; print(torch.__version__)')"
n=0
for f in "$raw"/*.[0-9x]; do
  name=$(basename "$f"); case_=${name%.*}
  [ "${name##*.}" = x ] && { echo "$0: $name: the rank variable was not set" >&2; exit 1; }
  {
    echo "# Rank ${name##*.} of: ${how[$case_]}."
    echo "# Captured by scripts/slurm/capture-launch-env.sh on a scripts/slurm/local-cluster.sh node"
    echo "# ($versions), trimmed to the launcher variables."
    tr '\0' '\n' <"$f" | grep -E "$keep" | sort
  } >"$out/$name.env"
  n=$((n + 1))
done
echo "wrote $n fixtures to $out"
