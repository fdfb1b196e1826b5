//! AdamW groups and global-norm clipping against a hand computation in f64.

use std::collections::BTreeMap;

use burn::module::{Module, Param};
use burn::tensor::{Device, Tensor, TensorData};
use mm1_trainer::optim::{AdamWSettings, GroupRules, GroupedAdamW, clip_global_norm, list_params};

#[derive(Module, Debug)]
struct Part {
    weight: Param<Tensor<2>>,
    bias: Param<Tensor<1>>,
}

#[derive(Module, Debug)]
struct Toy {
    vision: Part,
    llm: Part,
}

fn part(w: [[f32; 2]; 2], b: [f32; 2], device: &Device) -> Part {
    Part {
        weight: Param::from_tensor(Tensor::from_floats(w, device)),
        bias: Param::from_tensor(Tensor::from_floats(b, device)),
    }
}

fn toy(device: &Device) -> Toy {
    Toy {
        vision: part([[0.5, -1.0], [2.0, 0.25]], [0.1, -0.2], device),
        llm: part([[1.5, 0.75], [-0.5, 1.0]], [0.3, 0.4], device),
    }
}

/// Flattened values of all parameters, in a fixed order.
fn values(m: &Toy) -> Vec<f64> {
    let mut out = Vec::new();
    for p in [&m.vision, &m.llm] {
        out.extend(p.weight.val().into_data().iter::<f32>().map(f64::from));
        out.extend(p.bias.val().into_data().iter::<f32>().map(f64::from));
    }
    out
}

/// loss = sum_i c_i * theta_i, so d loss / d theta = c exactly.
fn grads_for(m: &Toy, c: &[f32; 12], device: &Device) -> burn::tensor::Gradients {
    let coef = |r: std::ops::Range<usize>, shape: Vec<usize>| TensorData::new(c[r].to_vec(), shape);
    let l = (m.vision.weight.val() * Tensor::<2>::from_data(coef(0..4, vec![2, 2]), device)).sum()
        + (m.vision.bias.val() * Tensor::<1>::from_data(coef(4..6, vec![2]), device)).sum()
        + (m.llm.weight.val() * Tensor::<2>::from_data(coef(6..10, vec![2, 2]), device)).sum()
        + (m.llm.bias.val() * Tensor::<1>::from_data(coef(10..12, vec![2]), device)).sum();
    l.backward()
}

#[test]
fn paths_follow_module_fields() {
    let device = Device::flex().autodiff();
    let paths: Vec<String> = list_params(&toy(&device)).into_iter().map(|p| p.path).collect();
    assert_eq!(paths, ["vision.weight", "vision.bias", "llm.weight", "llm.bias"]);
}

#[test]
fn global_norm_clipping_matches_hand_computation() {
    let device = Device::flex().autodiff();
    let model = toy(&device);
    // Gradient entries 1,2,2,4 | 0,0 | 0,0,0,0 | 12,0: squares sum to 25 + 144 = 169, norm 13.
    let c = [1., 2., 2., 4., 0., 0., 0., 0., 0., 0., 12., 0.];
    let optim = GroupedAdamW::new(&model, &AdamWSettings::default()).unwrap();
    let grads = optim.grads(grads_for(&model, &c, &device), &model);
    let (grads, norm) = clip_global_norm(&model, grads, 1.3);
    assert!((norm - 13.0).abs() < 1e-5, "norm {norm} != 13");
    // Every tensor is scaled by the same factor 1.3 / (13 + 1e-6), unlike per-tensor clipping
    // which would scale vision.weight (norm 5) by 1.3/5 and llm.bias (norm 12) by 1.3/12.
    let scale = 1.3 / (13.0 + 1e-6);
    let w: Vec<f32> = grads.get::<2>(model.vision.weight.id).unwrap().into_data().try_to_vec().unwrap();
    let b: Vec<f32> = grads.get::<1>(model.llm.bias.id).unwrap().into_data().try_to_vec().unwrap();
    for (got, want) in w.iter().zip([1.0, 2.0, 2.0, 4.0]) {
        assert!((*got as f64 - want * scale).abs() < 1e-6, "{got} vs {}", want * scale);
    }
    assert!((b[0] as f64 - 12.0 * scale).abs() < 1e-6);

    // Under the threshold nothing changes.
    let grads = optim.grads(grads_for(&model, &c, &device), &model);
    let (grads, norm) = clip_global_norm(&model, grads, 20.0);
    assert!((norm - 13.0).abs() < 1e-5);
    let w: Vec<f32> = grads.get::<2>(model.vision.weight.id).unwrap().into_data().try_to_vec().unwrap();
    assert_eq!(w, [1.0, 2.0, 2.0, 4.0]);
}

/// Reference AdamW in f64 (torch.optim.AdamW semantics).
struct RefAdamW {
    m: Vec<f64>,
    v: Vec<f64>,
    t: i32,
}

impl RefAdamW {
    fn step(&mut self, p: &mut [f64], g: &[f64], lr: &[f64], wd: &[f64], b1: f64, b2: f64, eps: f64) {
        self.t += 1;
        for i in 0..p.len() {
            self.m[i] = b1 * self.m[i] + (1.0 - b1) * g[i];
            self.v[i] = b2 * self.v[i] + (1.0 - b2) * g[i] * g[i];
            let mh = self.m[i] / (1.0 - b1.powi(self.t));
            let vh = self.v[i] / (1.0 - b2.powi(self.t));
            p[i] = p[i] * (1.0 - lr[i] * wd[i]) - lr[i] * mh / (vh.sqrt() + eps);
        }
    }
}

#[test]
fn grouped_adamw_matches_reference_with_decay_groups_lr_mult_and_freeze() {
    let device = Device::flex().autodiff();
    let mut model = toy(&device);
    let settings = AdamWSettings {
        beta1: 0.9,
        beta2: 0.95,
        eps: 1e-8,
        grad_clip: 0.0,
        groups: GroupRules {
            weight_decay: 0.1,
            lr_mult: BTreeMap::from([("llm".to_string(), 0.5)]),
            ..GroupRules::default()
        },
    };
    let mut optim = GroupedAdamW::new(&model, &settings).unwrap();
    assert_eq!(optim.plan().decay, ["vision.weight", "llm.weight"]);
    assert_eq!(optim.plan().no_decay, ["vision.bias", "llm.bias"]);

    let base_lr = 0.01;
    // Per scalar: lr (llm at half rate) and weight decay (biases exempt).
    let lr: Vec<f64> = (0..12).map(|i| if i < 6 { base_lr } else { base_lr * 0.5 }).collect();
    let wd: Vec<f64> = (0..12).map(|i| if i % 6 < 4 { 0.1 } else { 0.0 }).collect();
    let mut want = values(&model);
    let mut reference = RefAdamW { m: vec![0.0; 12], v: vec![0.0; 12], t: 0 };
    for k in 0..3 {
        let c: [f32; 12] = std::array::from_fn(|i| ((i * 7 + k * 5) % 11) as f32 / 4.0 - 1.2);
        let g: Vec<f64> = c.iter().map(|&x| x as f64).collect();
        let grads = optim.grads(grads_for(&model, &c, &device), &model);
        model = optim.step(base_lr, model, grads).0;
        reference.step(&mut want, &g, &lr, &wd, 0.9, 0.95, 1e-8);
    }
    for (i, (got, want)) in values(&model).iter().zip(&want).enumerate() {
        assert!((got - want).abs() < 2e-6, "param {i}: burn {got} vs reference {want}");
    }

    // Freezing `vision`: its values stay put and it holds no optimizer state.
    let frozen = AdamWSettings {
        groups: GroupRules { frozen: vec!["vision".into()], ..settings.groups.clone() },
        ..settings.clone()
    };
    let before = values(&model);
    let mut optim = GroupedAdamW::new(&model, &frozen).unwrap();
    let c = [1.0; 12];
    let grads = optim.grads(grads_for(&model, &c, &device), &model);
    let model = optim.step(base_lr, model, grads).0;
    let after = values(&model);
    assert_eq!(&after[..6], &before[..6]);
    assert!(after[6..].iter().zip(&before[6..]).all(|(a, b)| a != b));
    assert_eq!(optim.state_len(), 2 * 2, "two llm tensors x (m, v)");
}

#[test]
fn unknown_component_names_the_key_and_the_known_ones() {
    let device = Device::flex().autodiff();
    let settings = AdamWSettings {
        groups: GroupRules {
            lr_mult: BTreeMap::from([("visoin".to_string(), 0.1)]),
            ..GroupRules::default()
        },
        ..AdamWSettings::default()
    };
    let err = GroupedAdamW::new(&toy(&device), &settings).err().unwrap().to_string();
    assert!(err.contains("lr_mult") && err.contains("visoin") && err.contains("llm, vision"), "{err}");
}

#[test]
fn embedding_decay_follows_the_config_key() {
    let device = Device::flex().autodiff();
    let model = mm1_models::presets::tiny().init(&device).unwrap();
    let freeze = mm1_models::FreezeConfig::default();
    let plan_for = |decay_embeddings: bool| {
        let optim = mm1_trainer::config::OptimConfig { decay_embeddings, ..Default::default() };
        let settings = AdamWSettings::from_config(&optim, &optim.resolve(0), &freeze);
        GroupedAdamW::new(&model, &settings).unwrap().plan().clone()
    };
    let (on, off) = (plan_for(true), plan_for(false));
    let embeds: Vec<&String> = on.decay.iter().filter(|p| p.contains("embed")).collect();
    assert!(!embeds.is_empty(), "no embedding in the decay group: {:?}", on.decay);
    for p in embeds {
        assert!(off.no_decay.contains(p), "{p} still decays with decay_embeddings = false");
    }
    // Only embeddings move: every non-embedding matrix decays either way.
    let matrices = |plan: &mm1_trainer::optim::groups::GroupPlan| -> Vec<String> {
        plan.decay.iter().filter(|p| !p.contains("embed") && !p.contains("cls_token")).cloned().collect()
    };
    assert_eq!(matrices(&on), matrices(&off));
}
