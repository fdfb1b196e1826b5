//! The experts' AdamW state re-cut for another `parallel.ep` (`mm1-checkpoint`, `reshard.rs`), on a
//! model with a dense layer and 4 experts whose state is saved whole (`ep = 1`): cut for 2 EP
//! ranks, each rank gets exactly the entries (moments, step counts, paths) of the dense layer and
//! of its own 2 experts; those two files, as a checkpoint written with `ep = 2`, cut for 1 rank
//! give back every original entry. The runs across an `ep` change are in `elastic_resume.rs`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use burn::module::Module;
use burn::nn::{Linear, LinearConfig};
use burn::store::burn_pack::{Reader, Scalar};
use burn::tensor::{Device, Tensor};
use mm1_trainer::checkpoint::{Checkpoint, CheckpointDir, Counters, EpChange, RngState, TrainState};
use mm1_trainer::optim::{AdamWSettings, GroupedAdamW};
use mm1_trainer::parallel::expert_index;
use rand_chacha::rand_core::SeedableRng;

const EXPERTS: usize = 4;

#[derive(Module, Debug)]
struct Moe {
    llm: Linear,
    experts: Vec<Linear>,
}

impl Moe {
    fn new(device: &Device) -> Self {
        Self {
            llm: LinearConfig::new(3, 4).init(device),
            experts: (0..EXPERTS).map(|_| LinearConfig::new(4, 2).init(device)).collect(),
        }
    }

    /// The sum of the first `used` experts' outputs, squared.
    fn loss(&self, x: Tensor<2>, used: usize) -> Tensor<1> {
        let h = self.llm.forward(x).tanh();
        let y = self.experts[..used].iter().map(|e| e.forward(h.clone())).reduce(|a, b| a + b).unwrap();
        y.powi_scalar(2).mean()
    }
}

/// Two steps, the last expert used only in the second: the step counts differ (2 and 1).
fn trained(device: &Device) -> (Moe, GroupedAdamW) {
    let mut model = Moe::new(device);
    let mut optim = GroupedAdamW::new(&model, &AdamWSettings::default()).unwrap();
    for used in [EXPERTS - 1, EXPERTS] {
        let x = Tensor::<1>::from_floats([0.5, -1.0, 0.25, 1.5, 0.0, -0.75], device).reshape([2, 3]);
        let grads = optim.grads(model.loss(x, used).backward(), &model);
        model = optim.step(1e-2, model, grads).0;
    }
    (model, optim)
}

/// An optimizer record's entries: tensors (name → bytes), scalars, metadata (id → path).
#[derive(Debug, PartialEq)]
struct Entries {
    tensors: BTreeMap<String, Vec<u8>>,
    scalars: BTreeMap<String, Scalar>,
    paths: BTreeMap<String, String>,
}

impl Entries {
    fn of(optim: &GroupedAdamW) -> Self {
        let reader = Reader::from_bytes(optim.to_bytes().unwrap()).unwrap();
        let (scalars, paths) = (reader.scalars().clone(), reader.metadata().clone());
        let tensors = reader
            .into_tensors()
            .unwrap()
            .into_iter()
            .map(|t| (t.name.clone(), t.into_bytes().unwrap().to_vec()))
            .collect();
        Self { tensors, scalars, paths }
    }

    /// Parameter ids (the part before the first `.` of every key).
    fn ids(&self) -> BTreeSet<String> {
        let id = |k: &String| k.split('.').next().unwrap().to_string();
        self.tensors.keys().chain(self.scalars.keys()).chain(self.paths.keys()).map(id).collect()
    }

    /// Only the entries of parameters `ids`.
    fn only(&self, ids: &BTreeSet<String>) -> Self {
        let keep = |k: &String| ids.contains(k.split('.').next().unwrap());
        Self {
            tensors: self
                .tensors
                .iter()
                .filter(|(k, _)| keep(k))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            scalars: self.scalars.iter().filter(|(k, _)| keep(k)).map(|(k, v)| (k.clone(), *v)).collect(),
            paths: self.paths.iter().filter(|(k, _)| keep(k)).map(|(k, v)| (k.clone(), v.clone())).collect(),
        }
    }
}

fn state() -> TrainState {
    TrainState {
        step: 2,
        scheduler_step: 2,
        rng: RngState::capture(&rand_chacha::ChaCha8Rng::seed_from_u64(0)),
        loader: serde_json::Value::Null,
        counters: Counters::default(),
        config_sha256: "0".repeat(64),
    }
}

fn resharded(ckpt: &Checkpoint, model: &Moe, (saved, ep, rank): (usize, usize, usize)) -> GroupedAdamW {
    let fresh = GroupedAdamW::new(model, &AdamWSettings::default()).unwrap();
    let change = EpChange { saved, ep, rank, num_experts: EXPERTS };
    ckpt.load_optim_resharded(fresh, &expert_index(model), change).unwrap()
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for f in std::fs::read_dir(from).unwrap() {
        let f = f.unwrap();
        std::fs::copy(f.path(), to.join(f.file_name())).unwrap();
    }
}

#[test]
fn expert_state_recut_for_two_ranks_and_back_to_one_is_unchanged() {
    let device = Device::flex().autodiff();
    let (model, optim) = trained(&device);
    let tmp = tempfile::tempdir().unwrap();
    let path = CheckpointDir::new(tmp.path(), 0).save(&model, &optim, &state(), "").unwrap();
    let whole = Checkpoint { path, state: state() };
    assert_eq!(whole.ep_shards(), 1);
    let all = Entries::of(&optim);
    let experts = expert_index(&model);
    assert_eq!(experts.len(), 2 * EXPERTS, "weight and bias of each expert");
    // the last expert's step count is 1, the others' 2
    let times: BTreeSet<String> =
        all.scalars.iter().filter(|(k, _)| k.ends_with("time")).map(|(_, v)| format!("{v:?}")).collect();
    assert_eq!(times.len(), 2, "{:?}", all.scalars);

    // 1 -> 2: the dense layer's entries and those of experts 2r, 2r + 1
    let dense: BTreeSet<String> =
        all.ids().into_iter().filter(|id| !experts.keys().any(|e| e.val().to_string() == *id)).collect();
    assert_eq!(dense.len(), 2, "the dense layer's weight and bias");
    let shards: Vec<GroupedAdamW> = (0..2).map(|r| resharded(&whole, &model, (1, 2, r))).collect();
    for (r, shard) in shards.iter().enumerate() {
        let owned = experts.iter().filter(|(_, e)| **e / 2 == r).map(|(id, _)| id.val().to_string());
        let want: BTreeSet<String> = dense.iter().cloned().chain(owned).collect();
        let got = Entries::of(shard);
        assert_eq!(got.ids(), want, "EP rank {r}'s parameters");
        assert!(got == all.only(&want), "EP rank {r}'s entries differ from the whole state's");
    }

    // 2 -> 1: the two files as a checkpoint written with ep = 2
    let split = tmp.path().join("split");
    copy_dir(&whole.path, &split);
    std::fs::write(split.join("optim.bpk"), &*shards[0].to_bytes().unwrap()).unwrap();
    std::fs::write(split.join("optim-ep1.bpk"), &*shards[1].to_bytes().unwrap()).unwrap();
    let split = Checkpoint { path: split, state: state() };
    assert_eq!(split.ep_shards(), 2);
    assert!(Entries::of(&resharded(&split, &model, (2, 1, 0))) == all, "ep 2 -> 1 lost or changed entries");
    // 2 -> 4: expert 3 of rank 1's file
    let last = Entries::of(&resharded(&split, &model, (2, 4, 3)));
    assert_eq!(last.ids().len(), dense.len() + 2);
}

#[test]
fn an_ep_that_does_not_divide_the_experts_is_an_error_naming_both_numbers() {
    let device = Device::flex().autodiff();
    let (model, optim) = trained(&device);
    let tmp = tempfile::tempdir().unwrap();
    let path = CheckpointDir::new(tmp.path(), 0).save(&model, &optim, &state(), "").unwrap();
    let ckpt = Checkpoint { path, state: state() };
    let fresh = GroupedAdamW::new(&model, &AdamWSettings::default()).unwrap();
    let change = EpChange { saved: 1, ep: 3, rank: 0, num_experts: EXPERTS };
    let err =
        ckpt.load_optim_resharded(fresh, &expert_index(&model), change).err().expect("an error").to_string();
    assert!(
        err.contains("written with parallel.ep = 1, this run has parallel.ep = 3")
            && err.contains("num_experts = 4"),
        "{err}"
    );
}
