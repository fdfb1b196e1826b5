//! Which data-parallel rank owns each parameter's optimizer state under ZeRO.
//!
//! Whole parameters, not flat element ranges (as torch's `ZeroRedundancyOptimizer`): a rank keeps
//! the AdamW moments of the parameters it owns, steps only those, and the updated values travel
//! as whole tensors. Balancing is the greedy "largest first onto the least loaded rank" (LPT):
//! parameters by element count, largest first (ties in visiting order), each onto the rank
//! with the fewest elements so far (ties: the lowest rank). It depends on shapes and the
//! visiting order only, so every rank computes the same owner map without exchanging it, and
//! no rank holds more than `total / ranks + largest parameter` elements.

use std::collections::HashMap;

use burn::module::{Module, ParamId};

use crate::params::{ParamInfo, list_params};

/// One partitioned parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Owned {
    pub id: ParamId,
    pub numel: usize,
    /// The rank that keeps its optimizer state and computes its update.
    pub owner: usize,
    /// Where its values start in the owner's chunk of a flat exchange buffer.
    pub offset: usize,
}

/// The owner of every trainable parameter of a model over `ranks` data-parallel ranks.
#[derive(Debug, Clone, PartialEq)]
pub struct ZeroPartition {
    ranks: usize,
    /// Every partitioned parameter, in the model's visiting order.
    params: Vec<Owned>,
    by_id: HashMap<ParamId, usize>,
    /// Elements each rank owns.
    loads: Vec<usize>,
}

impl ZeroPartition {
    /// The trainable (`require_grad`) parameters of `module` split over `ranks` ranks.
    pub fn of_module<M: Module>(module: &M, ranks: usize) -> Self {
        let params: Vec<ParamInfo> = list_params(module).into_iter().filter(|p| p.require_grad).collect();
        Self::new(&params, ranks)
    }

    /// `params` (in visiting order) split over `ranks` ranks (see the module docs).
    pub fn new(params: &[ParamInfo], ranks: usize) -> Self {
        let ranks = ranks.max(1);
        let mut order: Vec<usize> = (0..params.len()).collect();
        order.sort_by_key(|&i| std::cmp::Reverse(params[i].numel())); // stable: ties in visiting order
        let mut loads = vec![0usize; ranks];
        let mut owner = vec![0usize; params.len()];
        for i in order {
            let least = (0..ranks).min_by_key(|&r| (loads[r], r)).expect("at least one rank");
            owner[i] = least;
            loads[least] += params[i].numel();
        }
        // offsets inside each owner's chunk, in visiting order
        let mut fill = vec![0usize; ranks];
        let params: Vec<Owned> = params
            .iter()
            .zip(owner)
            .map(|(p, r)| {
                let offset = fill[r];
                fill[r] += p.numel();
                Owned { id: p.id, numel: p.numel(), owner: r, offset }
            })
            .collect();
        let by_id = params.iter().enumerate().map(|(i, p)| (p.id, i)).collect();
        Self { ranks, params, by_id, loads }
    }

    pub fn ranks(&self) -> usize {
        self.ranks
    }

    /// Every partitioned parameter, in visiting order.
    pub fn params(&self) -> &[Owned] {
        &self.params
    }

    /// The parameter `id`, if it is partitioned (frozen parameters are not).
    pub fn get(&self, id: &ParamId) -> Option<&Owned> {
        self.index_of(id).map(|i| &self.params[i])
    }

    /// Position of `id` in [`params`](Self::params).
    pub fn index_of(&self, id: &ParamId) -> Option<usize> {
        self.by_id.get(id).copied()
    }

    /// The rank owning `id`'s optimizer state.
    pub fn owner(&self, id: &ParamId) -> Option<usize> {
        self.get(id).map(|p| p.owner)
    }

    /// Elements owned by each rank.
    pub fn loads(&self) -> &[usize] {
        &self.loads
    }

    /// Length of every rank's chunk in a flat exchange buffer (the largest load; the others
    /// are zero-padded to it, as the chunked collectives need equal chunks).
    pub fn chunk_len(&self) -> usize {
        self.loads.iter().copied().max().unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(id: u64, shape: &[usize]) -> ParamInfo {
        ParamInfo { id: ParamId::from(id), path: format!("p{id}"), shape: shape.to_vec(), require_grad: true }
    }

    #[test]
    fn largest_first_onto_the_least_loaded_rank() {
        // sizes 6, 5, 4, 3, 2 -> rank 0: 6, 3, 2 (11); rank 1: 5, 4 (9)
        let params: Vec<ParamInfo> =
            [4usize, 6, 2, 5, 3].iter().enumerate().map(|(i, &n)| info(i as u64, &[n])).collect();
        let p = ZeroPartition::new(&params, 2);
        let owners: Vec<usize> = p.params().iter().map(|o| o.owner).collect();
        assert_eq!(owners, vec![1, 0, 0, 1, 0]);
        assert_eq!(p.loads(), &[11, 9]);
        assert_eq!(p.chunk_len(), 11);
        // offsets follow the visiting order inside each owner's chunk
        let offsets: Vec<usize> = p.params().iter().map(|o| o.offset).collect();
        assert_eq!(offsets, vec![0, 0, 6, 4, 8]);
    }

    #[test]
    fn no_rank_holds_more_than_its_share_plus_the_largest_parameter() {
        let params: Vec<ParamInfo> = (0..40).map(|i| info(i, &[1 + (i as usize * 37) % 23, 8])).collect();
        let total: usize = params.iter().map(ParamInfo::numel).sum();
        let largest = params.iter().map(ParamInfo::numel).max().unwrap();
        for ranks in [1, 2, 3, 4, 7] {
            let p = ZeroPartition::new(&params, ranks);
            assert_eq!(p.loads().iter().sum::<usize>(), total);
            assert!(p.chunk_len() <= total / ranks + largest, "{ranks} ranks: {:?}", p.loads());
            assert!(params.iter().all(|q| p.owner(&q.id).is_some_and(|r| r < ranks)));
        }
        assert!(ZeroPartition::new(&params, 1).params().iter().all(|o| o.owner == 0));
    }
}
