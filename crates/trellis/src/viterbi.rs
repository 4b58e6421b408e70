//! Decoding the network path from β with the Viterbi algorithm (paper §4.3).
//!
//! The normalised β are transition probabilities; the path is the one of maximum probability
//! from the stem (level 0) through the L layers: dynamic programming over the sum of
//! log-probabilities. Ties break deterministically: between predecessors of equal score the one
//! at the lower level wins, and between end levels of equal score the lower level wins.

use crate::path::{NetworkPath, NUM_LEVELS};
use crate::space::{transition_valid, Transition};

/// Normalised β `[L, 4, 3]` (any float kind or device) as the per-layer rows [`viterbi`] and
/// [`path_margins`] read.
pub fn beta_layers(beta: &tch::Tensor) -> Vec<[[f64; 3]; NUM_LEVELS]> {
    let flat =
        Vec::<f64>::try_from(beta.detach().to_device(tch::Device::Cpu).to_kind(tch::Kind::Double).flatten(0, -1))
            .expect("float weights");
    flat.chunks_exact(3 * NUM_LEVELS).map(|l| std::array::from_fn(|i| std::array::from_fn(|d| l[3 * i + d]))).collect()
}

/// The most probable path through normalised β, given as `[L][4][3]` probabilities (invalid
/// transitions are ignored whatever their value). Returns one level per layer.
pub fn viterbi(beta: &[[[f64; 3]; NUM_LEVELS]]) -> NetworkPath {
    let layers = beta.len();
    assert!(layers >= 1, "a path needs at least one layer");
    // score[j]: best log-probability of reaching level j at the current layer.
    let mut score = [f64::NEG_INFINITY; NUM_LEVELS];
    score[0] = 0.0; // the stem
    let mut back = vec![[usize::MAX; NUM_LEVELS]; layers];
    for (layer, row) in beta.iter().enumerate() {
        let mut next = [f64::NEG_INFINITY; NUM_LEVELS];
        for source in 0..NUM_LEVELS {
            if score[source] == f64::NEG_INFINITY {
                continue;
            }
            for transition in Transition::ALL {
                if !transition_valid(layer, source, transition) {
                    continue;
                }
                let target = transition.target(source).expect("valid transitions have a target");
                let candidate = score[source] + row[source][transition.index()].ln();
                // Strictly greater: the lower source level keeps a tie (sources ascend).
                if candidate > next[target] || back[layer][target] == usize::MAX && candidate == next[target] {
                    next[target] = candidate;
                    back[layer][target] = source;
                }
            }
        }
        score = next;
    }
    let mut level = (0..NUM_LEVELS)
        .filter(|&j| back[layers - 1][j] != usize::MAX)
        .fold(None, |best: Option<usize>, j| match best {
            Some(b) if score[b] >= score[j] => Some(b),
            _ => Some(j),
        })
        .expect("the last layer has a reachable level");
    let mut levels = vec![0u8; layers];
    for layer in (0..layers).rev() {
        levels[layer] = level as u8;
        level = back[layer][level];
    }
    NetworkPath::new(levels).expect("Viterbi only follows valid transitions")
}

/// How firmly Viterbi chose each layer of `path` (the decoded path of `beta`, as [`viterbi`]
/// gives it): per layer l, 1 − P(best path through another level at layer l) / P(best path).
/// 0 is a tie with a path through another node of that layer, close to 1 a path no other comes
/// near. Unlike a node's own β margin this is defined for the stem's move into layer 0 too,
/// whose β the search does not learn (`crate::margins`): it says how much the moves after it
/// prefer one start over the other. Computed by max-product forward and backward passes.
pub fn path_margins(beta: &[[[f64; 3]; NUM_LEVELS]], path: &NetworkPath) -> Vec<f64> {
    let layers = beta.len();
    assert_eq!(path.levels().len(), layers, "one level per layer of β");
    let step = |layer: usize, source: usize, transition: Transition| -> Option<(usize, f64)> {
        transition_valid(layer, source, transition)
            .then(|| (transition.target(source).expect("valid"), beta[layer][source][transition.index()].ln()))
    };
    // forward[l][j]: the best log-probability of the stem to level j at layer l.
    let mut forward = vec![[f64::NEG_INFINITY; NUM_LEVELS]; layers];
    for layer in 0..layers {
        for source in 0..NUM_LEVELS {
            let from = if layer == 0 {
                if source == 0 {
                    0.0
                } else {
                    f64::NEG_INFINITY
                }
            } else {
                forward[layer - 1][source]
            };
            if from == f64::NEG_INFINITY {
                continue;
            }
            for transition in Transition::ALL {
                if let Some((target, ln)) = step(layer, source, transition) {
                    forward[layer][target] = forward[layer][target].max(from + ln);
                }
            }
        }
    }
    // backward[l][j]: the best log-probability from level j at layer l to any end.
    let mut backward = vec![[f64::NEG_INFINITY; NUM_LEVELS]; layers];
    backward[layers - 1] = [0.0; NUM_LEVELS];
    for layer in (0..layers - 1).rev() {
        for source in 0..NUM_LEVELS {
            for transition in Transition::ALL {
                if let Some((target, ln)) = step(layer + 1, source, transition) {
                    backward[layer][source] = backward[layer][source].max(ln + backward[layer + 1][target]);
                }
            }
        }
    }
    let best = forward[layers - 1].iter().copied().fold(f64::NEG_INFINITY, f64::max);
    path.levels()
        .iter()
        .enumerate()
        .map(|(layer, &on)| {
            let other = (0..NUM_LEVELS)
                .filter(|&j| j != on as usize)
                .map(|j| forward[layer][j] + backward[layer][j])
                .fold(f64::NEG_INFINITY, f64::max);
            (1.0 - (other - best).exp()).clamp(0.0, 1.0)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each layer's margin compares the best path with the best one through another node of
    /// that layer, by hand on two layers.
    #[test]
    fn path_margins_compare_the_best_path_with_the_best_through_another_node() {
        // The stem's move is a tie (0.5 / 0.5) but the moves after it are not: from level 0 the
        // best continuation is 0.6, from level 1 0.9 (Finer), so [1, 0] wins (0.45) and the
        // best path starting at level 0 scores 0.5 · 0.6 = 0.30: layer 0's margin 1 − 0.30/0.45.
        let mut beta = uniform(2);
        beta[0][0] = [0.0, 0.5, 0.5];
        beta[1][0] = [0.0, 0.6, 0.4];
        beta[1][1] = [0.9, 0.05, 0.05];
        let path = viterbi(&beta);
        assert_eq!(path.levels(), [1, 0]);
        let m = path_margins(&beta, &path);
        assert!((m[0] - (1.0 - 0.30 / 0.45)).abs() < 1e-12, "{m:?}");
        // At layer 1 the other nodes are levels 1 ([0, 1]: 0.20) and 2 ([1, 2]: 0.025).
        assert!((m[1] - (1.0 - 0.20 / 0.45)).abs() < 1e-12, "{m:?}");
        // Uniform β still prefers rate 4, by Viterbi's prior: a node at level 0 splits its
        // weight two ways, one at level 1 three ways, so [0, 0, 0] scores 0.5³ and the best
        // path through level 1 at layer 0 ([1, 0, 0]) 0.5 · ⅓ · 0.5: layer 0's margin is ⅓.
        let beta = uniform(3);
        let m = path_margins(&beta, &viterbi(&beta));
        assert!((m[0] - 1.0 / 3.0).abs() < 1e-12, "{m:?}");
        // Near-certain moves: every layer near 1.
        let mut beta = uniform(2);
        beta[0][0] = [0.0, 0.999, 0.001];
        beta[1][0] = [0.0, 0.999, 0.001];
        let m = path_margins(&beta, &viterbi(&beta));
        assert!(m.iter().all(|&x| x > 0.99), "{m:?}");
    }

    /// β where every valid move of every node has the same probability.
    fn uniform(layers: usize) -> Vec<[[f64; 3]; 4]> {
        (0..layers)
            .map(|l| {
                let mut row = [[0.0; 3]; 4];
                for (i, moves) in row.iter_mut().enumerate() {
                    let valid: Vec<Transition> =
                        Transition::ALL.into_iter().filter(|&t| transition_valid(l, i, t)).collect();
                    for t in &valid {
                        moves[t.index()] = 1.0 / valid.len() as f64;
                    }
                }
                row
            })
            .collect()
    }

    #[test]
    fn the_best_path_is_not_the_greedy_one() {
        // Greedy from the stem takes Same (0.6) into level 0, then is stuck with 0.5 / 0.5.
        // Going Coarser first (0.4) opens a 0.99 move: 0.4 * 0.99 > 0.6 * 0.5.
        let mut beta = uniform(2);
        beta[0][0] = [0.0, 0.6, 0.4];
        beta[1][0] = [0.0, 0.5, 0.5];
        beta[1][1] = [0.005, 0.005, 0.99];
        assert_eq!(viterbi(&beta).levels(), [1, 2]);
    }

    #[test]
    fn ties_go_to_the_lower_level() {
        let mut beta = uniform(1);
        beta[0][0] = [0.0, 0.5, 0.5];
        assert_eq!(viterbi(&beta).levels(), [0]);
        let mut beta = uniform(2);
        beta[0][0] = [0.0, 0.5, 0.5];
        beta[1][0] = [0.0, 0.5, 0.5];
        beta[1][1] = [0.5, 0.0, 0.5];
        // Four paths of probability 0.25 end at levels 0, 1, 0, 2: level 0 through source 0.
        assert_eq!(viterbi(&beta).levels(), [0, 0]);
    }

    #[test]
    fn long_paths_follow_strong_moves_and_respect_the_trellis() {
        let mut beta = uniform(12);
        // Prefer Coarser everywhere and Same at level 3: the path climbs one level per layer,
        // then stays at 3.
        for (layer, row) in beta.iter_mut().enumerate() {
            for (i, moves) in row.iter_mut().enumerate() {
                if i == 3 && transition_valid(layer, i, Transition::Same) {
                    *moves = [0.1, 0.9, 0.0];
                } else if transition_valid(layer, i, Transition::Coarser) {
                    *moves =
                        if transition_valid(layer, i, Transition::Finer) { [0.05, 0.05, 0.9] } else { [0.0, 0.1, 0.9] };
                }
            }
        }
        assert_eq!(viterbi(&beta).levels(), [1, 2, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3]);
        // The paper's path, encoded as near-certain moves, is recovered.
        let paper = NetworkPath::paper();
        let mut beta = uniform(12);
        let mut from = 0usize;
        for (layer, &to) in paper.levels().iter().enumerate() {
            let d = (to as usize + 1) - from;
            let moves = &mut beta[layer][from];
            for (k, m) in moves.iter_mut().enumerate() {
                if transition_valid(layer, from, Transition::ALL[k]) {
                    *m = if k == d { 0.9 } else { 0.05 };
                }
            }
            from = to as usize;
        }
        assert_eq!(viterbi(&beta), paper);
    }
}
