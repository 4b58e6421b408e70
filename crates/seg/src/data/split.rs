//! The search's trainA / trainB split (paper §4.2): the training list cut into two disjoint
//! halves, drawn from a seed. The list is sorted (see `cityscapes::list_images`), so the same
//! seed gives the same halves on every run and every resume.

use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// Splits indices `0..n` into two disjoint halves that cover them, each sorted: A (weights)
/// gets `ceil(n / 2)`, B (architecture) the rest.
pub fn split_halves(n: usize, seed: u64) -> (Vec<usize>, Vec<usize>) {
    let mut order: Vec<usize> = (0..n).collect();
    order.shuffle(&mut ChaCha8Rng::seed_from_u64(seed));
    let mut b = order.split_off(n.div_ceil(2));
    let mut a = order;
    a.sort_unstable();
    b.sort_unstable();
    (a, b)
}

/// The `items` at `indices`, in that order (a half of [`split_halves`] as samples).
pub fn pick<T: Clone>(items: &[T], indices: &[usize]) -> Vec<T> {
    indices.iter().map(|&i| items[i].clone()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn halves_are_disjoint_cover_and_stable() {
        for n in [0, 1, 2, 7, 100] {
            let (a, b) = split_halves(n, 42);
            assert_eq!(a.len(), n.div_ceil(2));
            let mut all: Vec<usize> = a.iter().chain(&b).copied().collect();
            all.sort_unstable();
            assert_eq!(all, (0..n).collect::<Vec<_>>(), "halves of {n} must cover it exactly once");
            assert_eq!(split_halves(n, 42), (a, b), "same seed, same halves");
        }
        assert_ne!(split_halves(100, 1), split_halves(100, 2));
        let (a, _) = split_halves(100, 1);
        assert_ne!(a, (0..50).collect::<Vec<_>>(), "the split is random, not the first half");
        assert_eq!(pick(&['a', 'b', 'c', 'd'], &[3, 0]), ['d', 'a']);
    }
}
