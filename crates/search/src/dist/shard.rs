//! Each rank's deterministic share of a list (training samples, evaluation samples).

/// Rank `rank`'s share of `items` out of `size` ranks: every `size`-th, from the `rank`-th (for
/// evaluation: every item is someone's).
pub fn shard<T: Clone>(items: &[T], rank: usize, size: usize) -> Vec<T> {
    items.iter().skip(rank).step_by(size.max(1)).cloned().collect()
}

/// [`shard`] cut to `items.len() / size` for every rank (for training: every rank then has as
/// many batches per epoch; the last `items.len() % size` items are left out of the epoch, as
/// DistributedSampler drops them with `drop_last`).
pub fn shard_even<T: Clone>(items: &[T], rank: usize, size: usize) -> Vec<T> {
    let mut share = shard(items, rank, size);
    share.truncate(items.len() / size.max(1));
    share
}
