#!/usr/bin/env python3
"""Tables of the CPU study's write-up (docs/results/ablations-cpu.md) from a finished sweep folder.

    python3 scripts/study_tables.py runs/sweeps/study_cpu > tables.md
    python3 scripts/study_tables.py runs/sweeps/study_cpu runs/sweeps/MORE_SEEDS > tables.md

Further folders add seeds: their runs join the first folder's arm of the same name (a sweep over
fewer arms with other seeds, such as the token arms alone with seeds 4-7).

Reads the plan (`sweep.json`), each run's `eval.json` (0-shot forced choice, 4-shot generative VQA
on the two tasks the study scores few-shot, 0-shot captioning CIDEr-D, their blank-image baselines,
the majority answer) and the last line of its
`metrics.jsonl` (held-out loss per source), and prints, per axis, every arm's mean over seeds
beside the control's, and the paired difference (same seed) with its 95 % t interval over seeds and
how many standard errors it lies from 0. A difference is an "effect" only when its interval
excludes 0, else "not separated" (the wording of mm1-report). Standard library only.
"""

import json
import math
import sys
from pathlib import Path

# Two-sided 95 % Student t quantiles by degrees of freedom.
T975 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262}

# (row label, eval.json key or metrics key, which file)
METRICS = [
    ("stripes, 0-shot choice (gate: resolution)", "synth_vqa_stripes/0shot/choice_accuracy", "eval"),
    ("patch_colour, 0-shot choice (gate: none)", "synth_vqa_patch_colour/0shot/choice_accuracy", "eval"),
    ("row_index, 0-shot choice (gate: tokens)", "synth_vqa_row_index/0shot/choice_accuracy", "eval"),
    ("row_colour, 0-shot choice (gate: none)", "synth_vqa_row_colour/0shot/choice_accuracy", "eval"),
    ("colour, 0-shot choice", "synth_vqa_colour/0shot/choice_accuracy", "eval"),
    ("counting, 0-shot choice", "synth_vqa_counting/0shot/choice_accuracy", "eval"),
    ("position, 0-shot choice", "synth_vqa_position/0shot/choice_accuracy", "eval"),
    ("reading, 0-shot choice", "synth_vqa_reading/0shot/choice_accuracy", "eval"),
    ("captioning CIDEr-D, 0-shot", "synth_captions/0shot/cider", "eval"),
    ("patch_colour, 4-shot VQA acc.", "synth_vqa_patch_colour/4shot/vqa_accuracy", "eval"),
    ("stripes, 4-shot VQA acc.", "synth_vqa_stripes/4shot/vqa_accuracy", "eval"),
    ("held-out loss, caption", "eval/loss/caption", "metrics"),
    ("held-out loss, interleaved", "eval/loss/interleaved", "metrics"),
    ("held-out loss, text", "eval/loss/text", "metrics"),
]


def fmt(x):
    return "–" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.3f}"


def t_interval(values):
    n = len(values)
    if n < 2:
        return None
    mean = sum(values) / n
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    se = sd / math.sqrt(n)
    half = T975.get(n - 1, 1.96) * se
    ses = abs(mean) / se if se > 0 else (math.inf if mean != 0 else 0.0)
    return mean, mean - half, mean + half, ses


def load_runs(folder):
    plan = json.loads((folder / "sweep.json").read_text())
    runs = {}
    for r in plan["runs"]:
        d = folder / r["run_id"]
        if not (d / "done.json").exists():
            continue
        scores = json.loads((d / "eval.json").read_text())["scores"]
        last = [json.loads(line) for line in (d / "metrics.jsonl").read_text().splitlines() if line.strip()][-1]
        runs[(r["arm"], r["seed"])] = {"eval": scores, "metrics": last}
    return plan, runs


def value(run, key, where):
    v = run[where].get(key)
    return float(v) if isinstance(v, (int, float)) else None


def compare(plan, runs, arm, ref, title):
    """Markdown table: arm vs ref (paired by seed) on every metric."""
    names = [a["name"] for a in plan["arms"]]
    out = [f"### {title}: `{names[arm]}` − `{names[ref]}`", ""]
    out.append("| metric | control mean | arm mean | blank (arm) | difference [95 % t, seeds] | SEs from 0 | seeds | reading |")
    out.append("|---|---|---|---|---|---|---|---|")
    for label, key, where in METRICS:
        pairs = []
        blanks = []
        for (a, s), run in runs.items():
            if a != arm or (ref, s) not in runs:
                continue
            x, y = value(run, key, where), value(runs[(ref, s)], key, where)
            if x is None or y is None:
                continue
            pairs.append((x, y))
            b = value(run, key.replace("/choice_accuracy", "/choice_accuracy_blank"), where) if "choice" in key else None
            if b is not None:
                blanks.append(b)
        if not pairs:
            continue
        diff = t_interval([x - y for x, y in pairs])
        arm_mean = sum(x for x, _ in pairs) / len(pairs)
        ref_mean = sum(y for _, y in pairs) / len(pairs)
        blank = sum(blanks) / len(blanks) if blanks else None
        if diff is None:
            out.append(f"| {label} | {fmt(ref_mean)} | {fmt(arm_mean)} | {fmt(blank)} | – | – | {len(pairs)} | not separated |")
            continue
        mean, lo, hi, ses = diff
        reading = "effect" if lo > 0 or hi < 0 else "not separated"
        ses_s = "∞" if math.isinf(ses) else f"{ses:.1f}"
        out.append(
            f"| {label} | {fmt(ref_mean)} | {fmt(arm_mean)} | {fmt(blank)} | {mean:+.3f} [{lo:+.3f}, {hi:+.3f}] | {ses_s} | {len(pairs)} | {reading} |"
        )
    return "\n".join(out) + "\n"


def per_seed(plan, runs, key, where="eval"):
    """Markdown table of one metric per arm and seed (the lottery view)."""
    seeds = plan["seeds"]
    out = [f"| arm | " + " | ".join(f"seed {s}" for s in seeds) + " |", "|---|" + "---|" * len(seeds)]
    for i, a in enumerate(plan["arms"]):
        cells = [fmt(value(runs[(i, s)], key, where)) if (i, s) in runs else "–" for s in seeds]
        out.append(f"| `{a['name']}` | " + " | ".join(cells) + " |")
    return "\n".join(out) + "\n"


def add_seeds(plan, runs, folder):
    """Runs of another sweep folder, joined to `plan`'s arm of the same name."""
    other, extra = load_runs(folder)
    names = [a["name"] for a in plan["arms"]]
    for (a, s), run in extra.items():
        name = other["arms"][a]["name"]
        if name not in names:
            sys.exit(f"{folder}: arm {name!r} is not an arm of the first folder")
        if (names.index(name), s) in runs:
            sys.exit(f"{folder}: arm {name!r} seed {s} is already in the first folder")
        runs[(names.index(name), s)] = run
    plan["seeds"] = sorted(set(plan["seeds"]) | set(other["seeds"]))
    plan["runs"] = plan["runs"] + other["runs"]


def main():
    folders = [Path(f) for f in sys.argv[1:]] or [Path("runs/sweeps/study_cpu")]
    plan, runs = load_runs(folders[0])
    for folder in folders[1:]:
        add_seeds(plan, runs, folder)
    sources = ", ".join(str(f) for f in folders)
    names = [a["name"] for a in plan["arms"]]
    # A grid over one axis (the token arms alone, with more seeds) has no unchanged arm: no control.
    control = next((i for i, a in enumerate(plan["arms"]) if not a["delta"]), None)
    print(f"{len(runs)} finished runs of {len(plan['runs'])} in {sources}\n")
    for i, name in enumerate(names):
        if control is not None and i != control:
            print(compare(plan, runs, i, control, "Arm against the control"))
    if "tokens-64" in names and "tokens-4" in names:
        print(compare(plan, runs, names.index("tokens-64"), names.index("tokens-4"), "Tokens, extremes"))
    for label, key, where in METRICS[:4]:
        print(f"### Per seed: {label}\n")
        print(per_seed(plan, runs, key, where))


if __name__ == "__main__":
    main()
