//! Which parameters get weight decay, which learning-rate multiplier, and which are frozen.
//!
//! Rules follow nanoGPT / HF Trainer: tensors of rank < 2 (norm gains, biases) do not decay
//! unless asked; embeddings (token, position, class token) decay unless told not to
//! ([`ParamClass::decays`](mm1_parallel::param_kind::ParamClass::decays)); a frozen component (e.g.
//! the ViT in a connector-only stage, MM1 §3) gets neither gradients nor optimizer state.

use std::collections::BTreeMap;

use burn::module::ParamId;

use super::OptimError;
use super::params::ParamInfo;

/// The grouping knobs, as the trainer's `[optim]` / `[model.freeze]` sections give them.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupRules {
    /// Decoupled weight decay of the decaying group.
    pub weight_decay: f64,
    /// Learning-rate multiplier per component (first path segment); absent means 1.0.
    pub lr_mult: BTreeMap<String, f64>,
    /// Components that are not trained.
    pub frozen: Vec<String>,
    /// Whether rank-1 tensors (norm gains, biases) take weight decay (MM1/LLaVA: no).
    pub decay_norms_and_biases: bool,
    /// Whether embedding tensors ([`ParamKind::Embedding`](mm1_parallel::param_kind::ParamKind)) take
    /// weight decay (nanoGPT/HF Trainer: yes).
    pub decay_embeddings: bool,
}

impl Default for GroupRules {
    fn default() -> Self {
        Self {
            weight_decay: 0.0,
            lr_mult: BTreeMap::new(),
            frozen: Vec::new(),
            decay_norms_and_biases: false,
            decay_embeddings: true,
        }
    }
}

/// The resolved split of one model's parameters.
#[derive(Debug, Clone)]
pub struct GroupPlan {
    /// Paths of trainable parameters that take weight decay.
    pub decay: Vec<String>,
    /// Paths of trainable parameters exempt from weight decay.
    pub no_decay: Vec<String>,
    /// Paths of frozen parameters.
    pub frozen: Vec<String>,
    /// Ids of the trainable parameters (the only ones whose gradients are taken).
    pub trainable_ids: Vec<ParamId>,
    /// Component -> (multiplier, paths of its trainable parameters), for multipliers != 1.
    pub lr_groups: BTreeMap<String, (f64, Vec<String>)>,
    /// Trainable and total scalar counts.
    pub trainable_numel: usize,
    pub total_numel: usize,
}

impl GroupPlan {
    /// Split `params`; names in `rules` that match no component are an error.
    pub fn new(params: &[ParamInfo], rules: &GroupRules) -> Result<Self, OptimError> {
        let components: Vec<&str> = {
            let mut c: Vec<&str> = params.iter().map(|p| p.component()).collect();
            c.dedup();
            c.sort_unstable();
            c.dedup();
            c
        };
        let check = |key: &str, name: &str| {
            if components.contains(&name) {
                Ok(())
            } else {
                Err(OptimError::UnknownComponent {
                    key: key.to_string(),
                    name: name.to_string(),
                    known: components.join(", "),
                })
            }
        };
        for name in rules.lr_mult.keys() {
            check("lr_mult", name)?;
        }
        for name in &rules.frozen {
            check("freeze", name)?;
        }
        for (name, &m) in &rules.lr_mult {
            if !(m.is_finite() && m >= 0.0) {
                return Err(OptimError::BadValue(format!(
                    "lr_mult.{name} = {m}: must be a finite number >= 0"
                )));
            }
        }

        let mut plan = GroupPlan {
            decay: Vec::new(),
            no_decay: Vec::new(),
            frozen: Vec::new(),
            trainable_ids: Vec::new(),
            lr_groups: BTreeMap::new(),
            trainable_numel: 0,
            total_numel: 0,
        };
        for p in params {
            plan.total_numel += p.numel();
            let comp = p.component();
            if !p.require_grad || rules.frozen.iter().any(|f| f == comp) {
                plan.frozen.push(p.path.clone());
                continue;
            }
            plan.trainable_ids.push(p.id);
            plan.trainable_numel += p.numel();
            if p.class().decays(rules.decay_norms_and_biases, rules.decay_embeddings) {
                plan.decay.push(p.path.clone());
            } else {
                plan.no_decay.push(p.path.clone());
            }
            if let Some(&m) = rules.lr_mult.get(comp)
                && m != 1.0
            {
                plan.lr_groups
                    .entry(comp.to_string())
                    .or_insert_with(|| (m, Vec::new()))
                    .1
                    .push(p.path.clone());
            }
        }
        Ok(plan)
    }
}
