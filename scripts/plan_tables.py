#!/usr/bin/env python3
"""The "Planning a run" tables of docs/training.md: `mm1-train plan --json` on the shipped
MM1 configs, as shipped and under the settings chosen for 8 x 80 GB (H100 SXM: 989 dense bf16
TFLOP/s, 40 % MFU assumed).  usage: scripts/plan_tables.py path/to/mm1-train"""
import json, subprocess, sys

BIN = sys.argv[1]
GIB = 2**30
EIGHT = ["--set", "parallel.dp=8"]
# config, (precision, activation checkpointing, ZeRO) for 8 x 80 GB, batch per rank (grad_accum
# keeps 512 sequences per step); the MoE configs shard their experts with parallel.ep = 8, which
# ZeRO does not combine with (parallel.zero = 0 there)
ROWS = [
    ("mm1-ablation-base", ("f32", "none", 0), 1),
    ("mm1-ablation-base", ("bf16", "blocks", 1), 4),
    ("mm1-3b", ("bf16", "blocks", 1), 4),
    ("mm1-7b", ("bf16", "blocks", 1), 2),
    ("mm1-7b", ("bf16", "blocks", 2), 2),
    ("mm1-7b", ("bf16", "blocks", 2), 4),
    ("mm1-30b", ("bf16", "blocks", 2), 1),
    ("mm1-3b-moe", ("bf16", "blocks", 0), 1),
    ("mm1-7b-moe", ("bf16", "blocks", 0), 1),
]


def settings(precision, checkpointing, zero):
    return ["--set", f"train.precision={precision}", "--set", f"train.activation_checkpointing={checkpointing}",
            "--set", f"parallel.zero={zero}"]


def plan(cfg, args):
    cmd = [BIN, "plan", "--config", f"configs/{cfg}.toml", "--peak-tflops", "989", "--mfu", "0.4", "--json", *args]
    return json.loads(subprocess.check_output(cmd))


def b(n):
    return f"{n / 1e9:.2f}B"


print("| config | params total / active | as shipped (f32, dp 64, batch 8): peak per rank |")
print("|---|---|---|")
for cfg in ["mm1-ablation-base", "mm1-3b", "mm1-7b", "mm1-30b", "mm1-3b-moe", "mm1-7b-moe"]:
    v = plan(cfg, [])
    p = v["plan"]["params"]
    total = p["vision"] + p["connector"] + p["llm_dense"] + p["experts"]
    active = total - p["experts"] + p["experts_active"]
    parts = f'vision {b(p["vision"])}, connector {p["connector"] / 1e6:.1f}M, llm {b(p["llm_dense"])}, experts {b(p["experts"])}'
    print(f"| {cfg} | {b(total)} / {b(active)} ({parts}) | {v['peak_bytes'] / GIB:.0f} GiB |")
print()
print("| config on 8 ranks | precision, checkpointing, ZeRO | batch x accum | weights | master | grads | AdamW | activations | peak | 80 GB | FLOPs/step/rank | s/step | tokens/s (8 ranks) |")
print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
for cfg, what, bs in ROWS:
    ga = 64 // bs
    v = plan(cfg, EIGHT + ["--set", f"data.batch_size={bs}", "--set", f"optim.grad_accum={ga}", *settings(*what)])
    m, pl = v["plan"]["memory"], v["plan"]
    g = lambda k: f"{m[k] / GIB:.1f}"
    peak = v["peak_bytes"]
    fits = "fits" if peak <= 80e9 else "**no**"
    flops = sum(pl["step_flops"])
    tps = pl["tokens_per_step"] / pl["step_time_s"] * 8
    print(f"| {cfg} | {what[0]}, {what[1]}, {what[2]} | {bs} x {ga} | {g('weights')} | {g('master')} | {g('gradients')} | {g('optimizer')} | {g('activations')} | {peak / GIB:.1f} GiB | {fits} | {flops / 1e15:.2f} PFLOP | {pl['step_time_s']:.1f} | {tps:,.0f} |")
