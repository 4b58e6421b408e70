//! How a run's ranks cooperate, as a strategy the training code holds instead of an optional
//! group (burn's training strategies; PyTorch's DDP): one process, or data-parallel ranks that
//! average their gradients before every update. Every collective a step, an evaluation or a
//! run folder needs is a method here, and each is a no-op (or the identity) in one process, so
//! no step, task or evaluation branches on whether it runs distributed.

use std::sync::Arc;

use anyhow::Result;
use tch::{nn, Tensor};

use super::Group;

/// The ranks of a run.
#[derive(Clone, Default)]
pub enum Ranks {
    /// One process.
    #[default]
    Single,
    /// Data-parallel ranks of a process group (docs/distributed.md).
    DataParallel(Arc<Group>),
}

impl Ranks {
    /// The strategy of an optional group.
    pub fn of(group: Option<Arc<Group>>) -> Ranks {
        group.map_or(Ranks::Single, Ranks::DataParallel)
    }

    /// The process group, when there is one (for the launcher-level records and sync batch
    /// norm).
    pub fn group(&self) -> Option<&Arc<Group>> {
        match self {
            Ranks::Single => None,
            Ranks::DataParallel(group) => Some(group),
        }
    }

    /// Number of ranks (1 in one process).
    pub fn size(&self) -> usize {
        self.group().map_or(1, |g| g.size)
    }

    /// This process's rank (0 in one process).
    pub fn rank(&self) -> usize {
        self.group().map_or(0, |g| g.rank)
    }

    /// Whether more than one process takes part.
    pub fn is_distributed(&self) -> bool {
        self.group().is_some()
    }

    /// Averages `grads` (aligned with `params`) and `loss` across the ranks; the identity in one
    /// process.
    pub fn average(&self, params: &[Tensor], grads: &mut [Option<Tensor>], loss: f64) -> Result<f64> {
        match self.group() {
            None => Ok(loss),
            Some(group) => group.average_gradients(params, grads, loss),
        }
    }

    /// Records that this rank reached `step` (the group's store names a rank that lags).
    pub fn record_progress(&self, step: u64) {
        if let Some(group) = self.group() {
            group.record_progress(step);
        }
    }

    /// Gives every rank rank 0's values of every variable of `stores`.
    pub fn broadcast_stores(&self, stores: &[&nn::VarStore]) -> Result<()> {
        self.group().map_or(Ok(()), |g| g.broadcast_stores(stores))
    }

    /// Gives every rank rank 0's batch-norm statistics of `stores`.
    pub fn broadcast_buffers(&self, stores: &[&nn::VarStore]) -> Result<()> {
        self.group().map_or(Ok(()), |g| g.broadcast_buffers(stores))
    }

    /// Every [`super::CHECK_EVERY_STEPS`] steps, checks that every rank holds rank 0's parameters.
    pub fn check_same_every(&self, stores: &[&nn::VarStore], step: usize) -> Result<()> {
        match self.group() {
            Some(group) if step % super::CHECK_EVERY_STEPS == 0 => group.check_same(stores, step),
            _ => Ok(()),
        }
    }

    /// Sums integer counts (a confusion matrix) across the ranks; the identity in one process.
    pub fn sum_counts(&self, counts: &[u64]) -> Result<Vec<u64>> {
        self.group().map_or_else(|| Ok(counts.to_vec()), |g| g.sum_counts(counts))
    }

    /// This rank's deterministic share of training `items`, as many for every rank
    /// ([`super::shard_even`]); all of them in one process.
    pub fn share_even<T: Clone>(&self, items: &[T]) -> Vec<T> {
        super::shard_even(items, self.rank(), self.size())
    }

    /// This rank's share of evaluation `items` (every item someone's, [`super::shard`]).
    pub fn share<T: Clone>(&self, items: &[T]) -> Vec<T> {
        super::shard(items, self.rank(), self.size())
    }
}
