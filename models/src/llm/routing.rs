//! Top-k routing with expert capacity (GShard, Lepikhin et al. 2021; Switch, Fedus et al.
//! 2022), computed on the host from the router's choices: which token goes to which
//! expert, which assignments are dropped, and the per-expert load.

/// Who goes where: the plan an `ExpertDispatch` executes.
#[derive(Debug, Clone, PartialEq)]
pub struct RoutingPlan {
    /// Per expert: `(token, slot)` pairs it processes, in priority order. `slot` indexes the
    /// token's top-k choice, so the gate weight is `gates[token * k + slot]`.
    pub assignments: Vec<Vec<(usize, usize)>>,
    /// Per expert: how many tokens picked it as their first choice (before capacity).
    pub top1_counts: Vec<usize>,
    /// Assignments dropped because their expert was full.
    pub dropped: usize,
    /// Maximum assignments per expert.
    pub capacity: usize,
    pub num_tokens: usize,
    pub top_k: usize,
}

/// Expert capacity `ceil(factor * n * k / e)` (at least 1); factor 0 means unlimited.
pub fn capacity(factor: f64, n: usize, k: usize, e: usize) -> usize {
    if factor <= 0.0 {
        return n * k;
    }
    ((factor * (n * k) as f64 / e as f64).ceil() as usize).max(1)
}

/// Build the plan from the chosen experts, `choices[token * k + slot]`. As in GShard,
/// every token's first choice is served before any second choice, each in token order.
pub fn plan(choices: &[usize], num_experts: usize, top_k: usize, capacity: usize) -> RoutingPlan {
    let n = choices.len() / top_k;
    let mut assignments = vec![Vec::new(); num_experts];
    let mut top1_counts = vec![0; num_experts];
    let mut dropped = 0;
    for slot in 0..top_k {
        for token in 0..n {
            let e = choices[token * top_k + slot];
            if slot == 0 {
                top1_counts[e] += 1;
            }
            if assignments[e].len() < capacity {
                assignments[e].push((token, slot));
            } else {
                dropped += 1;
            }
        }
    }
    RoutingPlan { assignments, top1_counts, dropped, capacity, num_tokens: n, top_k }
}

impl RoutingPlan {
    /// Assignments each expert processed (after capacity).
    pub fn load(&self) -> Vec<usize> {
        self.assignments.iter().map(Vec::len).collect()
    }

    /// Fraction of tokens whose first choice is each expert (GShard `c_e / S`).
    pub fn top1_fractions(&self) -> Vec<f32> {
        let n = self.num_tokens.max(1) as f32;
        self.top1_counts.iter().map(|&c| c as f32 / n).collect()
    }
}
