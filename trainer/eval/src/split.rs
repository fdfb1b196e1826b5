//! Sharing an evaluation among the ranks of a data-parallel run: rank `r` of `world` computes the
//! items whose index is `r` modulo `world`, and the ranks exchange their results so that every
//! rank ends with the whole evaluation. The evaluation code stays free of any communication
//! library: the exchange is a callback (the trainer passes an all-gather over its ranks).

use super::EvalError;

/// Every rank's value, in rank order, on every rank (a collective: all ranks call it together).
pub type GatherJson<'a> = &'a dyn Fn(serde_json::Value) -> Result<Vec<serde_json::Value>, String>;

/// This rank's share of an evaluation.
#[derive(Clone, Copy)]
pub struct WorkSplit<'a> {
    pub rank: usize,
    pub world: usize,
    pub gather: GatherJson<'a>,
}

fn gather_self(v: serde_json::Value) -> Result<Vec<serde_json::Value>, String> {
    Ok(vec![v])
}

impl WorkSplit<'static> {
    /// One process does everything.
    pub fn single() -> Self {
        Self { rank: 0, world: 1, gather: &gather_self }
    }
}

impl WorkSplit<'_> {
    /// Whether item `i` is this rank's.
    pub fn owns(&self, i: usize) -> bool {
        i % self.world == self.rank
    }

    /// Every item's result from [`OwnedResults`] of all ranks, in item order, or the first
    /// failure (of any rank; a collective).
    pub fn merge_results<T>(&self, n: usize, mine: OwnedResults<T>) -> Result<Vec<T>, String>
    where
        T: serde::Serialize + serde::de::DeserializeOwned,
    {
        self.merge(n, mine.0).map_err(|e| e.to_string())?.into_iter().collect()
    }

    /// `n` items' values from their owners, in item order: `mine` holds this rank's items in
    /// order (items `rank, rank + world, ...`).
    pub fn merge<T>(&self, n: usize, mine: Vec<T>) -> Result<Vec<T>, EvalError>
    where
        T: serde::Serialize + serde::de::DeserializeOwned,
    {
        if self.world == 1 {
            return Ok(mine);
        }
        let bad = |e: String| EvalError::Invalid(format!("sharing the evaluation among ranks: {e}"));
        let value = serde_json::to_value(&mine).map_err(|e| bad(e.to_string()))?;
        let parts = (self.gather)(value).map_err(bad)?;
        let mut parts: Vec<std::vec::IntoIter<T>> = parts
            .into_iter()
            .map(|p| serde_json::from_value::<Vec<T>>(p).map(Vec::into_iter))
            .collect::<Result<_, _>>()
            .map_err(|e| bad(e.to_string()))?;
        (0..n)
            .map(|i| {
                let owner = i % self.world;
                parts
                    .get_mut(owner)
                    .and_then(Iterator::next)
                    .ok_or_else(|| bad(format!("rank {owner} sent fewer results than items ({n})")))
            })
            .collect()
    }
}

/// This rank's results, in item order. After the first failure the remaining items are not
/// computed but carry that failure, so the exchange still holds one entry per item and every rank
/// learns of it there instead of waiting for a rank that stopped.
pub struct OwnedResults<T>(Vec<Result<T, String>>);

impl<T> Default for OwnedResults<T> {
    fn default() -> Self {
        Self(Vec::new())
    }
}

impl<T> OwnedResults<T> {
    /// Add the next owned item's result, from `compute` unless an earlier item failed.
    pub fn push_with<E: std::fmt::Display>(
        &mut self,
        split: &WorkSplit,
        compute: impl FnOnce() -> Result<T, E>,
    ) {
        let failed = self.0.iter().find_map(|r| r.as_ref().err().cloned());
        let result = match failed {
            Some(e) => Err(e),
            None if split.world == 1 => compute().map_err(|e| e.to_string()),
            None => compute().map_err(|e| format!("rank {}: {e}", split.rank)),
        };
        self.0.push(result);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_restores_item_order_from_round_robin_shares() {
        // Two ranks sharing 5 items: rank 0 has items 0, 2, 4; rank 1 has 1, 3.
        let gather = |_: serde_json::Value| -> Result<Vec<serde_json::Value>, String> {
            Ok(vec![serde_json::json!(["a0", "a2", "a4"]), serde_json::json!(["b1", "b3"])])
        };
        let split = WorkSplit { rank: 1, world: 2, gather: &gather };
        assert!(split.owns(3) && !split.owns(4));
        let all: Vec<String> = split.merge(5, vec!["b1".to_string(), "b3".to_string()]).unwrap();
        assert_eq!(all, ["a0", "b1", "a2", "b3", "a4"]);
        let short = split.merge::<String>(6, vec![]).unwrap_err().to_string();
        assert!(short.contains("rank 1 sent fewer"), "{short}");
    }
}
