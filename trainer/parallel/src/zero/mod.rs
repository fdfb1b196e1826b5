//! ZeRO (Rajbhandari et al. 2020, stages 1 and 2) over the data-parallel ranks
//! (`parallel.zero`): each rank keeps the AdamW moments of the parameters it owns only.
//!
//! One step, after every rank's local backward (gradients already shares of the global-mean
//! loss, as in plain data parallelism):
//! 1. [`ZeroSync::reduce`]: stage 1 all-reduces every gradient (DDP's buckets) and keeps its own
//!    parameters'; stage 2 reduce-scatters owner-ordered chunks ([`ExchangeLayout`]), so a rank
//!    receives the sums of its own parameters only. Burn's backward hands back every local
//!    gradient of a graph at once (no per-bucket hooks), so after one backward pass through the
//!    whole model the local, unreduced gradient is whole. Under activation checkpointing the
//!    trainer's backward pass goes unit by unit (a ViT block, a decoder layer, the head), and
//!    stage 2 then reduces each unit's gradients as soon as they are complete
//!    ([`ZeroSync::reduce_group`]): a rank holds its own sums plus one unit's local gradients.
//! 2. [`ZeroSync::grad_norm`]: the clipping norm from every owner's square sums.
//! 3. The optimizer steps the gradients it was given, i.e. the owned parameters: its state
//!    exists for those only (the memory ZeRO-1 saves).
//! 4. [`ZeroSync::share_update`]: the updated values all-gathered back into every rank's model,
//!    in buckets of consecutive parameters (`bucket_elems` values), so no rank stages the whole
//!    model in one exchange buffer.
//!
//! [`ZeroPartition`] says who owns what: whole parameters, greedily balanced by element count,
//! computed identically on every rank. Checkpoints keep each rank's slice with an index of the
//! parameters it holds (`checkpoint::ZeroIndex`), so a resume on another number of ranks re-cuts
//! the state by parameter id. With two ranks the sums of both stages are the plain data-parallel
//! sums bit for bit (`a + b` either way), so training equals `parallel.zero = 0`.

mod layout;
mod partition;
mod sync;

pub use layout::{ExchangeLayout, Slot};
pub use partition::{Owned, ZeroPartition};
pub use sync::ZeroSync;
