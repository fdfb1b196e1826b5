//! Where a micro-batch's gradients go as the segmented backward pass finishes them. A
//! parameter's gradient is complete once the last unit adding to it has run backward: going
//! backward, that is the first unit in forward order that uses it (a tied embedding gets the
//! head's term first and the embedding's last). [`Finisher`] holds each gradient until then and
//! hands it on: summed into the micro-batch's gradients, or under ZeRO-2
//! ([`StepSync::reduces_per_group`]) reduced to its owner rank at once, so that a rank keeps its
//! own parameters' sums plus the unfinished local gradients (one unit's, and a tied embedding's
//! from the head back to the embedding) instead of the whole model's.
//!
//! Every rank finishes the same groups in the same order: the units of the whole model, last
//! first, then the parameters no unit uses. A rank whose micro-batch skipped a unit (a text-only
//! batch runs no vision unit) still takes part, with zeros for the gradients it lacks.

use std::collections::HashSet;

use burn::module::{Module, ModuleVisitor, Param, ParamId};
use burn::optim::GradientsParams;
use burn::tensor::Tensor;
use mm1_models::Mm1Model;

use super::{Unit, visit_unit};
use crate::step::{StepError, StepSync};

/// A micro-batch's gradients on their way out of the segmented backward pass.
pub(super) struct Finisher<'a> {
    model: &'a Mm1Model,
    /// ZeRO-2: reduce each finished group over the ranks; `None`: keep the local sums.
    sync: Option<&'a dyn StepSync>,
    /// The parameters each unit finishes, in forward order.
    groups: Vec<(Unit, Vec<ParamId>)>,
    /// Parameters no unit uses (finished last).
    rest: Vec<ParamId>,
    /// Local gradients some unit still adds to.
    pending: GradientsParams,
    /// Finished gradients (reduced ones under ZeRO-2).
    done: GradientsParams,
}

impl<'a> Finisher<'a> {
    /// For `model` cut into `all` (every unit, forward order), reducing over `sync` when given.
    pub(super) fn new(model: &'a Mm1Model, all: &[Unit], sync: Option<&'a dyn StepSync>) -> Self {
        let mut seen = HashSet::new();
        let groups = all
            .iter()
            .map(|&unit| {
                let mut ids = Ids(Vec::new());
                visit_unit(model, unit, &mut ids);
                (unit, ids.0.into_iter().filter(|id| seen.insert(*id)).collect())
            })
            .collect();
        let mut ids = Ids(Vec::new());
        model.visit(&mut ids);
        let rest = ids.0.into_iter().filter(|id| !seen.contains(id)).collect();
        Self { model, sync, groups, rest, pending: GradientsParams::new(), done: GradientsParams::new() }
    }

    /// A unit's gradients, added to what earlier-run units gave the same parameters.
    pub(super) fn add(&mut self, mut grads: GradientsParams) {
        self.model.visit(&mut MoveGrads { from: &mut grads, into: &mut self.pending, ids: None });
    }

    /// `unit` has run backward (or does not run in this micro-batch): hand on the gradients it
    /// finishes.
    pub(super) fn finish(&mut self, unit: Unit) -> Result<(), StepError> {
        let at = self.groups.iter().position(|(u, _)| *u == unit).expect("a unit of the model");
        let ids = std::mem::take(&mut self.groups[at].1);
        self.hand_on(&ids)
    }

    /// The micro-batch's gradients, once every unit has finished.
    pub(super) fn end(mut self) -> Result<GradientsParams, StepError> {
        let rest = std::mem::take(&mut self.rest);
        self.hand_on(&rest)?;
        Ok(self.done)
    }

    fn hand_on(&mut self, ids: &[ParamId]) -> Result<(), StepError> {
        let set: HashSet<ParamId> = ids.iter().copied().collect();
        let mut finished = GradientsParams::new();
        self.model.visit(&mut MoveGrads { from: &mut self.pending, into: &mut finished, ids: Some(&set) });
        if let Some(sync) = self.sync {
            finished = sync.reduce_group(self.model, finished, ids)?;
        }
        self.model.visit(&mut MoveGrads { from: &mut finished, into: &mut self.done, ids: None });
        Ok(())
    }
}

/// Every float parameter's id, in visiting order.
struct Ids(Vec<ParamId>);

impl ModuleVisitor for Ids {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        self.0.push(param.id);
    }
}

/// The gradients of `ids` (all when `None`) moved from `from` into `into`, each added to what
/// `into` holds for it (as burn's `GradientsAccumulator`: `held + new`).
struct MoveGrads<'a> {
    from: &'a mut GradientsParams,
    into: &'a mut GradientsParams,
    ids: Option<&'a HashSet<ParamId>>,
}

impl ModuleVisitor for MoveGrads<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        if self.ids.is_some_and(|ids| !ids.contains(&param.id)) {
            return;
        }
        let Some(new) = self.from.remove::<D>(param.id) else { return };
        let sum = match self.into.remove::<D>(param.id) {
            Some(held) => held.add(new),
            None => new,
        };
        self.into.register::<D>(param.id, sum);
    }
}
