//! The tasks a run is made of (paper §4 for the search, §5.2 for retraining): each opens its run
//! folder, builds its networks and optimisers and hands the training loop
//! (`crate::train::train_loop`) a `Task`, or measures steps.
//!
//! - [`search_run`]: `search run`, the bilevel search, on the schedule [`search_budget`] plans;
//! - [`retrain`]: `search train`, retraining a decoded network (and the demo's per-pixel
//!   baseline);
//! - [`demo`]: the whole chain on built-in synthetic data against random architectures;
//! - [`random`]: architectures drawn at random from the search space;
//! - [`compare`]: `search compare`, the searched architecture against random draws and
//!   hand-designed baselines, each retrained for several seeds ([`compare_stats`]: the tests;
//!   [`compare_reference`]: another comparison's random retrainings taken over);
//! - [`bench`], [`bench_data`]: the time and memory of search steps and of the data path.

pub mod bench;
pub mod bench_data;
pub mod compare;
pub mod compare_reference;
pub mod compare_stats;
pub mod demo;
pub mod random;
pub mod retrain;
pub mod search_budget;
pub mod search_run;
