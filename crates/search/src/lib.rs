//! Library side of the `search` binary (Auto-DeepLab, C. Liu et al., CVPR 2019, §4-§5): the one
//! training loop (`train_loop`) with its two tasks, the bilevel search (`search_run`, with its
//! steps in `step` and backward strategies in `backward`) and retraining (`retrain`);
//! evaluation and prediction (`evaluate`, `predict`, `trained`), the demo chain (`demo`), our
//! own optimisers (`optim`), run folders and checkpoints (`rundir`, `checkpoint`), pictures
//! (`plots`), benchmarks (`bench`, `bench_data`), layered configs (`config`, `run_config`),
//! runtime tuning (`runtime`) and the set-up check (`smoke`). The binary's `commands/` hold
//! the command-line interface.

pub mod arch_loss;
pub mod arch_source;
pub mod backward;
pub mod bench;
pub mod bench_data;
pub mod checkpoint;
pub mod config;
pub mod demo;
pub mod device;
pub mod dist;
pub mod env;
pub mod evaluate;
pub mod export;
pub mod gpu;
pub mod interrupt;
pub mod launch;
pub mod logging;
pub mod loss_scale;
pub mod model_card;
pub mod npy;
pub mod optim;
pub mod plots;
pub mod precision;
pub mod predict;
pub mod random;
pub mod retrain;
pub mod run_config;
pub mod rundir;
pub mod runtime;
pub mod search_run;
pub mod smoke;
pub mod step;
pub mod summary;
pub mod tensorboard;
pub mod train_loop;
pub mod trained;
