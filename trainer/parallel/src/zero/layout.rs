//! Where the gradients of one ZeRO-2 reduce-scatter go in its flat buffer: one chunk per owner
//! rank, each holding its owner's parameters' values (visiting order, zero padded to the longest
//! chunk) and then one presence flag per parameter it owns (1 where a rank had the gradient, so
//! the sum says whether any did). The whole partition's exchange after the backward pass and one
//! unit's during the segmented backward pass (`ZeroSync::reduce_group`) are both such a layout,
//! computed from shapes and visiting order only, so every rank cuts the same buffer.

use std::collections::{HashMap, HashSet};

use burn::module::ParamId;

use super::partition::ZeroPartition;

/// One parameter's place in an exchange.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Slot {
    pub owner: usize,
    /// First value in the owner's chunk.
    pub offset: usize,
    pub numel: usize,
    /// Its presence flag among the owner's flags.
    pub flag: usize,
}

/// The owner-ordered chunks of one exchange (see the module docs).
#[derive(Debug, Clone, PartialEq)]
pub struct ExchangeLayout {
    slots: HashMap<ParamId, Slot>,
    /// Values per chunk (the largest owner's).
    values: usize,
    /// Flags per chunk (the most parameters one owner has here).
    flags: usize,
}

impl ExchangeLayout {
    /// The parameters of `part` that `member` selects, in the partition's (visiting) order.
    pub fn of(part: &ZeroPartition, member: impl Fn(&ParamId) -> bool) -> Self {
        let ranks = part.ranks();
        let (mut fill, mut count) = (vec![0usize; ranks], vec![0usize; ranks]);
        let mut slots = HashMap::new();
        for p in part.params().iter().filter(|p| member(&p.id)) {
            let slot = Slot { owner: p.owner, offset: fill[p.owner], numel: p.numel, flag: count[p.owner] };
            fill[p.owner] += p.numel;
            count[p.owner] += 1;
            slots.insert(p.id, slot);
        }
        let most = |v: Vec<usize>| v.into_iter().max().unwrap_or(0);
        Self { slots, values: most(fill), flags: most(count) }
    }

    /// The whole partition cut into exchanges of consecutive parameters (visiting order) of at
    /// most `max_values` values each (a larger parameter alone): the bounded buckets of the
    /// parameters' all-gather, as data parallelism's all-reduce buckets.
    pub fn buckets(part: &ZeroPartition, max_values: usize) -> Vec<Self> {
        let mut cuts: Vec<HashSet<ParamId>> = Vec::new();
        let mut filled = usize::MAX; // values in the last bucket (none yet)
        for p in part.params() {
            if filled.saturating_add(p.numel) > max_values.max(1) {
                cuts.push(HashSet::new());
                filled = 0;
            }
            cuts.last_mut().expect("pushed above").insert(p.id);
            filled += p.numel;
        }
        cuts.iter().map(|ids| Self::of(part, |id| ids.contains(id))).collect()
    }

    /// Parameters in the exchange.
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    pub fn get(&self, id: &ParamId) -> Option<Slot> {
        self.slots.get(id).copied()
    }

    /// Values per chunk (the largest owner's), the chunk of an exchange without flags.
    pub fn values_len(&self) -> usize {
        self.values
    }

    /// One owner's chunk: its values, then its flags.
    pub fn chunk_len(&self) -> usize {
        self.values + self.flags
    }

    /// Where `slot`'s values start in the send buffer `[ranks * chunk_len]`.
    pub fn send_values(&self, slot: Slot) -> usize {
        slot.owner * self.chunk_len() + slot.offset
    }

    /// `slot`'s flag in the send buffer.
    pub fn send_flag(&self, slot: Slot) -> usize {
        slot.owner * self.chunk_len() + self.values + slot.flag
    }

    /// `slot`'s flag in the owner's received chunk `[chunk_len]`.
    pub fn recv_flag(&self, slot: Slot) -> usize {
        self.values + slot.flag
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::params::ParamInfo;

    #[test]
    fn a_subset_gets_its_own_offsets_and_flags_per_owner() {
        // sizes 4, 6, 2, 5, 3 over 2 ranks -> owners 1, 0, 0, 1, 0 (partition.rs's test)
        let params: Vec<ParamInfo> = [4usize, 6, 2, 5, 3]
            .iter()
            .enumerate()
            .map(|(i, &n)| ParamInfo {
                id: ParamId::from(i as u64),
                path: format!("p{i}"),
                shape: vec![n],
                require_grad: true,
            })
            .collect();
        let part = ZeroPartition::new(&params, 2);
        let whole = ExchangeLayout::of(&part, |_| true);
        assert_eq!((whole.len(), whole.chunk_len()), (5, 11 + 3));
        // parameters 1 (6, rank 0), 3 (5, rank 1), 4 (3, rank 0): rank 0 holds 9 values, 2 flags
        let some = ExchangeLayout::of(&part, |id| [1u64, 3, 4].map(ParamId::from).contains(id));
        assert_eq!((some.len(), some.chunk_len()), (3, 9 + 2));
        let slot = |i: u64| some.get(&ParamId::from(i)).unwrap();
        assert_eq!(slot(4), Slot { owner: 0, offset: 6, numel: 3, flag: 1 });
        assert_eq!((some.send_values(slot(3)), some.send_flag(slot(3))), (11, 11 + 9));
        assert_eq!(some.recv_flag(slot(4)), 10);
        assert!(some.get(&ParamId::from(0)).is_none());
        // buckets of at most 9 values: [4], [6, 2], [5, 3]; the first one's owner is rank 1
        let buckets = ExchangeLayout::buckets(&part, 9);
        let lens: Vec<(usize, usize)> = buckets.iter().map(|b| (b.len(), b.values_len())).collect();
        assert_eq!(lens, vec![(1, 4), (2, 8), (2, 5)]);
        assert_eq!(buckets[0].get(&ParamId::from(0)).map(|s| (s.owner, s.offset)), Some((1, 0)));
        assert_eq!(ExchangeLayout::buckets(&part, 3).len(), 5, "a parameter above the bound alone");
    }
}
