//! Distributed runs (docs/distributed.md): who this process is among the ranks of a run (from
//! the launcher's environment: torchrun, SLURM or an MPI launcher), and the collective engine,
//! libtorch's own c10d process groups (Gloo on the CPU, NCCL on CUDA) reached through the C++
//! shim `csrc/dist.cpp`, with rendezvous through c10d's TCPStore at MASTER_ADDR:MASTER_PORT.
//!
//! Every collective waits at most the group's timeout: a rank that died or hangs makes the
//! others fail with an error that names the operation, never a silent hang.
//!
//! - `env`: who this process is ([`Launch`], from the launcher's variables) and joining the
//!   group ([`join_from_env`]);
//! - `group`: the process group through the C++ shim and its collectives ([`Group`]);
//! - [`ranks`](Ranks): the strategy the training code holds (one process or data-parallel);
//! - `sync_bn`: synchronised batch norm through the cells' batch-norm hook;
//! - `shard`: each rank's share of a list;
//! - [`launch`]: `--nproc-per-node`, the local launcher.

mod env;
mod group;
pub mod launch;
mod ranks;
mod shard;
mod sync_bn;

pub use env::{join_from_env, Launch, DEFAULT_PORT};
pub use group::{Engine, Group, BUCKET_BYTES, CHECK_EVERY_STEPS};
pub use ranks::Ranks;
pub use shard::{shard, shard_even};
pub use sync_bn::{synchronise_batch_norm, SyncBatchNormGuard};
