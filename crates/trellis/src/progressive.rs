//! Progressive decisions in the style of SGAS (Li et al., "SGAS: Sequential Greedy Architecture
//! Search", CVPR 2020, §3.2), for Auto-DeepLab's cell (paper §3.1): at each decision point the
//! search fixes the undecided block whose decoding is the most certain — the largest
//! `cell::Genotype::block_margin`, so the block whose two inputs and their ops are furthest from
//! another choice — and keeps training with that block's choice in place of its mixed edges.
//!
//! A decision is written into α's logits (and the PC-DARTS edge logits when searched) so that
//! softmax(α) is one-hot on the chosen op of each kept edge and on `none` for every other input
//! of the block, to within e^-[`DECIDED_LOGIT`]; the search re-applies it after every Adam step
//! ([`project`]), so later steps cannot move it. Because the decision lives in the logits,
//! checkpoints, `search decode` and resumption see it without any other state.
//!
//! A decision is taken only when the block is certain enough ([`decide_due`]'s `min_margin`):
//! fixing a block by a near tie would make a coin toss permanent, so a decision that falls short
//! is deferred and the schedule catches up once blocks clear the margin. Which decisions are
//! due follows from the schedule and the count already taken, so deferral needs no state either.
//!
//! The same can decide the network path (paper §3.2), layer by layer from the stem
//! ([`decide_path_due`]): the next undecided layer's node on the Viterbi path is fixed when the
//! path's margin there (`crate::viterbi::path_margins`: how far the best path through another
//! node of that layer falls behind) clears the margin, by writing the move into it into β's
//! logits of the node it leaves — one-hot to within e^-[`DECIDED_LOGIT`] ([`project_path`]).
//! The path cannot be fixed in any other order: a decision is a move out of a node, and only a
//! decided prefix says which node the path leaves from. Where the first move (out of the stem,
//! whose β the search does not learn: `crate::margins`) is fixed, the other node of layer 0 is
//! scaled to nothing and the supernet trains on the decided start.

use cell::edges::{block_inputs, edge_offset};
use cell::{CellEdge, Genotype, Primitive};
use serde::{Deserialize, Serialize};
use tch::{Device, Kind, Tensor};

use crate::arch::{ArchParams, ArchWeights};
use crate::path::NUM_LEVELS;
use crate::space::{transition_valid, Transition};

/// The logit a decision gives its chosen op (every other op gets 0): softmax weight
/// 1 / (1 + 7·e^-20) ≈ 1 − 1.4e-8.
pub const DECIDED_LOGIT: f64 = 20.0;

/// One block fixed by a progressive decision.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Decision {
    pub block: usize,
    /// Its two kept edges (input, op), as decoding reads them.
    pub edges: [CellEdge; 2],
    /// The block's margin (`cell::Genotype::block_margin`) when it was decided.
    pub margin: f64,
    /// The epoch (0-based) at whose end it was decided.
    pub epoch: usize,
}

/// How firmly the progressive decisions chose: the block margins at which the blocks were
/// fixed, as `arch/final.json`'s `decided_margins` records them. A decided cell decodes one-hot
/// (closest call 1), so only these say whether a block was a near tie when it was fixed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DecidedMargins {
    /// The smallest margin a block was fixed at, that block and the epoch at whose end it was.
    pub smallest: f64,
    pub block: usize,
    pub epoch: usize,
    /// The largest.
    pub largest: f64,
    /// Whether the smallest is below `cell::genotype::NEAR_TIE_MARGIN`: a near tie when decided.
    pub near_tie: bool,
}

impl DecidedMargins {
    /// Of `decisions`; `None` when there are none.
    pub fn of(decisions: &[Decision]) -> Option<DecidedMargins> {
        let first = decisions.iter().min_by(|a, b| a.margin.total_cmp(&b.margin))?;
        Some(DecidedMargins {
            smallest: first.margin,
            block: first.block,
            epoch: first.epoch,
            largest: decisions.iter().map(|d| d.margin).fold(f64::NEG_INFINITY, f64::max),
            near_tie: first.margin < cell::genotype::NEAR_TIE_MARGIN,
        })
    }
}

/// The most certain block not in `decided`, decoded from `weights` (at τ = 1:
/// `ArchParams::decision_weights`), as a decision taken at the end of `epoch`; `None` once
/// every block is decided.
pub fn most_certain(weights: &ArchWeights, blocks: usize, decided: &[Decision], epoch: usize) -> Option<Decision> {
    let flat = Vec::<f64>::try_from(weights.decoding().to_device(Device::Cpu).to_kind(Kind::Double).flatten(0, -1))
        .expect("float weights");
    let rows: Vec<[f64; Primitive::COUNT]> =
        flat.chunks_exact(Primitive::COUNT).map(|r| r.try_into().expect("rows of 8")).collect();
    let genotype = Genotype::decode(&rows, blocks).ok()?;
    (0..blocks)
        .filter(|b| decided.iter().all(|d| d.block != *b))
        .map(|block| (block, Genotype::block_margin(&rows, block)))
        // The largest margin; the lowest block on ties.
        .fold(None, |best: Option<(usize, f64)>, (b, m)| match best {
            Some((_, bm)) if bm >= m => best,
            _ => Some((b, m)),
        })
        .map(|(block, margin)| Decision { block, edges: genotype.blocks()[block], margin, epoch })
}

/// What [`decide_due`] (blocks, `D` = [`Decision`]) or [`decide_path_due`] (the path's layers,
/// `D` = [`PathDecision`]) did at one epoch's end.
#[derive(Debug, Clone, PartialEq)]
pub struct Taken<D> {
    /// The decisions taken now, in order.
    pub decided: Vec<D>,
    /// The next decision when it fell short of the margin, so that a decision the schedule had
    /// due was deferred; `None` when nothing due was left undecided.
    pub deferred: Option<D>,
}

impl<D> Default for Taken<D> {
    fn default() -> Self {
        Taken { decided: Vec::new(), deferred: None }
    }
}

/// The schedule's rule for both kinds of decision: while fewer than `due` are taken, the next
/// candidate (`next`, from those already taken; `None` when there is nothing left to decide) is
/// taken — appended to `decided` and written by `project` — if its margin is at least
/// `min_margin`, and deferred otherwise.
fn take_due<D: Clone>(
    decided: &mut Vec<D>,
    due: usize,
    min_margin: f64,
    margin: impl Fn(&D) -> f64,
    mut next: impl FnMut(&[D]) -> Option<D>,
    project: impl Fn(&[D]),
) -> Taken<D> {
    let mut taken = Taken::default();
    while decided.len() < due {
        let Some(candidate) = next(decided) else { break };
        if margin(&candidate) < min_margin {
            taken.deferred = Some(candidate);
            break;
        }
        decided.push(candidate.clone());
        project(decided);
        taken.decided.push(candidate);
    }
    taken
}

/// Takes the decisions the schedule has due by the end of `epoch` (`due` in all, `decided`
/// already taken): while fewer than `due` blocks are decided, the most certain undecided block
/// is fixed — appended to `decided` and written into `arch` — if its margin is at least
/// `min_margin`; otherwise the decision is deferred (returned, nothing changed), to be tried
/// again at a later epoch's end, where the decisions still due catch up as soon as blocks clear
/// the margin. Margins are read at τ = 1 (`ArchParams::decision_weights`).
pub fn decide_due(
    arch: &ArchParams,
    blocks: usize,
    decided: &mut Vec<Decision>,
    due: usize,
    min_margin: f64,
    epoch: usize,
) -> Taken<Decision> {
    // Read once: a projection rewrites only its block's rows (PC-DARTS edges are normalised per
    // block), so the undecided blocks' weights stay as read.
    let weights = tch::no_grad(|| arch.decision_weights());
    take_due(
        decided,
        due.min(blocks),
        min_margin,
        |d| d.margin,
        |taken| most_certain(&weights, blocks, taken, epoch),
        |taken| project(arch, taken),
    )
}

/// Writes `decided` into `arch`'s logits (see the module documentation).
pub fn project(arch: &ArchParams, decided: &[Decision]) {
    tch::no_grad(|| {
        let logits = arch.alpha.logits();
        let (kind, device) = (logits.kind(), logits.device());
        for decision in decided {
            for input in 0..block_inputs(decision.block) {
                let chosen = decision.edges.iter().find(|e| e.input == input).map_or(Primitive::None, |e| e.op);
                let mut row = [0.0f64; Primitive::COUNT];
                row[chosen.index()] = DECIDED_LOGIT;
                let row = Tensor::from_slice(&row).to_kind(kind).to_device(device);
                logits.narrow(0, (edge_offset(decision.block) + input) as i64, 1).copy_(&row.unsqueeze(0));
                if let Some(edges) = &arch.edges {
                    let kept = if chosen == Primitive::None { -DECIDED_LOGIT } else { 0.0 };
                    let _ = edges.narrow(0, (edge_offset(decision.block) + input) as i64, 1).fill_(kept);
                }
            }
        }
    });
}

/// One layer of the network path fixed by a progressive decision: the move into `layer`
/// lands at `level`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PathDecision {
    pub layer: usize,
    pub level: u8,
    /// The path's margin at that layer (`crate::viterbi::path_margins`) when it was decided.
    pub margin: f64,
    /// The epoch (0-based) at whose end it was decided.
    pub epoch: usize,
}

/// Normalised β at τ = 1 as Viterbi reads it, `[L][4][3]`.
fn beta_rows(arch: &ArchParams) -> Vec<[[f64; 3]; NUM_LEVELS]> {
    crate::viterbi::beta_layers(&tch::no_grad(|| arch.decision_weights().beta))
}

/// Takes the path decisions the schedule has due by the end of `epoch` (`due` in all,
/// `decided` the layers already fixed, from layer 0 on): while fewer than `due` layers are
/// decided, the next layer's node on the Viterbi path is fixed — appended to `decided` and
/// written into β — if the path's margin there is at least `min_margin`; otherwise the decision
/// is deferred (returned, nothing changed) and tried again at a later epoch's end.
pub fn decide_path_due(
    arch: &ArchParams,
    decided: &mut Vec<PathDecision>,
    due: usize,
    min_margin: f64,
    epoch: usize,
) -> Taken<PathDecision> {
    let layers = arch.beta.size()[0] as usize;
    take_due(
        decided,
        due.min(layers),
        min_margin,
        |d| d.margin,
        |taken| {
            // Read again for each decision: fixing a move changes every path's score.
            let beta = beta_rows(arch);
            let path = crate::viterbi(&beta);
            let layer = taken.len();
            let margin = crate::viterbi::path_margins(&beta, &path)[layer];
            Some(PathDecision { layer, level: path.levels()[layer], margin, epoch })
        },
        |taken| project_path(arch, taken),
    )
}

/// Writes `decided` (layers 0, 1, … in order) into β's logits: the row of the node each
/// decided move leaves (the stem for layer 0) becomes [`DECIDED_LOGIT`] on that move and 0 on
/// the others.
pub fn project_path(arch: &ArchParams, decided: &[PathDecision]) {
    tch::no_grad(|| {
        let mut from = 0usize;
        for (k, d) in decided.iter().enumerate() {
            assert_eq!(d.layer, k, "path decisions are taken from layer 0 on, in order");
            let to = d.level as usize;
            let transition = Transition::ALL
                .into_iter()
                .find(|&t| t.target(from) == Some(to) && transition_valid(k, from, t))
                .unwrap_or_else(|| panic!("no valid move from level {from} into level {to} at layer {k}"));
            let mut row = [0.0f64; 3];
            row[transition.index()] = DECIDED_LOGIT;
            let row = Tensor::from_slice(&row).to_kind(arch.beta.kind()).to_device(arch.beta.device());
            arch.beta.get(k as i64).get(from as i64).copy_(&row);
            from = to;
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::nn;

    /// The most certain block is decided first, the decision survives Adam-sized changes by
    /// being projected again, and decoding reads it back.
    #[test]
    fn the_most_certain_block_is_decided_and_stays_decided() {
        let vs = nn::VarStore::new(Device::Cpu);
        let arch = ArchParams::new(&vs.root(), 3, 2);
        tch::no_grad(|| {
            let _ = arch.alpha.logits().shallow_clone().fill_(0.0);
            // Block 1 (edges 2, 3, 4): input 0 strongly sep_conv_3x3, input 2 skip.
            let _ = arch.alpha.logits().get(2).get(Primitive::SepConv3x3.index() as i64).fill_(3.0);
            let _ = arch.alpha.logits().get(4).get(Primitive::SkipConnect.index() as i64).fill_(2.0);
        });
        let first = most_certain(&arch.decision_weights(), 3, &[], 4).unwrap();
        assert_eq!(first.block, 1);
        assert_eq!(
            first.edges,
            [CellEdge { input: 0, op: Primitive::SepConv3x3 }, CellEdge { input: 2, op: Primitive::SkipConnect }]
        );
        assert!(first.margin > 0.0);
        project(&arch, std::slice::from_ref(&first));
        let w = arch.decision_weights().alpha;
        assert!(f64::try_from(w.get(2).get(Primitive::SepConv3x3.index() as i64)).unwrap() > 1.0 - 1e-6);
        assert!(f64::try_from(w.get(3).get(Primitive::None.index() as i64)).unwrap() > 1.0 - 1e-6);
        let decoded = Genotype::decode_logits(arch.alpha.logits(), 3).unwrap();
        assert_eq!(decoded.blocks()[1], first.edges);
        let mut decided = vec![first];
        while let Some(next) = most_certain(&arch.decision_weights(), 3, &decided, 5) {
            assert!(decided.iter().all(|d| d.block != next.block), "a decided block is not decided again");
            decided.push(next);
            project(&arch, &decided);
        }
        assert_eq!(decided.len(), 3, "every block, once");
    }

    /// A decision below the margin is deferred, nothing written; once the block clears it, the
    /// decisions still due are taken together; none beyond what is due.
    #[test]
    fn decisions_below_the_margin_are_deferred_then_catch_up() {
        let vs = nn::VarStore::new(Device::Cpu);
        let arch = ArchParams::new(&vs.root(), 3, 2);
        let set = |edge: i64, op: Primitive, logit: f64| {
            tch::no_grad(|| {
                let _ = arch.alpha.logits().get(edge).get(op.index() as i64).fill_(logit);
            })
        };
        tch::no_grad(|| {
            let _ = arch.alpha.logits().shallow_clone().fill_(0.0);
        });
        // Every block barely off uniform: the most certain is still a near tie.
        set(2, Primitive::SepConv3x3, 0.02);
        let before = arch.alpha.logits().copy();
        let mut decided = Vec::new();
        let taken = decide_due(&arch, 3, &mut decided, 1, 0.01, 4);
        let deferred = taken.deferred.expect("deferred");
        assert!(deferred.margin < 0.01, "{deferred:?}");
        assert_eq!((taken.decided.len(), decided.len()), (0, 0));
        assert!(arch.alpha.logits().equal(&before), "a deferred decision writes nothing");
        // Two epochs later two decisions are due, and blocks 0 (edges 0, 1; margin 0.44) and 1
        // (edges 2, 3 kept over 4; margin 0.39) are certain; block 2 is still uniform.
        set(2, Primitive::SepConv3x3, 3.0);
        set(3, Primitive::SkipConnect, 2.0);
        set(0, Primitive::DilConv3x3, 2.0);
        set(1, Primitive::SkipConnect, 2.0);
        let taken = decide_due(&arch, 3, &mut decided, 2, 0.01, 6);
        assert_eq!(taken.decided.iter().map(|d| d.block).collect::<Vec<_>>(), [0, 1]);
        assert!(taken.decided[0].margin > taken.decided[1].margin, "the most certain first");
        assert!(taken.deferred.is_none() && taken.decided.iter().all(|d| d.margin >= 0.01 && d.epoch == 6));
        assert_eq!(decided, taken.decided);
        let decoded = Genotype::decode_logits(arch.alpha.logits(), 3).unwrap();
        assert_eq!(decoded.blocks()[1], decided[1].edges, "written into α");
        // Nothing more than is due, and margin 0 decides whatever the margin.
        assert_eq!(decide_due(&arch, 3, &mut decided, 2, 0.0, 7), Taken::<Decision>::default());
        let last = decide_due(&arch, 3, &mut decided, 5, 0.0, 8);
        assert_eq!((last.decided.len(), decided.len()), (1, 3));
    }

    /// The path is decided from the stem on, each layer only when the path's margin there
    /// clears the bar; a decision is written into β so that Viterbi follows it afterwards,
    /// whatever β's other moves do.
    #[test]
    fn the_path_is_decided_from_the_stem_only_when_certain() {
        let vs = nn::VarStore::new(Device::Cpu);
        let arch = ArchParams::new(&vs.root(), 2, 3);
        let set = |l: i64, i: i64, logits: [f64; 3]| {
            tch::no_grad(|| {
                arch.beta.get(l).get(i).copy_(&Tensor::from_slice(&logits).to_kind(Kind::Float));
            })
        };
        tch::no_grad(|| {
            let _ = arch.beta.shallow_clone().fill_(0.0);
        });
        // Uniform β: the first layer's margin is Viterbi's prior alone (⅓ for three layers),
        // above 0.01 — so require more than that to see a deferral.
        let mut decided = Vec::new();
        let taken = decide_path_due(&arch, &mut decided, 1, 0.5, 4);
        let deferred = taken.deferred.expect("deferred");
        assert!((deferred.margin - 1.0 / 3.0).abs() < 1e-6 && deferred.layer == 0, "{deferred:?}");
        assert!(decided.is_empty() && taken.decided.is_empty());
        // From level 1 the moves after the stem are strongly Finer (back to level 0), from level
        // 0 they are even: the best path starts at level 1, by a clear margin.
        set(1, 1, [3.0, 0.0, 0.0]);
        let taken = decide_path_due(&arch, &mut decided, 2, 0.01, 5);
        assert_eq!(taken.decided.iter().map(|d| (d.layer, d.level)).collect::<Vec<_>>(), [(0, 1), (1, 0)]);
        assert!(taken.decided.iter().all(|d| d.margin >= 0.01 && d.epoch == 5));
        assert_eq!(decided, taken.decided);
        // Written into β: the stem's move and level 1's move are one-hot, and Viterbi keeps the
        // decided prefix even when the moves out of level 1 turn the other way.
        let beta = beta_rows(&arch);
        assert!(beta[0][0][Transition::Coarser.index()] > 1.0 - 1e-6, "{:?}", beta[0][0]);
        assert!(beta[1][1][Transition::Finer.index()] > 1.0 - 1e-6, "{:?}", beta[1][1]);
        set(1, 1, [-5.0, 5.0, 0.0]);
        project_path(&arch, &decided);
        assert_eq!(&crate::viterbi(&beta_rows(&arch)).levels()[..2], [1, 0]);
        // Nothing beyond what is due; margin 0 decides the rest whatever the margin.
        assert_eq!(decide_path_due(&arch, &mut decided, 2, 0.01, 6), Taken::default());
        let last = decide_path_due(&arch, &mut decided, 9, 0.0, 7);
        assert_eq!((last.decided.len(), decided.len()), (1, 3));
    }

    /// The smallest and largest margins the blocks were fixed at, the block and epoch of the
    /// smallest, and whether it was a near tie (below `NEAR_TIE_MARGIN`, 0.01).
    #[test]
    fn decided_margins_name_the_closest_decision() {
        let edges =
            [CellEdge { input: 0, op: Primitive::SkipConnect }, CellEdge { input: 1, op: Primitive::SepConv3x3 }];
        let at = |block, margin, epoch| Decision { block, edges, margin, epoch };
        assert_eq!(DecidedMargins::of(&[]), None);
        let d = DecidedMargins::of(&[at(3, 0.02, 4), at(1, 0.0047, 5), at(0, 0.04, 6)]).unwrap();
        assert_eq!(d, DecidedMargins { smallest: 0.0047, block: 1, epoch: 5, largest: 0.04, near_tie: true });
        let firm = DecidedMargins::of(&[at(3, 0.02, 4), at(0, 0.01, 6)]).unwrap();
        assert!(!firm.near_tie, "a margin of 0.01 is not below the near-tie margin");
    }
}
