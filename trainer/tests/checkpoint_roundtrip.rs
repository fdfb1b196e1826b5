//! Checkpoints: AdamW moments survive a burnpack save/load (the continued run equals the
//! uninterrupted one bit for bit), interrupted saves are ignored, the last K are kept.

use burn::module::Module;
use burn::nn::{Linear, LinearConfig, RmsNorm, RmsNormConfig};
use burn::tensor::{Device, Tensor};
use mm1_trainer::checkpoint::{CheckpointDir, Counters, RngState, TrainState};
use mm1_trainer::optim::{AdamWSettings, GroupRules, GroupedAdamW};
use rand_chacha::rand_core::{RngCore, SeedableRng};

#[derive(Module, Debug)]
struct Small {
    llm: Linear,
    norm: RmsNorm,
    head: Linear,
}

impl Small {
    fn new(device: &Device) -> Self {
        Self {
            llm: LinearConfig::new(6, 8).init(device),
            norm: RmsNormConfig::new(8).init(device),
            head: LinearConfig::new(8, 3).init(device),
        }
    }

    fn loss(&self, x: Tensor<2>) -> Tensor<1> {
        self.head.forward(self.norm.forward(self.llm.forward(x).tanh())).powi_scalar(2).mean()
    }
}

fn settings() -> AdamWSettings {
    AdamWSettings {
        grad_clip: 0.5,
        groups: GroupRules { weight_decay: 0.1, ..GroupRules::default() },
        ..AdamWSettings::default()
    }
}

fn batch(step: u64, device: &Device) -> Tensor<2> {
    // Deterministic inputs per step, independent of any global RNG.
    let v: Vec<f32> = (0..24).map(|i| (((i as u64 * 31 + step * 17) % 13) as f32 - 6.0) / 4.0).collect();
    Tensor::<1>::from_floats(v.as_slice(), device).reshape([4, 6])
}

fn train(
    mut model: Small,
    optim: &mut GroupedAdamW,
    steps: std::ops::Range<u64>,
    device: &Device,
) -> (Small, Vec<f32>) {
    let mut losses = Vec::new();
    for s in steps {
        let loss = model.loss(batch(s, device));
        losses.push(loss.clone().into_scalar::<f32>());
        let grads = optim.grads(loss.backward(), &model);
        model = optim.step(1e-2, model, grads).0;
    }
    (model, losses)
}

fn params(m: &Small) -> Vec<f32> {
    let mut v: Vec<f32> = m.llm.weight.val().into_data().try_to_vec().unwrap();
    v.extend(m.norm.gamma.val().into_data().try_to_vec::<f32>().unwrap());
    v.extend(m.head.weight.val().into_data().try_to_vec::<f32>().unwrap());
    v
}

fn state(step: u64) -> TrainState {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
    for _ in 0..step {
        rng.next_u64();
    }
    TrainState {
        step,
        scheduler_step: step,
        rng: RngState::capture(&rng),
        loader: serde_json::json!({ "batches": step }),
        counters: Counters { tokens_seen: step * 10, ..Counters::default() },
        config_sha256: "abc".into(),
    }
}

#[test]
fn adamw_moments_survive_save_and_load() {
    let device = Device::flex().autodiff();
    Device::seed(&device, 3);
    let init = Small::new(&device);
    let dir = tempfile::tempdir().unwrap();
    let ckpts = CheckpointDir::new(dir.path().join("checkpoints"), 2);

    // Uninterrupted: 6 steps.
    let mut optim_a = GroupedAdamW::new(&init, &settings()).unwrap();
    let (full, losses_full) = train(init.clone(), &mut optim_a, 0..6, &device);

    // 3 steps, save, rebuild everything from a *fresh* random model, load, 3 more steps.
    let mut optim_b = GroupedAdamW::new(&init, &settings()).unwrap();
    let (half, mut losses) = train(init.clone(), &mut optim_b, 0..3, &device);
    assert!(optim_b.state_len() > 0);
    ckpts.save(&half, &optim_b, &state(3), "x = 1\n").unwrap();
    drop((half, optim_b));

    let ckpt = ckpts.latest().unwrap().expect("a checkpoint");
    assert_eq!(ckpt.state, state(3));
    assert_eq!(ckpt.config_text().unwrap(), "x = 1\n");
    let fresh = Small::new(&device);
    assert_ne!(params(&fresh), params(&init));
    let model = ckpt.load_model(fresh).unwrap();
    let optim = GroupedAdamW::new(&model, &settings()).unwrap();
    let mut optim = ckpt.load_optim(optim).unwrap();
    assert_eq!(optim.state_len(), optim_a.state_len());
    let (resumed, rest) = train(model, &mut optim, 3..6, &device);
    losses.extend(rest);

    assert_eq!(losses, losses_full, "per-step losses differ after resume");
    assert_eq!(params(&resumed), params(&full), "parameters differ after resume");

    // Control: dropping the moments (fresh optimizer) does change the trajectory, so the
    // equality above really depends on the restored state.
    let model = ckpt.load_model(Small::new(&device)).unwrap();
    let mut cold = GroupedAdamW::new(&model, &settings()).unwrap();
    let (cold_model, _) = train(model, &mut cold, 3..6, &device);
    assert_ne!(params(&cold_model), params(&full));

    // The RNG stream continues where it was.
    let mut a = ckpt.state.rng.restore();
    let mut b = rand_chacha::ChaCha8Rng::seed_from_u64(7);
    for _ in 0..3 {
        b.next_u64();
    }
    assert_eq!(a.next_u64(), b.next_u64());
}

#[test]
fn interrupted_checkpoint_is_ignored_and_last_k_are_kept() {
    let device = Device::flex().autodiff();
    let model = Small::new(&device);
    let optim = GroupedAdamW::new(&model, &settings()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("checkpoints");
    let ckpts = CheckpointDir::new(&root, 2);
    for s in [2, 4, 6] {
        ckpts.save(&model, &optim, &state(s), "").unwrap();
    }
    let steps: Vec<u64> = ckpts.list().unwrap().iter().map(|c| c.state.step).collect();
    assert_eq!(steps, [4, 6], "keep = 2");

    // A save killed mid-write: the temp folder holds a truncated model file and no state.
    let tmp = root.join(".tmp-step-00000008");
    std::fs::create_dir_all(&tmp).unwrap();
    let good = std::fs::read(root.join("step-00000006/model.bpk")).unwrap();
    std::fs::write(tmp.join("model.bpk"), &good[..good.len() / 2]).unwrap();
    // A folder with the final name but no state.json (e.g. copied by hand, half done).
    let half = root.join("step-00000010");
    std::fs::create_dir_all(&half).unwrap();
    std::fs::write(half.join("model.bpk"), &good).unwrap();
    // A folder whose state.json is cut short.
    let cut = root.join("step-00000012");
    std::fs::create_dir_all(&cut).unwrap();
    for f in ["model.bpk", "optim.bpk", "config.toml"] {
        std::fs::copy(root.join("step-00000006").join(f), cut.join(f)).unwrap();
    }
    let json = std::fs::read_to_string(root.join("step-00000006/state.json")).unwrap();
    std::fs::write(cut.join("state.json"), &json[..json.len() / 2]).unwrap();

    let latest = ckpts.latest().unwrap().unwrap();
    assert_eq!(latest.state.step, 6);
    latest.load_model(Small::new(&device)).unwrap();
    let removed = ckpts.clean_partial().unwrap();
    assert_eq!(removed, [tmp]);

    // Loading into a model of another shape fails with the file named.
    #[derive(Module, Debug)]
    struct Other {
        llm: Linear,
    }
    let other = Other { llm: LinearConfig::new(2, 2).init(&device) };
    let err = latest.load_model(other).err().unwrap().to_string();
    assert!(err.contains("model.bpk"), "{err}");
}

/// Flips two bytes in the middle of `path` (what a shared filesystem did to a user's model.bpk).
fn flip_two_bytes(path: &std::path::Path) {
    let mut bytes = std::fs::read(path).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x10;
    bytes[mid + 1] ^= 0x01;
    std::fs::write(path, bytes).unwrap();
}

#[test]
fn a_damaged_newest_checkpoint_falls_back_to_the_previous_one_naming_the_file() {
    let device = Device::flex().autodiff();
    Device::seed(&device, 5);
    let dir = tempfile::tempdir().unwrap();
    let ckpts = CheckpointDir::new(dir.path().join("checkpoints"), 0);
    let mut optim = GroupedAdamW::new(&Small::new(&device), &settings()).unwrap();
    let mut model = Small::new(&device);
    let mut saved = Vec::new();
    for step in [2u64, 4, 6] {
        model = train(model, &mut optim, step - 2..step, &device).0;
        saved.push(params(&model));
        ckpts.save(&model, &optim, &state(step), "x = 1\n").unwrap();
    }
    let path = |step: u64| ckpts.root().join(mm1_trainer::checkpoint::step_dir_name(step));
    let latest = |warnings: &mut Vec<String>| {
        ckpts.latest_verified(&mut |m| warnings.push(m)).map(|c| c.map(|c| c.state.step))
    };

    // intact: the newest, and its manifest lists every file
    let mut warnings = Vec::new();
    assert_eq!(latest(&mut warnings).unwrap(), Some(6));
    assert!(warnings.is_empty(), "{warnings:?}");
    let manifest: mm1_trainer::checkpoint::Manifest =
        serde_json::from_str(&std::fs::read_to_string(path(6).join("manifest.json")).unwrap()).unwrap();
    let names: Vec<&str> = manifest.files.keys().map(String::as_str).collect();
    assert_eq!(names, ["config.toml", "model.bpk", "optim.bpk", "state.json"]);

    // two flipped bytes in the newest weights: step 4 is used, and the warning names the file
    flip_two_bytes(&path(6).join("model.bpk"));
    let mut warnings = Vec::new();
    assert_eq!(latest(&mut warnings).unwrap(), Some(4));
    assert_eq!(warnings.len(), 1);
    assert!(
        warnings[0].contains("step-00000006") && warnings[0].contains("model.bpk: CRC-32C"),
        "{}",
        warnings[0]
    );
    let ckpt = ckpts.latest_verified(&mut |_| {}).unwrap().unwrap();
    assert_eq!(
        params(&ckpt.load_model(Small::new(&device)).unwrap()),
        saved[1],
        "step 4's weights load intact"
    );

    // a truncated optimizer file in step 4 as well: back to step 2, both named
    let optim_4 = path(4).join("optim.bpk");
    let len = std::fs::metadata(&optim_4).unwrap().len();
    std::fs::OpenOptions::new().write(true).open(&optim_4).unwrap().set_len(len / 2).unwrap();
    let mut warnings = Vec::new();
    assert_eq!(latest(&mut warnings).unwrap(), Some(2));
    assert!(
        warnings[1].contains("optim.bpk") && warnings[1].contains(&format!("the manifest says {len}")),
        "{warnings:?}"
    );

    // nothing intact: an error naming every damaged checkpoint, not a fresh start
    flip_two_bytes(&path(2).join("optim.bpk"));
    let err = latest(&mut Vec::new()).unwrap_err().to_string();
    assert!(err.contains("no intact checkpoint") && err.contains("step-00000002"), "{err}");

    // a checkpoint written before manifests existed is used, with a warning
    std::fs::remove_file(path(2).join("optim.bpk")).unwrap();
    ckpts.save(&model, &optim, &state(8), "x = 1\n").unwrap();
    std::fs::remove_file(path(8).join("manifest.json")).unwrap();
    let mut warnings = Vec::new();
    assert_eq!(latest(&mut warnings).unwrap(), Some(8));
    assert!(warnings[0].contains("no manifest.json"), "{warnings:?}");
}
