//! The run file: one TOML per run whose sections mirror the components 1:1.
//!
//! ```toml
//! base = "../configs/mm1-ablation-base.toml"   # optional, relative to this file
//! [model.vision]    # mm1_models::VisionConfig      [data]  + [[data.sources]]  (mm1_data::DataConfig)
//! [model.connector] # kind = "c_abstractor" | ...   [optim] [schedule] [train] [eval]
//! [model.llm]       # optional [model.llm.moe]      [checkpoint] [log] [parallel]
//! ```
//!
//! Loading (`ConfigSources`): the `base` chain (child wins key by key; tables whose `kind`
//! differs are replaced; arrays are replaced), `--with` overlays, `[[patch]]` blocks, then
//! `--set section.key=value`. Unknown keys, wrong types and bad values are errors naming the
//! key, its section and the file that set it. The reference of every key is `docs/training.md`.

mod error;
mod eval;
mod load;
mod merge;
mod optim;
mod resolved;
mod sections;
mod validate;

pub use error::ConfigError;
pub use eval::{EvalConfig, FewshotConfig};
pub use load::{ConfigSources, LoadedConfig};
pub use merge::parse_set_value;
pub use optim::{LrMultipliers, LrRule, MM1_WEIGHT_DECAY_OVER_LR, OptimConfig, ResolvedOptim, mm1_lr};
pub use resolved::{ResolvedFiles, config_hash};
pub use sections::{
    ActivationCheckpointing, CheckpointConfig, Decay, DeviceKind, LogConfig, ParallelConfig, Precision,
    ProgressMode, Recompute, ScheduleConfig, TrainConfig,
};

use mm1_data::DataConfig;
use mm1_models::Mm1Config;
use serde::{Deserialize, Serialize};

/// The whole run file.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RunConfig {
    /// `[model]`: vision encoder, connector, LLM, freezing (owned by `mm1-models`).
    pub model: Mm1Config,
    /// `[data]` and `[[data.sources]]` (owned by `mm1-data`).
    pub data: DataConfig,
    pub optim: OptimConfig,
    pub schedule: ScheduleConfig,
    pub train: TrainConfig,
    pub eval: EvalConfig,
    pub checkpoint: CheckpointConfig,
    pub log: LogConfig,
    pub parallel: ParallelConfig,
}
