//! Report rendering from synthetic run folders: table cells equal mean ± sample std computed by hand,
//! plots hold one curve per arm and one error bar per multi-seed point, the HTML is self-contained.

use std::path::Path;

use mm1_sweep::report::{collect, mean_std, write_report};
use mm1_sweep::{plan_file, write_plan};

fn write(p: &Path, text: &str) {
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, text).unwrap();
}

#[test]
fn report_tables_plots_and_deltas() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    write(
        &root.join("base.toml"),
        "[model.vision]\nimage_size = 32\n[model.connector]\nkind = \"c_abstractor\"\n",
    );
    write(
        &root.join("s.toml"),
        "name = \"res\"\nbase = \"base.toml\"\nseeds = [0, 1, 2]\n[axes]\n\"model.vision.image_size\" = [32, 48, 64]\n\
         \"model.connector\" = [{ kind = \"avg_pool\" }]\n",
    );
    let plan = plan_file(&root.join("s.toml")).unwrap();
    assert_eq!(plan.arms.len(), 4); // base(32), 48, 64, avg_pool
    let out = root.join("sweep");
    write_plan(&plan, &out).unwrap();

    // Synthetic results: accuracy grows with resolution, seeds add +0/+0.01/+0.02; seed 2 of the
    // avg_pool arm never ran.
    let mut expected_acc = vec![vec![]; plan.arms.len()];
    for r in &plan.runs {
        let arm = &plan.arms[r.arm];
        let res = arm.axis_values["model.vision.image_size"].as_integer().unwrap() as f64;
        if arm.name.starts_with("connector") && r.seed == 2 {
            continue;
        }
        let acc = res / 100.0 + 0.01 * r.seed as f64;
        expected_acc[r.arm].push(acc);
        let run = out.join(&r.run_id);
        let metrics: String = (1..=5)
            .map(|s| {
                format!(
                    "{{\"step\": {}, \"loss\": {}, \"tokens\": {}}}\n",
                    s * 10,
                    5.0 - s as f64 * 0.5 - acc,
                    s * 1000
                )
            })
            .collect::<String>()
            + "{\"step\": 50, \"eval/caption_loss\": 2.5}\n";
        write(&run.join("metrics.jsonl"), &metrics);
        write(
            &run.join("eval.json"),
            &format!(
                "{{\"scores\": {{\"synth_vqa/0shot/vqa_accuracy\": {acc}, \"synth_vqa/4shot/vqa_accuracy\": {acc}}}}}"
            ),
        );
        write(&run.join("done.json"), &format!("{{\"run_id\": \"{}\", \"wall_time_s\": 12.5}}", r.run_id));
    }

    let data = collect(&out).unwrap();
    assert_eq!(
        data.metrics,
        [
            "synth_vqa/0shot/vqa_accuracy",
            "synth_vqa/4shot/vqa_accuracy",
            "eval/caption_loss",
            "train_loss",
            "tokens",
            "wall_time_s"
        ]
    );
    for (arm, expected) in data.arms.iter().zip(&expected_acc) {
        let ms = arm.stats["synth_vqa/4shot/vqa_accuracy"];
        let reference = mean_std(expected).unwrap();
        assert_eq!(ms.n, expected.len());
        assert!((ms.mean - reference.mean).abs() < 1e-12 && (ms.std - reference.std).abs() < 1e-12);
        assert!((ms.std - if expected.len() == 3 { 0.01 } else { 0.01 / 2f64.sqrt() }).abs() < 1e-12);
        assert_eq!(arm.stats["tokens"].mean, 5000.0);
        assert_eq!(arm.mean_curve.len(), 5);
    }
    let written = write_report(&data).unwrap();
    let md = std::fs::read_to_string(out.join("report.md")).unwrap();
    let html = std::fs::read_to_string(out.join("report.html")).unwrap();
    // Table: the 48 px arm has accuracies 0.48/0.49/0.50 → 0.4900 ± 0.01000; the avg_pool arm ran 2 of 3 seeds.
    // One table per score with a column per shot count, then losses and cost with seeds done.
    let score_table = &md[md.find("### synth_vqa/vqa_accuracy").unwrap()..];
    assert!(score_table.contains("| arm | 0-shot | 4-shot |"), "{score_table}");
    let row = score_table.lines().find(|l| l.starts_with("| image_size-48 ")).unwrap();
    assert_eq!(row, "| image_size-48 | 0.4900 ± 0.01000 | 0.4900 ± 0.01000 |");
    let cost = &md[md.find("### losses and cost").unwrap()..];
    let row = cost.lines().find(|l| l.starts_with("| image_size-48 ")).unwrap();
    assert!(row.ends_with("| 3/3 |") && row.contains("| 12.50 ± 0 |"), "{row}");
    let row = cost.lines().find(|l| l.starts_with("| connector-avg_pool ")).unwrap();
    assert!(row.ends_with("| 2/3 |"), "{row}");
    // Deltas name the base value and the new one.
    assert!(md.contains("`model.vision.image_size: 32 → 48`"), "{md}");
    // The base side is the resolved section, defaults included.
    let line = md.lines().find(|l| l.starts_with("- **connector-avg_pool**")).unwrap();
    assert!(
        line.contains("kind = \"c_abstractor\"")
            && line.contains("hidden = ")
            && line.ends_with("→ { kind = \"avg_pool\" }`"),
        "{line}"
    );
    // Loss plot: one polyline per arm. Resolution plot: control + 2 arms, 3 error bars each 3 seeds.
    let loss = std::fs::read_to_string(out.join("plots/loss.svg")).unwrap();
    assert_eq!(loss.matches("<polyline").count(), 4);
    let res =
        std::fs::read_to_string(out.join("plots/model_vision_image_size__synth_vqa_0shot_vqa_accuracy.svg"))
            .unwrap();
    assert_eq!(res.matches("<circle").count(), 3);
    assert_eq!(res.matches("<path").count(), 3);
    // Connector plot is categorical: base value and avg_pool as labels.
    let con =
        std::fs::read_to_string(out.join("plots/model_connector__synth_vqa_0shot_vqa_accuracy.svg")).unwrap();
    assert!(con.contains(">avg_pool</text>") && con.contains(">c_abstractor</text>"), "{con}");
    // HTML: the same plots inline, nothing external.
    assert_eq!(html.matches("<svg").count(), written.len() - 3, "report.md, report.html, runs.jsonl");
    assert!(!html.contains("src=") && !html.contains("href="));
    assert!(md.contains("![") && md.contains("plots/loss.svg"));
}

#[test]
fn report_of_a_missing_sweep_names_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let err = collect(dir.path()).unwrap_err().to_string();
    assert!(err.contains("sweep.json"), "{err}");
}
