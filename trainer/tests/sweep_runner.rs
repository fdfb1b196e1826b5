//! The local runner and the Slurm script, driven by a fake trainer (a shell script that records its
//! arguments, writes metrics.jsonl and a checkpoint, and crashes once for the runs named in a folder):
//! an interrupted sweep resumes without redoing finished arms, and array index i runs plan.runs[i].

use std::path::{Path, PathBuf};
use std::process::Command;

use mm1_trainer::sweep::{
    RunOutcome, RunnerOptions, evaluator_command, plan_file, run_sweep, slurm_script, trainer_command,
};

const FAKE_TRAINER: &str = r#"#!/bin/bash
set -e
crash_dir="$1"; shift
args="$*"; run_dir=""; resume=0
while [ $# -gt 0 ]; do
  case "$1" in --run-dir) run_dir="$2"; shift 2 ;; --resume) resume=1; shift ;; *) shift ;; esac
done
mkdir -p "$run_dir/checkpoints"
echo "$args" >> "$run_dir/invocations.txt"
if [ "$resume" = 0 ]; then echo '{"step": 1, "loss": 3.0}' > "$run_dir/metrics.jsonl"; fi
mkdir -p "$run_dir/checkpoints/step-1" && echo '{"step": 1}' > "$run_dir/checkpoints/step-1/state.json"
name=$(basename "$run_dir")
if [ -f "$crash_dir/$name" ]; then rm "$crash_dir/$name"; echo "simulated crash" >&2; exit 3; fi
echo '{"step": 2, "loss": 2.0}' >> "$run_dir/metrics.jsonl"
"#;

/// Checks the run has a checkpoint and writes eval.json where `--out` says, recording `--shots`.
const FAKE_EVAL: &str = r#"#!/bin/bash
set -e
while [ $# -gt 0 ]; do
  case "$1" in --checkpoint) ckpt="$2"; shift 2 ;; --out) out="$2"; shift 2 ;; --shots) shots="$2"; shift 2 ;; *) shift ;; esac
done
test -f "$ckpt/checkpoints/step-1/state.json"
echo "{\"scores\": {\"synth_vqa/0shot/vqa_accuracy\": 0.5}, \"shots\": \"$shots\"}" > "$out"
"#;

struct Setup {
    _dir: tempfile::TempDir,
    root: PathBuf,
    sweep: PathBuf,
    crash: PathBuf,
}

fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();
    std::fs::write(root.join("base.toml"), "[model.vision]\nimage_size = 32\n").unwrap();
    std::fs::write(root.join("fake-train.sh"), FAKE_TRAINER).unwrap();
    std::fs::write(root.join("fake-eval.sh"), FAKE_EVAL).unwrap();
    let crash = root.join("crash");
    std::fs::create_dir_all(&crash).unwrap();
    let sweep = root.join("tiny.toml");
    std::fs::write(
        &sweep,
        format!(
            "base = \"base.toml\"\nseeds = [0, 1]\nsteps = 2\ntrainer = [\"bash\", \"{}\", \"{}\"]\n\
             [axes]\n\"model.vision.image_size\" = [32, 48]\n\"model.connector\" = [{{ kind = \"avg_pool\" }}]\n\
             [eval]\nshots = [0, 2]\ncommand = [\"bash\", \"{}\"]\n",
            root.join("fake-train.sh").display(),
            crash.display(),
            root.join("fake-eval.sh").display()
        ),
    )
    .unwrap();
    Setup { _dir: dir, root, sweep, crash }
}

fn invocations(run_dir: &Path) -> Vec<String> {
    std::fs::read_to_string(run_dir.join("invocations.txt"))
        .unwrap_or_default()
        .lines()
        .map(String::from)
        .collect()
}

#[test]
fn interrupted_sweep_resumes_without_redoing_finished_arms() {
    let s = setup();
    let plan = plan_file(&s.sweep).unwrap();
    assert_eq!(plan.runs.len(), 6); // (control, image_size 48, avg_pool) x 2 seeds
    let out = s.root.join("out");
    let opts =
        RunnerOptions { parallel: 2, trainer: trainer_command(&plan), evaluator: evaluator_command(&plan) };
    let crashed = &plan.runs[3].run_id;
    std::fs::write(s.crash.join(crashed), "").unwrap();

    let first = run_sweep(&plan, &out, &opts).unwrap();
    for (id, outcome) in &first {
        if id == crashed {
            assert!(matches!(outcome, RunOutcome::Failed { exit_code: Some(3), .. }), "{outcome:?}");
            assert!(!out.join(id).join("done.json").exists());
        } else {
            assert!(matches!(outcome, RunOutcome::Completed { resumed: false, .. }), "{id}: {outcome:?}");
        }
    }
    let second = run_sweep(&plan, &out, &opts).unwrap();
    for (id, outcome) in &second {
        let calls = invocations(&out.join(id));
        if id == crashed {
            assert!(matches!(outcome, RunOutcome::Completed { resumed: true, .. }), "{outcome:?}");
            assert_eq!(calls.len(), 2);
            assert!(!calls[0].ends_with("--resume") && calls[1].ends_with("--resume"), "{calls:?}");
        } else {
            assert_eq!(*outcome, RunOutcome::AlreadyDone, "{id}");
            assert_eq!(calls.len(), 1, "{id} ran again: {calls:?}");
        }
        let done: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(out.join(id).join("done.json")).unwrap()).unwrap();
        assert_eq!(done["run_id"], id.as_str());
        assert_eq!(done["attempts"], if id == crashed { 2 } else { 1 });
        // Every finished run was evaluated with the sweep's protocol.
        let eval: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(out.join(id).join("eval.json")).unwrap()).unwrap();
        assert_eq!(eval["shots"], "0,2");
    }
    // Changing what every arm gets (here: steps) is refused instead of reusing the old results.
    let changed = std::fs::read_to_string(&s.sweep).unwrap().replace("steps = 2", "steps = 3");
    std::fs::write(&s.sweep, changed).unwrap();
    let err = run_sweep(&plan_file(&s.sweep).unwrap(), &out, &opts).unwrap_err().to_string();
    assert!(err.contains("finished with other arguments") && err.contains("train.steps=3"), "{err}");
    // The resumed run ends with the same metrics as one that never stopped.
    let resumed = std::fs::read_to_string(out.join(crashed).join("metrics.jsonl")).unwrap();
    let clean = std::fs::read_to_string(out.join(&plan.runs[2].run_id).join("metrics.jsonl")).unwrap();
    assert_eq!(resumed, clean);
    // Arguments: base config, steps, delta and seed as --set, the run folder.
    let args = &invocations(&out.join(&plan.runs[1].run_id))[0];
    assert!(args.starts_with(&format!("--config {}", s.root.join("base.toml").display())), "{args}");
    assert!(args.contains("--set train.steps=2") && args.contains("--set train.seed=1"), "{args}");
    assert!(args.contains("--set data.seed=1"), "a seed also varies the data order: {args}");
    let sweep_json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("sweep.json")).unwrap()).unwrap();
    assert_eq!(sweep_json["runs"].as_array().unwrap().len(), 6);
}

#[test]
fn slurm_script_passes_bash_n_and_runs_the_arm_of_its_array_index() {
    let s = setup();
    let plan = plan_file(&s.sweep).unwrap();
    let out = s.root.join("out");
    let script = s.root.join("sweep.sbatch");
    std::fs::write(&script, slurm_script(&plan, &out, &trainer_command(&plan), &evaluator_command(&plan)))
        .unwrap();
    let syntax = Command::new("bash").arg("-n").arg(&script).output().unwrap();
    assert!(syntax.status.success(), "{}", String::from_utf8_lossy(&syntax.stderr));
    let text = std::fs::read_to_string(&script).unwrap();
    assert!(text.contains(&format!("#SBATCH --array=0-{}", plan.runs.len() - 1)), "{text}");

    for i in [0usize, 3, 5] {
        let status =
            Command::new("bash").arg(&script).env("SLURM_ARRAY_TASK_ID", i.to_string()).status().unwrap();
        assert!(status.success());
        let run = &plan.runs[i];
        let calls = invocations(&out.join(&run.run_id));
        assert_eq!(calls.len(), 1, "index {i}");
        // Same arguments as the local runner would pass.
        let local = mm1_trainer::sweep::trainer_args(&plan, run, &out, false).join(" ");
        assert_eq!(calls[0], local);
        let done: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(out.join(&run.run_id).join("done.json")).unwrap())
                .unwrap();
        assert_eq!(done["seed"], run.seed);
        assert_eq!(done["arm"], plan.arms[run.arm].name.as_str());
        assert!(out.join(&run.run_id).join("eval.json").is_file(), "index {i} evaluated");
    }
    // Only those three ran; a second submission of index 3 skips it.
    let ran = plan.runs.iter().filter(|r| out.join(&r.run_id).join("done.json").exists()).count();
    assert_eq!(ran, 3);
    let again = Command::new("bash").arg(&script).env("SLURM_ARRAY_TASK_ID", "3").output().unwrap();
    assert!(String::from_utf8_lossy(&again.stdout).contains("already finished"));
    assert_eq!(invocations(&out.join(&plan.runs[3].run_id)).len(), 1);
    // Out-of-range index fails clearly.
    let bad = Command::new("bash").arg(&script).env("SLURM_ARRAY_TASK_ID", "99").output().unwrap();
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("outside 0..5"));
}

/// `sbatch` stand-in: records its arguments, then answers like Slurm (or fails like it).
const FAKE_SBATCH: &str = r#"#!/bin/bash
echo "$@" >> "$(dirname "$0")/sbatch-calls.txt"
if [ -n "$SBATCH_FAIL" ]; then echo "sbatch: error: Batch job submission failed: Invalid account" >&2; exit 1; fi
echo "Submitted batch job 4242"
"#;

#[test]
fn slurm_submit_hands_the_written_script_to_sbatch_and_reports_its_answer() {
    let s = setup();
    // A shipped sweep: the binary validates every arm's config before writing the script.
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("../ablations/sweeps/resolution_cpu.toml");
    let bin = s.root.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let sbatch = bin.join("sbatch");
    std::fs::write(&sbatch, FAKE_SBATCH).unwrap();
    std::fs::set_permissions(&sbatch, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap_or_default());
    let out_dir = s.root.join("out");
    let sweep = |fail: bool| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_mm1-sweep"));
        c.args(["slurm", file.to_str().unwrap(), "--out", out_dir.to_str().unwrap(), "--submit"]);
        c.env("PATH", &path);
        if fail {
            c.env("SBATCH_FAIL", "1");
        }
        c.output().unwrap()
    };

    let ok = sweep(false);
    let stdout = String::from_utf8_lossy(&ok.stdout);
    assert!(ok.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&ok.stderr));
    assert!(stdout.contains("Submitted batch job 4242"), "{stdout}");
    let calls = std::fs::read_to_string(bin.join("sbatch-calls.txt")).unwrap();
    let script = out_dir.join("slurm/sweep.sbatch");
    assert_eq!(calls.trim(), script.display().to_string());
    assert!(script.is_file());

    let failed = sweep(true);
    let stderr = String::from_utf8_lossy(&failed.stderr);
    assert!(!failed.status.success());
    assert!(stderr.contains("sbatch") && stderr.contains("Invalid account"), "{stderr}");
}
