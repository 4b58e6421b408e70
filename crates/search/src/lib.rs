//! Library side of the `search` binary (Auto-DeepLab, C. Liu et al., CVPR 2019, §4-§5): training
//! as layers (`train`: the one training loop, the steps, the Architect, the backward strategies,
//! the optimised-parameters type, optimisers, precision) with its two tasks, the bilevel search
//! (`search_run`) and retraining (`retrain`); distributed runs (`dist`, with the `Ranks`
//! strategy); evaluation and prediction (`evaluate`, `predict`, `trained`), the demo chain
//! (`demo`), run folders and checkpoints (`rundir`, `checkpoint`), pictures
//! (`plots`), benchmarks (`bench`, `bench_data`), layered configs (`config`, `run_config`),
//! runtime tuning (`runtime`) and the set-up check (`smoke`). The binary's `commands/` hold
//! the command-line interface.

pub mod arch_source;
pub mod config;
pub mod deploy;
pub mod device;
pub mod dist;
pub mod errors;
pub mod limits;
pub mod observe;
pub mod run_config;
pub mod runtime;
pub mod smoke;
pub mod store;
pub mod tasks;
pub mod train;
