//! The cost of the deployable network, exact for a decoded architecture and expected under the
//! relaxed one (α, β): multiply-adds, parameters or latency (FasterSeg, Chen et al., ICLR 2020,
//! §3.3, put latency into a multi-resolution search this way; Auto-DeepLab itself searches for
//! accuracy alone).
//!
//! The network decoded from (α, β) ([`crate::DecodedNetwork`], paper §5.2) is a sum of parts,
//! each a [`Component`] whose cost a [`CostTable`] holds: the stem; per cell, the 1x1
//! preprocessing of H^{l-1} (which depends on the levels of cells l-1 and l) and of H^{l-2}
//! (levels of cells l-2, l-1 and l), and the ops of its two edges per block (op, level, stride
//! 2 on the cell inputs when the cell moves coarser); the ASPP at the last level; the decoder
//! (whose low-level feature is cell 0's output or the stem's). Resizes and additions count no
//! multiply-adds and no parameters.
//!
//! β is a softmax over each node's outgoing moves (Eq. 7), so the path is a Markov chain that
//! starts at the stem (level 0): the probability of node (l, j) is
//! `q_l[j] = sum_i q_{l-1}[i] * β[l][i][j - i + 1]`, and a part that depends on the levels of
//! two or three consecutive cells is weighted by their joint probability, a product of β
//! along the chain. In a cell, each edge is kept with probability `w_e` (1 for the two edges
//! of block 0; `2 / inputs` for every edge of a later block, or twice the block's softmax of
//! the PC-DARTS edge weights when they are searched) and chooses its op with the softmax of α
//! over the seven ops that are not `none`: decoding never keeps `none`, so counting it as free
//! would let the search buy a cost it cannot deploy. The expected cost is a differentiable
//! function of α, β and the edge weights; at a decided (one-hot) relaxation it is the decoded
//! network's cost ([`CostModel::architecture_cost`]), which for multiply-adds and parameters is
//! what `search summary` counts.

use std::collections::HashMap;
use std::path::Path;

use cell::edges::{block_inputs, edge_index, num_edges};
use cell::Primitive;
use serde::{Deserialize, Serialize};
use tch::{Kind, Tensor};

use crate::architecture::Architecture;
use crate::path::NUM_LEVELS;
use crate::space::{node_exists, transition_valid, Transition};

/// The networks a table describes: their shape and the input size they are deployed at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TableSpec {
    pub height: i64,
    pub width: i64,
    pub filter_multiplier: i64,
    pub blocks: usize,
    pub classes: i64,
    /// The stem's channels (`trellis::PAPER_STEM_CHANNELS` for the paper's networks).
    pub stem_channels: [i64; 3],
}

/// What a cost counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CostKind {
    /// Multiply-adds of one image (convolutions, as `search summary`).
    Macs,
    /// Trainable parameters.
    Params,
    /// Milliseconds of one image's forward pass, from a measured table (`search cost-table`).
    Latency,
}

impl CostKind {
    /// The name in files and flags.
    pub fn name(self) -> &'static str {
        match self {
            CostKind::Macs => "macs",
            CostKind::Params => "params",
            CostKind::Latency => "latency",
        }
    }

    /// The unit the values are in.
    pub fn unit(self) -> &'static str {
        match self {
            CostKind::Macs => "multiply-adds",
            CostKind::Params => "parameters",
            CostKind::Latency => "ms",
        }
    }
}

impl std::str::FromStr for CostKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "macs" => Ok(CostKind::Macs),
            "params" => Ok(CostKind::Params),
            "latency" => Ok(CostKind::Latency),
            other => Err(format!("unknown cost kind `{other}`; expected macs, params or latency")),
        }
    }
}

/// A feature map a cell reads: the stem's second conv (64 channels at rate 2), its third (128
/// channels at rate 4), or the output of a cell at a level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Feature {
    Stem1,
    Stem2,
    Cell(u8),
}

/// One part of the deployable network whose cost a table holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "part", rename_all = "snake_case", deny_unknown_fields)]
pub enum Component {
    /// The three stem convolutions.
    Stem,
    /// A cell at level `to` bringing H^{l-1} (`from`) to its channels: resized first when the
    /// cell is finer, then ReLU, 1x1 conv, BN.
    Prev { from: Feature, to: u8 },
    /// A cell at level `to` bringing H^{l-2} (`from`) to its channels: resized to H^{l-1}'s
    /// size (level `at`) when they differ, then ReLU, 1x1 conv, BN when the channels differ.
    PrevPrev { from: Feature, at: u8, to: u8 },
    /// One edge's op in a cell at `level`, with `stride` 2 on a cell input of a cell that moves
    /// coarser.
    Op { op: Primitive, level: u8, stride: u8 },
    /// The ASPP on the last cell at `level` (with the resize of its output to rate 4).
    Aspp { level: u8 },
    /// The decoder, on the low-level feature `low_level` (cell 0's output at level 0, or the
    /// stem's), to the logits at the input size.
    Decoder { low_level: Feature },
}

/// One component's costs. Latency is present only in a measured table.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Cost {
    pub macs: f64,
    pub params: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<f64>,
}

impl Cost {
    /// The value of `kind`, if this cost holds it.
    pub fn get(&self, kind: CostKind) -> Option<f64> {
        match kind {
            CostKind::Macs => Some(self.macs),
            CostKind::Params => Some(self.params),
            CostKind::Latency => self.latency_ms,
        }
    }
}

/// One row of a table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Entry {
    pub component: Component,
    #[serde(flatten)]
    pub cost: Cost,
}

/// How a latency table was measured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Measurement {
    /// `cpu` or `cuda:N`, and what it is.
    pub device: String,
    pub device_name: String,
    /// libtorch and tch versions, and the project's commit.
    pub versions: HashMap<String, String>,
    /// Timed runs per component after `warmup` untimed ones; the table holds their median.
    pub warmup: usize,
    pub repeats: usize,
    /// Threads of the CPU (intra-op) during the measurement.
    pub threads: i32,
    /// When (RFC 3339).
    pub measured: String,
}

/// The costs of every component of the deployable networks of one shape and input size.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CostTable {
    /// Input size of the deployment (one image).
    pub height: i64,
    pub width: i64,
    pub filter_multiplier: i64,
    pub blocks: usize,
    pub classes: i64,
    /// The stem's channels (tables written before they were recorded: the paper's).
    #[serde(default = "crate::network::paper_stem_channels")]
    pub stem_channels: [i64; 3],
    /// How the latencies were measured; `None` for a table of multiply-adds and parameters
    /// only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub measurement: Option<Measurement>,
    pub entries: Vec<Entry>,
}

/// Why a table or a cost could not be used.
#[derive(Debug, thiserror::Error)]
pub enum CostError {
    #[error("{path}: {message}")]
    Read { path: String, message: String },
    #[error("{origin}: the table has no {kind} for {component:?}")]
    Missing { origin: String, kind: &'static str, component: Component },
    #[error(
        "{origin}: the table was made for {what} = {table}, but {asked} is asked (make one with `search cost-table`)"
    )]
    Mismatch { origin: String, what: &'static str, table: String, asked: String },
    #[error("a latency cost needs a table measured by `search cost-table`")]
    NoTable,
}

impl CostTable {
    /// Reads a table written by [`CostTable::save`].
    pub fn load(path: &Path) -> Result<CostTable, CostError> {
        let read = |message: String| CostError::Read { path: path.display().to_string(), message };
        let text = seg::limits::read_text(path).map_err(|e| read(e.to_string()))?;
        serde_json::from_str(&text).map_err(|e| read(e.to_string()))
    }

    /// Writes the table as JSON, atomically.
    pub fn save(&self, path: &Path) -> Result<(), CostError> {
        let text = serde_json::to_string_pretty(self).expect("a cost table serialises");
        seg::atomic::write_atomic(path, text.as_bytes())
            .map_err(|e| CostError::Read { path: path.display().to_string(), message: e.to_string() })
    }

    /// Checks that the table describes networks of this shape at this size.
    pub fn check(&self, origin: &str, spec: &TableSpec) -> Result<(), CostError> {
        let TableSpec { height, width, filter_multiplier, blocks, classes, stem_channels } = *spec;
        let checks = [
            ("size (WIDTHxHEIGHT)", format!("{}x{}", self.width, self.height), format!("{width}x{height}")),
            ("filter_multiplier", self.filter_multiplier.to_string(), filter_multiplier.to_string()),
            ("blocks", self.blocks.to_string(), blocks.to_string()),
            ("classes", self.classes.to_string(), classes.to_string()),
            ("stem_channels", format!("{:?}", self.stem_channels), format!("{stem_channels:?}")),
        ];
        for (what, table, asked) in checks {
            if table != asked {
                return Err(CostError::Mismatch { origin: origin.into(), what, table, asked });
            }
        }
        Ok(())
    }

    /// The model of one cost kind over this table.
    pub fn model(&self, kind: CostKind, origin: &str) -> Result<CostModel, CostError> {
        let mut values = HashMap::new();
        for entry in &self.entries {
            let value = entry.cost.get(kind).ok_or_else(|| CostError::Missing {
                origin: origin.into(),
                kind: kind.name(),
                component: entry.component,
            })?;
            values.insert(entry.component, value);
        }
        let model = CostModel { kind, blocks: self.blocks, values, origin: origin.into() };
        // Every component a network of this shape can use must be present.
        for component in components() {
            model.value(component)?;
        }
        Ok(model)
    }
}

/// Every component a network of `blocks` blocks per cell can use, in a fixed order.
pub fn components() -> Vec<Component> {
    let levels = 0..NUM_LEVELS as u8;
    let mut all = vec![Component::Stem];
    // H^{l-1}: the stem's rate-4 feature into cell 0 (level 0 or 1); a cell's output into the
    // next cell one level finer, the same or one coarser.
    for to in 0..2 {
        all.push(Component::Prev { from: Feature::Stem2, to });
    }
    for from in levels.clone() {
        for to in levels.clone().filter(|&to| to.abs_diff(from) <= 1) {
            all.push(Component::Prev { from: Feature::Cell(from), to });
        }
    }
    // H^{l-2}: the stem's rate-2 feature into cell 0; the stem's rate-4 feature into cell 1;
    // cell l-2's output into cell l.
    for to in 0..2 {
        all.push(Component::PrevPrev { from: Feature::Stem1, at: 0, to });
    }
    for p0 in 0..2u8 {
        for p1 in (0..3u8).filter(|&p1| p1.abs_diff(p0) <= 1) {
            let component = Component::PrevPrev { from: Feature::Stem2, at: p0.min(p1), to: p1 };
            if !all.contains(&component) {
                all.push(component);
            }
        }
    }
    for a in levels.clone() {
        for b in levels.clone().filter(|&b| b.abs_diff(a) <= 1) {
            for c in levels.clone().filter(|&c| c.abs_diff(b) <= 1) {
                let component = Component::PrevPrev { from: Feature::Cell(a), at: b.min(c), to: c };
                if !all.contains(&component) {
                    all.push(component);
                }
            }
        }
    }
    for op in Primitive::ALL.into_iter().filter(|&op| op != Primitive::None) {
        for level in levels.clone() {
            all.push(Component::Op { op, level, stride: 1 });
            if level > 0 {
                all.push(Component::Op { op, level, stride: 2 });
            }
        }
    }
    for level in levels {
        all.push(Component::Aspp { level });
    }
    all.push(Component::Decoder { low_level: Feature::Stem2 });
    all.push(Component::Decoder { low_level: Feature::Cell(0) });
    all
}

/// The relaxed cell: per edge, the probability that decoding keeps it (`[edges]`) and the
/// distribution of its op over the eight primitives (`[edges, 8]`, 0 for `none`).
#[derive(Debug)]
pub struct RelaxedCell {
    pub keep: Tensor,
    pub ops: Tensor,
}

impl RelaxedCell {
    /// From raw α logits `[edges, 8]` and, when searched, raw PC-DARTS edge logits `[edges]`
    /// (module documentation). Differentiable in both.
    pub fn new(alpha: &Tensor, edge_logits: Option<&Tensor>, blocks: usize) -> RelaxedCell {
        let alpha = alpha.to_kind(Kind::Double);
        let device = alpha.device();
        // Softmax over the seven ops that are not `none` (column 0), which gets 0.
        let rows = alpha.size()[0];
        let others = alpha.narrow(1, 1, Primitive::COUNT as i64 - 1).softmax(-1, Kind::Double);
        let ops = Tensor::cat(&[Tensor::zeros([rows, 1], (Kind::Double, device)), others], 1);
        let keep: Vec<Tensor> = (0..blocks)
            .map(|block| {
                let n = block_inputs(block) as i64;
                let first = edge_index(block, 0) as i64;
                match edge_logits {
                    Some(logits) if n > 2 => {
                        logits.to_kind(Kind::Double).narrow(0, first, n).softmax(0, Kind::Double) * 2.0
                    }
                    _ => Tensor::full([n], 2.0 / n as f64, (Kind::Double, device)),
                }
            })
            .collect();
        RelaxedCell { keep: Tensor::cat(&keep, 0), ops }
    }

    /// The decided cell of a genotype: its edges kept with their ops, every other edge dropped.
    pub fn decided(genotype: &cell::Genotype) -> RelaxedCell {
        let blocks = genotype.num_blocks();
        let mut keep = vec![0.0f64; num_edges(blocks)];
        let mut ops = vec![0.0f64; num_edges(blocks) * Primitive::COUNT];
        for (block, edges) in genotype.blocks().iter().enumerate() {
            for edge in edges {
                let e = edge_index(block, edge.input);
                keep[e] += 1.0;
                ops[e * Primitive::COUNT + edge.op as usize] = 1.0;
            }
        }
        RelaxedCell {
            keep: Tensor::from_slice(&keep),
            ops: Tensor::from_slice(&ops).view([num_edges(blocks) as i64, Primitive::COUNT as i64]),
        }
    }
}

/// Expected and exact costs of one kind over a table's values.
#[derive(Debug, Clone)]
pub struct CostModel {
    kind: CostKind,
    blocks: usize,
    values: HashMap<Component, f64>,
    origin: String,
}

/// The expected cost and the per-node probabilities of the path it was taken over.
#[derive(Debug)]
pub struct Expected {
    /// The expected cost, a scalar (double) differentiable in the inputs.
    pub cost: Tensor,
    /// `[L, 4]`: the probability that the path passes through each node.
    pub nodes: Tensor,
}

impl CostModel {
    /// What it counts.
    pub fn kind(&self) -> CostKind {
        self.kind
    }

    /// The cost of one component.
    pub fn value(&self, component: Component) -> Result<f64, CostError> {
        self.values.get(&component).copied().ok_or_else(|| CostError::Missing {
            origin: self.origin.clone(),
            kind: self.kind.name(),
            component,
        })
    }

    fn v(&self, component: Component) -> f64 {
        self.value(component).expect("CostTable::model checked every component")
    }

    /// The ops' cost of a cell at `level` whose cell inputs are read at `stride`, under a
    /// relaxed cell: sum over the edges of keep * sum over the ops of P(op) * cost.
    fn cell_ops(&self, cell: &RelaxedCell, level: usize, stride: u8) -> Tensor {
        let per_op = |stride: u8| -> Tensor {
            let costs: Vec<f64> = Primitive::ALL
                .iter()
                .map(|&op| match op {
                    Primitive::None => 0.0,
                    op => self.v(Component::Op { op, level: level as u8, stride }),
                })
                .collect();
            Tensor::from_slice(&costs).to_device(cell.ops.device())
        };
        let edges = num_edges(self.blocks) as i64;
        // Edges from the two cell inputs (input 0 or 1) read at the cell's stride.
        let from_input: Vec<f64> =
            (0..self.blocks).flat_map(|b| (0..block_inputs(b)).map(|i| if i < 2 { 1.0 } else { 0.0 })).collect();
        let from_input = Tensor::from_slice(&from_input).to_device(cell.ops.device());
        let weighted = cell.ops.to_kind(Kind::Double) * cell.keep.to_kind(Kind::Double).view([edges, 1]);
        let strided = (&weighted * from_input.view([edges, 1])).sum_dim_intlist(0, false, Kind::Double);
        let inner = (&weighted * (-&from_input + 1.0).view([edges, 1])).sum_dim_intlist(0, false, Kind::Double);
        (strided * per_op(stride)).sum(Kind::Double) + (inner * per_op(1)).sum(Kind::Double)
    }

    /// The expected cost under a relaxed cell and normalised β `[L, 4, 3]` (Eq. 7): the dynamic
    /// programme of the module documentation.
    pub fn expected(&self, cell: &RelaxedCell, beta: &Tensor) -> Expected {
        let device = beta.device();
        let beta = beta.to_kind(Kind::Double);
        let layers = beta.size()[0] as usize;
        // T_l[i][j]: the probability of moving from level i of layer l - 1 to level j of layer l.
        let transitions: Vec<Tensor> = (0..layers)
            .map(|l| {
                let rows: Vec<Tensor> = (0..NUM_LEVELS)
                    .map(|i| {
                        let cols: Vec<Tensor> = (0..NUM_LEVELS)
                            .map(|j| {
                                // The move from level i to level j, d = j - i + 1, if there is one.
                                let d = (j + 1).checked_sub(i).filter(|&d| d < 3);
                                match d.map(|d| Transition::ALL[d]) {
                                    Some(t) if transition_valid(l, i, t) => {
                                        beta.get(l as i64).get(i as i64).get(t.index() as i64)
                                    }
                                    _ => Tensor::zeros([], (Kind::Double, device)),
                                }
                            })
                            .collect();
                        Tensor::stack(&cols, 0)
                    })
                    .collect();
                Tensor::stack(&rows, 0)
            })
            .collect();
        let table = |f: &dyn Fn(usize, usize) -> f64| -> Tensor {
            let values: Vec<f64> =
                (0..NUM_LEVELS).flat_map(|i| (0..NUM_LEVELS).map(move |j| (i, j))).map(|(i, j)| f(i, j)).collect();
            Tensor::from_slice(&values).view([NUM_LEVELS as i64, NUM_LEVELS as i64]).to_device(device)
        };
        let near = |i: usize, j: usize| i.abs_diff(j) <= 1;
        // The ops' cost per (level of l - 1, level of l): stride 2 when moving coarser.
        let ops: Vec<Tensor> = (0..NUM_LEVELS)
            .flat_map(|i| (0..NUM_LEVELS).map(move |j| (i, j)))
            .map(|(i, j)| match j.checked_sub(i) {
                Some(1) => self.cell_ops(cell, j, 2),
                _ if near(i, j) => self.cell_ops(cell, j, 1),
                _ => Tensor::zeros([], (Kind::Double, device)),
            })
            .collect();
        let ops = Tensor::stack(&ops, 0).view([NUM_LEVELS as i64, NUM_LEVELS as i64]);
        // The terms of the expected cost, summed at the end.
        let mut terms = vec![Tensor::from_slice(&[self.v(Component::Stem)]).to_device(device).sum(Kind::Double)];
        // The stem sits at level 0.
        let start = Tensor::from_slice(&[1.0f64, 0.0, 0.0, 0.0]).to_device(device);
        let mut q: Vec<Tensor> = Vec::with_capacity(layers);
        for l in 0..layers {
            let q_before = if l == 0 { start.shallow_clone() } else { q[l - 1].shallow_clone() };
            let joint = q_before.view([NUM_LEVELS as i64, 1]) * &transitions[l];
            // H^{l-1}'s preprocessing and the ops, per (level of l - 1, level of l).
            let from = |i: usize| if l == 0 { Feature::Stem2 } else { Feature::Cell(i as u8) };
            let prev = table(&|i, j| {
                if near(i, j) && node_exists(l.checked_sub(1), i) && node_exists(Some(l), j) {
                    self.v(Component::Prev { from: from(i), to: j as u8 })
                } else {
                    0.0
                }
            });
            terms.push((&joint * (prev + &ops)).sum(Kind::Double));
            // H^{l-2}'s preprocessing.
            terms.push(match l {
                0 => {
                    let pp = table(&|_, j| {
                        if node_exists(Some(0), j) {
                            self.v(Component::PrevPrev { from: Feature::Stem1, at: 0, to: j as u8 })
                        } else {
                            0.0
                        }
                    });
                    (&joint * pp).sum(Kind::Double)
                }
                1 => {
                    let pp = table(&|i, j| {
                        if near(i, j) && node_exists(Some(0), i) {
                            let at = i.min(j) as u8;
                            self.v(Component::PrevPrev { from: Feature::Stem2, at, to: j as u8 })
                        } else {
                            0.0
                        }
                    });
                    (&joint * pp).sum(Kind::Double)
                }
                _ => {
                    let n = NUM_LEVELS as i64;
                    let triple =
                        q[l - 2].view([n, 1, 1]) * transitions[l - 1].view([n, n, 1]) * transitions[l].view([1, n, n]);
                    let values: Vec<f64> = (0..NUM_LEVELS)
                        .flat_map(|a| (0..NUM_LEVELS).flat_map(move |b| (0..NUM_LEVELS).map(move |c| (a, b, c))))
                        .map(|(a, b, c)| {
                            if near(a, b) && near(b, c) {
                                self.v(Component::PrevPrev {
                                    from: Feature::Cell(a as u8),
                                    at: b.min(c) as u8,
                                    to: c as u8,
                                })
                            } else {
                                0.0
                            }
                        })
                        .collect();
                    let pp = Tensor::from_slice(&values)
                        .view([NUM_LEVELS as i64, NUM_LEVELS as i64, NUM_LEVELS as i64])
                        .to_device(device);
                    (triple * pp).sum(Kind::Double)
                }
            });
            q.push(joint.sum_dim_intlist(0, false, Kind::Double));
        }
        let last = &q[layers - 1];
        let aspp: Vec<f64> = (0..NUM_LEVELS).map(|j| self.v(Component::Aspp { level: j as u8 })).collect();
        terms.push((last * Tensor::from_slice(&aspp).to_device(device)).sum(Kind::Double));
        // The low-level feature is cell 0's output when the path starts at level 0.
        let starts_fine = q[0].get(0);
        let decoder_fine = self.v(Component::Decoder { low_level: Feature::Cell(0) });
        let decoder_coarse = self.v(Component::Decoder { low_level: Feature::Stem2 });
        terms.push(&starts_fine * decoder_fine + (-&starts_fine + 1.0) * decoder_coarse);
        Expected { cost: Tensor::stack(&terms, 0).sum(Kind::Double), nodes: Tensor::stack(&q, 0) }
    }

    /// The cost of the network decoded as `architecture` (exactly what `search summary` counts
    /// for multiply-adds and parameters).
    pub fn architecture_cost(&self, architecture: &Architecture) -> f64 {
        let levels: Vec<usize> = architecture.path.levels().iter().map(|&l| l as usize).collect();
        let cell = RelaxedCell::decided(&architecture.cell);
        self.path_cost(&levels, &cell)
    }

    /// The cost of one path (levels of the L cells) under a relaxed cell.
    pub fn path_cost(&self, levels: &[usize], cell: &RelaxedCell) -> f64 {
        let mut cost = self.v(Component::Stem);
        for (l, &j) in levels.iter().enumerate() {
            let i = if l == 0 { 0 } else { levels[l - 1] };
            let from = if l == 0 { Feature::Stem2 } else { Feature::Cell(i as u8) };
            cost += self.v(Component::Prev { from, to: j as u8 });
            let at = i.min(j) as u8;
            cost += match l {
                0 => self.v(Component::PrevPrev { from: Feature::Stem1, at: 0, to: j as u8 }),
                1 => self.v(Component::PrevPrev { from: Feature::Stem2, at, to: j as u8 }),
                _ => self.v(Component::PrevPrev { from: Feature::Cell(levels[l - 2] as u8), at, to: j as u8 }),
            };
            let stride = if j == i + 1 { 2 } else { 1 };
            cost += f64::try_from(self.cell_ops(cell, j, stride)).expect("a scalar");
        }
        cost += self.v(Component::Aspp { level: levels[levels.len() - 1] as u8 });
        let low_level = if levels[0] == 0 { Feature::Cell(0) } else { Feature::Stem2 };
        cost + self.v(Component::Decoder { low_level })
    }
}
