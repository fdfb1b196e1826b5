//! ZeRO (Rajbhandari et al. 2020, stages 1 and 2) over the data-parallel ranks
//! (`parallel.zero`): each rank keeps the AdamW moments of the parameters it owns only.
//!
//! One step, after every rank's local backward (gradients already shares of the global-mean
//! loss, as in plain data parallelism):
//! 1. [`ZeroSync::reduce`]: stage 1 all-reduces every gradient (DDP's buckets) and keeps its own
//!    parameters'; stage 2 reduce-scatters owner-ordered chunks, so a rank receives the sums of
//!    its own parameters only. Burn's backward hands back every local gradient at once (no
//!    per-bucket hooks), so the local, unreduced gradient is whole in both stages; what stage 2
//!    saves is the reduced copy.
//! 2. [`ZeroSync::grad_norm`]: the clipping norm from every owner's square sums.
//! 3. The optimizer steps the gradients it was given, i.e. the owned parameters: its state
//!    exists for those only (the memory ZeRO-1 saves).
//! 4. [`ZeroSync::share_update`]: the updated values all-gathered back into every rank's model.
//!
//! [`ZeroPartition`] says who owns what: whole parameters, greedily balanced by element count,
//! computed identically on every rank. Checkpoints keep each rank's slice with an index of the
//! parameters it holds (`checkpoint::ZeroIndex`), so a resume on another number of ranks re-cuts
//! the state by parameter id. With two ranks the sums of both stages are the plain data-parallel
//! sums bit for bit (`a + b` either way), so training equals `parallel.zero = 0`.

mod partition;
mod sync;

pub use partition::{Owned, ZeroPartition};
pub use sync::ZeroSync;
