//! Library side of the `search` binary (Auto-DeepLab, C. Liu et al., CVPR 2019): configuration
//! loading, device choice, the environment report and the cell smoke pass. `main.rs` holds
//! the command-line interface.

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
