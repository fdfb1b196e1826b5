#!/usr/bin/env bash
# The planner against measurement (issue #16 item 5): for CPU-sized configs, the planned peak
# memory (weights + gradients + AdamW state + one micro-batch of activations, f32) beside the
# measured peak RSS growth of N training steps (`mm1-train plan --measure-steps N`: VmHWM after
# the steps minus VmRSS before the model exists; the last two cases recompute blocks,
# train.activation_checkpointing). A benchmark, not a test: it prints the
# ratios and exits 1 when one is outside [0.8, 1.2].
#   scripts/plan_check.sh [path/to/mm1-train]
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${1:-}
if [[ -z "$BIN" ]]; then
  export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/mm1/target}
  BIN=$(cargo build -q --features mm1-trainer/mpi,mm1-trainer/wgpu --bin mm1-train --message-format=json \
    | python3 -c 'import json,sys
for l in sys.stdin:
    m = json.loads(l)
    if m.get("reason") == "compiler-artifact" and m.get("executable"): print(m["executable"])' | tail -1)
fi
STEPS=${STEPS:-3}
BASE=configs/bench-cpu.toml
# name | --set overrides (each applied to configs/bench-cpu.toml)
CASES=(
  "bench-cpu (c_abstractor, dense, b8 t256)|"
  "wider+deeper LLM, b4 t512|model.llm.width=384 model.llm.layers=6 model.llm.heads=6 data.seq_len=512 model.llm.max_seq_len=512 data.batch_size=4"
  "MoE 4 experts top-2 every 2nd layer|model.llm.moe={num_experts=4,top_k=2,every=2}"
  "avg_pool connector, b16 t128|model.connector={kind=\"avg_pool\",num_tokens=16} data.seq_len=128 model.llm.max_seq_len=128 data.batch_size=16"
  "attn_pool, grad_accum 2|model.connector={kind=\"attn_pool\",num_tokens=16,heads=3} optim.grad_accum=2"
  "frozen ViT, quick_gelu|model.freeze.vision=true model.vision.activation=\"quick_gelu\""
  "bench-cpu in bf16|train.precision=\"bf16\""
  "b4 t512 as above, every block recomputed|model.llm.width=384 model.llm.layers=6 model.llm.heads=6 data.seq_len=512 model.llm.max_seq_len=512 data.batch_size=4 train.activation_checkpointing=\"blocks\""
  "MoE b2 t1024, every 2nd block recomputed|model.llm.moe={num_experts=4,top_k=2,every=2} model.llm.layers=6 data.seq_len=1024 model.llm.max_seq_len=1024 data.batch_size=2 train.activation_checkpointing=\"every_n\" train.activation_checkpointing_every=2"
)
printf '%-42s %12s %12s %8s\n' config predicted_MiB measured_MiB ratio
fail=0
for c in "${CASES[@]}"; do
  name=${c%%|*}; sets=${c#*|}
  args=()
  for s in $sets; do args+=(--set "$s"); done
  out=$("$BIN" plan --config "$BASE" "${args[@]}" --measure-steps "$STEPS" --json)
  read -r pred meas <<<"$(python3 -c 'import json,sys; v=json.loads(sys.argv[1]); print(v["peak_bytes"], v["measured"]["growth_bytes"])' "$out")"
  ratio=$(python3 -c "print(f'{$pred/$meas:.3f}')")
  printf '%-42s %12.1f %12.1f %8s\n' "$name" "$(python3 -c "print($pred/1048576)")" "$(python3 -c "print($meas/1048576)")" "$ratio"
  python3 -c "import sys; sys.exit(0 if 0.8 <= $ratio <= 1.2 else 1)" || fail=1
done
exit $fail
