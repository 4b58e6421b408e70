//! Library side of the `search` binary (Auto-DeepLab, C. Liu et al., CVPR 2019, §4-§5): the
//! bilevel search (`search_run`, `step`), retraining (`retrain`), evaluation and prediction
//! (`evaluate`, `predict`, `trained`), the demo chain (`demo`), our own optimisers (`optim`),
//! run folders and checkpoints (`rundir`, `checkpoint`), pictures (`plots`), benchmarks
//! (`bench`, `bench_data`), layered configs (`config`, `run_config`) and the set-up check
//! (`smoke`). `main.rs` holds the command-line interface.

pub mod arch_source;
pub mod bench;
pub mod bench_data;
pub mod checkpoint;
pub mod config;
pub mod demo;
pub mod device;
pub mod env;
pub mod evaluate;
pub mod interrupt;
pub mod logging;
pub mod optim;
pub mod plots;
pub mod predict;
pub mod retrain;
pub mod run_config;
pub mod rundir;
pub mod search_run;
pub mod smoke;
pub mod step;
pub mod summary;
pub mod trained;
