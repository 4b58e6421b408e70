//! What a run shows of itself: log lines and progress bars ([`logging`]), TensorBoard event
//! files ([`tensorboard`]), pictures of α, β, the cell and the path ([`plots`], from the
//! search's [`arch_history`]), GPU memory and device-sized defaults ([`gpu`]), the environment
//! report ([`env`]) and network summaries ([`summary`]).

pub mod arch_history;
pub mod env;
pub mod gpu;
pub mod graph;
pub mod logging;
pub mod plots;
pub mod summary;
pub mod tensorboard;
