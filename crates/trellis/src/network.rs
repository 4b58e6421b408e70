//! The search network (paper §3.2, Eq. 6, Fig. 1; §4.1.2): a stem to rate 4, L layers of
//! search cells over the four levels, and one search ASPP head per level.
//!
//! Node (l, j) = sum over its incoming transitions (from level i of layer l - 1) of
//! β[l][i][d] * Cell_{l,j}(H^{l-2} at level j, resample(H^{l-1} at level i)). The transitions
//! into a node share its cell (as in the most used public port); each transition has its own
//! resampling: from a finer level a stride-2 3x3 conv, from a coarser level bilinear
//! upsampling then a 1x1 conv, both to the node's B*F*s/4 channels (a 1x1 conv also adapts the
//! stem's channels on layer 0's same-level move). Where H^{l-2} at level j does not exist (the
//! first layers) the cell runs without it; layer 1 at level 0 takes the stem as H^{l-2}.
//!
//! Spatial sizes: the stem maps H to ceil(H/4) in two stride-2 steps, each level halves with
//! ceil, and upsampling targets the level's size exactly, so any crop works (odd ones such as
//! 321, and ones such as 96 whose sizes do not halve evenly to rate 32).

use cell::edges::num_edges;
use cell::{ReluConvBn, SearchCell, SearchCellConfig, Widths};
use seg::conv::resize_bilinear;
use seg::{SearchAspp, SearchAsppConfig};
use serde::{Deserialize, Serialize};
use tch::{nn, nn::ModuleT, Tensor};

use crate::arch::ArchWeights;
use crate::execution::Execution;
use crate::path::NUM_LEVELS;
use crate::recompute::{Recompute, RecomputePlan};
use crate::space::{max_level, node_exists, transition_valid, Transition};

/// Shape of the search network: what is searched. How it is executed (batched transitions,
/// recompute) is [`Execution`], which never changes the values, the variables or their names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SearchNetworkConfig {
    /// Layers L.
    pub layers: usize,
    /// Blocks per cell B.
    pub blocks: usize,
    /// Filter multiplier F: a block at downsample rate s has F*s/4 channels.
    pub filter_multiplier: i64,
    /// Channels of the three stem convs (the last one at rate 4).
    pub stem_channels: [i64; 3],
    /// Output classes.
    pub classes: i64,
    /// Partial channel connections (PC-DARTS, `cell::partial`): K, with only 1/K of every
    /// edge's input channels through its mixed op; 1 (the paper's search): all of them. K must
    /// divide F (every level's block channels are multiples of F).
    pub partial_channels: i64,
    /// PC-DARTS edge normalisation (`trellis::arch`): a learnable weight per cell edge in the
    /// architecture store, the edges into each block weighted by their softmax, in the forward
    /// pass and in decoding. Off in the paper's search.
    pub edge_normalization: bool,
}

/// The stem of the paper's networks (facts §3): three 3x3 convolutions to 64, 64 and 128
/// channels, the first and the last with stride 2. Every network (search, deployed, cost table)
/// takes its stem from its model config, with this default.
pub const PAPER_STEM_CHANNELS: [i64; 3] = [64, 64, 128];

/// serde's default for configs and files written before the stem was configurable.
pub fn paper_stem_channels() -> [i64; 3] {
    PAPER_STEM_CHANNELS
}

impl Default for SearchNetworkConfig {
    fn default() -> Self {
        // The paper's search (facts §3, §4): L = 12, B = 5, F = 8, 19 classes.
        SearchNetworkConfig {
            layers: 12,
            blocks: 5,
            filter_multiplier: 8,
            stem_channels: PAPER_STEM_CHANNELS,
            classes: 19,
            partial_channels: 1,
            edge_normalization: false,
        }
    }
}

impl SearchNetworkConfig {
    /// The channel counts of this network's cells.
    pub fn widths(&self) -> Widths {
        Widths::new(self.filter_multiplier, self.blocks)
    }

    /// Checks the values a file or flag can get wrong; `Err((key, message))` names the key.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        let at_least_one = [
            ("layers", self.layers as i64),
            ("blocks", self.blocks as i64),
            ("filter_multiplier", self.filter_multiplier),
            ("partial_channels", self.partial_channels),
        ];
        for (key, value) in at_least_one {
            if value < 1 {
                return Err((key, format!("must be at least 1, got {value}")));
            }
        }
        if self.stem_channels.iter().any(|&c| c < 1) {
            return Err(("stem_channels", format!("every entry must be at least 1, got {:?}", self.stem_channels)));
        }
        if self.classes < 2 {
            return Err(("classes", format!("must be at least 2, got {}", self.classes)));
        }
        if self.filter_multiplier % self.partial_channels != 0 {
            return Err((
                "partial_channels",
                format!(
                    "{} must divide filter_multiplier = {} (the channels of every level are multiples of it)",
                    self.partial_channels, self.filter_multiplier
                ),
            ));
        }
        Ok(())
    }

    /// Builds the network's weights under `p` (a path of the weight VarStore), with the
    /// default [`Execution`]. Panics on a config that [`SearchNetworkConfig::validate`] rejects.
    pub fn build(&self, p: &nn::Path) -> SearchNetwork {
        if let Err((key, message)) = self.validate() {
            panic!("search network config key `{key}`: {message}");
        }
        let widths = self.widths();
        let [c0, c1, c2] = self.stem_channels;
        let stem = Stem {
            convs: [
                seg::conv::ConvBnRelu::strided(&(p / "stem0"), 3, c0, 3, 2),
                seg::conv::ConvBnRelu::strided(&(p / "stem1"), c0, c1, 3, 1),
                seg::conv::ConvBnRelu::strided(&(p / "stem2"), c1, c2, 3, 2),
            ],
        };
        // Channels of H^{l-1} (`prev`) and H^{l-2} (`prev_prev`) per level, None where absent.
        let mut prev: [Option<i64>; NUM_LEVELS] = [Some(c2), None, None, None];
        let mut prev_prev: [Option<i64>; NUM_LEVELS] = [None; NUM_LEVELS];
        let mut layers = Vec::with_capacity(self.layers);
        for l in 0..self.layers {
            let lp = p / format!("layer{l}");
            let nodes = (0..=max_level(l))
                .map(|j| {
                    let np = &lp / format!("level{j}");
                    let channels = widths.cell(j);
                    let cell = SearchCellConfig {
                        blocks: self.blocks,
                        channels: widths.block(j),
                        prev_prev_channels: prev_prev[j],
                        prev_channels: channels,
                        partial_channels: self.partial_channels,
                    }
                    .build(&(&np / "cell"));
                    let inputs = Transition::ALL
                        .into_iter()
                        .filter_map(|t| {
                            let i = t.source(j)?;
                            if !transition_valid(l, i, t) {
                                return None;
                            }
                            let c_in = prev[i].expect("valid transitions start at existing nodes");
                            let rp = &np / format!("from{i}");
                            let resample = match t {
                                Transition::Same if c_in == channels => Resample::Identity,
                                Transition::Same => {
                                    Resample::Project(ReluConvBn::new(&rp, c_in, channels, 1, 1, false))
                                }
                                Transition::Coarser => {
                                    Resample::Down(ReluConvBn::new(&rp, c_in, channels, 3, 2, false))
                                }
                                Transition::Finer => Resample::Up(ReluConvBn::new(&rp, c_in, channels, 1, 1, false)),
                            };
                            Some(Input { source: i, transition: t, resample })
                        })
                        .collect();
                    Node { level: j, cell, inputs }
                })
                .collect();
            layers.push(nodes);
            prev_prev = prev;
            prev = [0, 1, 2, 3].map(|j| node_exists(Some(l), j).then(|| widths.cell(j)));
        }
        let heads = (0..NUM_LEVELS)
            .filter(|&j| node_exists(Some(self.layers - 1), j))
            .map(|j| SearchAsppConfig::for_level(widths, j, self.classes).build(&(p / format!("aspp{j}"))))
            .collect();
        SearchNetwork { config: self.clone(), execution: Execution::default(), stem, layers, heads }
    }
}

/// The stem: three conv-BN-ReLU, stride 2 in the first and third: `[N, 3, H, W]` to
/// `[N, C, ceil(H/4), ceil(W/4)]`.
#[derive(Debug)]
struct Stem {
    convs: [seg::conv::ConvBnRelu; 3],
}

/// How H^{l-1} from the source level reaches a node.
#[derive(Debug)]
enum Resample {
    Identity,
    Project(ReluConvBn),
    Down(ReluConvBn),
    Up(ReluConvBn),
}

#[derive(Debug)]
struct Input {
    source: usize,
    transition: Transition,
    resample: Resample,
}

#[derive(Debug)]
struct Node {
    level: usize,
    cell: SearchCell,
    inputs: Vec<Input>,
}

/// The search network's weights. See the module documentation.
#[derive(Debug)]
pub struct SearchNetwork {
    config: SearchNetworkConfig,
    execution: Execution,
    stem: Stem,
    layers: Vec<Vec<Node>>,
    heads: Vec<SearchAspp>,
}

/// Bytes a plain backward pass keeps per channel, pixel and image of each edge of a fused
/// bundle (fp32): calibrated against the peak resident memory `search bench` measures with and
/// without recompute (docs/performance.md).
pub const ACTIVATION_BYTES_PER_EDGE_ELEMENT: f64 = 96.0;

/// With partial channel connections, bytes kept per channel, pixel and image of each edge for
/// the channels that bypass the ops (the concatenation and shuffle of the two parts):
/// calibrated like [`ACTIVATION_BYTES_PER_EDGE_ELEMENT`], with `--partial-channels 4`.
pub const ACTIVATION_BYTES_PER_BYPASS_ELEMENT: f64 = 14.0;

/// The outputs of one layer at each level (None where the level has no node).
pub type Levels = [Option<Tensor>; NUM_LEVELS];

/// Spatial size of each level for an input of `height x width`: ceil-halving from rate 2.
pub fn level_sizes(height: i64, width: i64) -> [(i64, i64); NUM_LEVELS] {
    let half = |n: i64| (n - 1) / 2 + 1;
    let mut size = (half(half(height)), half(half(width)));
    let mut sizes = [(0, 0); NUM_LEVELS];
    for s in sizes.iter_mut() {
        *s = size;
        size = (half(size.0), half(size.1));
    }
    sizes
}

impl SearchNetwork {
    /// The configuration it was built from.
    pub fn config(&self) -> &SearchNetworkConfig {
        &self.config
    }

    /// How it runs.
    pub fn execution(&self) -> &Execution {
        &self.execution
    }

    /// Changes how it runs; values, variables and names stay the same.
    pub fn set_execution(&mut self, execution: Execution) {
        self.execution = execution;
    }

    /// Layers L.
    pub fn num_layers(&self) -> usize {
        self.layers.len()
    }

    /// The backbone: `images` `[N, 3, H, W]` to the last layer's features at every level it
    /// has (`[N, B*F*s/4, H_s, W_s]`, level order).
    pub fn backbone(&self, images: &Tensor, arch: &ArchWeights, train: bool) -> Vec<Tensor> {
        let (_, _, h, w) = images.size4().expect("images are [N, 3, H, W]");
        let sizes = level_sizes(h, w);
        let stem = self.stem(images, train);
        let mut prev: Levels = [Some(stem), None, None, None];
        let mut prev_prev: Levels = [None, None, None, None];
        for l in 0..self.layers.len() {
            let current = self.layer(l, &prev, &prev_prev, arch, &sizes, train);
            prev_prev = std::mem::replace(&mut prev, current);
        }
        prev.into_iter().flatten().collect()
    }

    /// The stem: `[N, 3, H, W]` to `[N, C, ceil(H/4), ceil(W/4)]`, layer 0's H^{l-1} at level 0.
    pub fn stem(&self, images: &Tensor, train: bool) -> Tensor {
        self.stem.convs.iter().fold(images.shallow_clone(), |x, conv| conv.forward_t(&x, train))
    }

    /// Layer `l` (Eq. 6) from the outputs of the two layers before it (the stem is layer 0's
    /// `prev` at level 0); `sizes` from [`level_sizes`] of the input.
    pub fn layer(
        &self,
        l: usize,
        prev: &Levels,
        prev_prev: &Levels,
        arch: &ArchWeights,
        sizes: &[(i64, i64); NUM_LEVELS],
        train: bool,
    ) -> Levels {
        let beta = arch.beta.get(l as i64);
        let mut current: Levels = [None, None, None, None];
        for node in &self.layers[l] {
            let (th, tw) = sizes[node.level];
            let resampled: Vec<Tensor> = node
                .inputs
                .iter()
                .map(|input| {
                    let x = prev[input.source].as_ref().expect("sources exist");
                    match &input.resample {
                        Resample::Identity => x.shallow_clone(),
                        Resample::Project(conv) | Resample::Down(conv) => conv.forward_t(x, train),
                        Resample::Up(conv) => conv.forward_t(&resize_bilinear(x, th, tw), train),
                    }
                })
                .collect();
            let weights: Vec<Tensor> =
                node.inputs.iter().map(|i| beta.get(i.source as i64).get(i.transition.index() as i64)).collect();
            let prev_prev = prev_prev[node.level].as_ref();
            let output = if self.execution.batched_transitions {
                let outputs = node.cell.forward_transitions(prev_prev, &resampled, &arch.cell, train);
                let (total, c, h, w) = outputs.size4().expect("[T * N, C, H, W]");
                let t = resampled.len() as i64;
                let weights = Tensor::stack(&weights, 0).view([t, 1, 1, 1, 1]);
                (outputs.view([t, total / t, c, h, w]) * weights).sum_dim_intlist(0, false, outputs.kind())
            } else {
                resampled
                    .iter()
                    .zip(&weights)
                    .map(|(x, w)| node.cell.forward_t(prev_prev, x, &arch.cell, train) * w)
                    .reduce(|a, b| a + b)
                    .expect("every node has an input")
            };
            current[node.level] = Some(output);
        }
        current
    }

    /// Estimated bytes of the activations each layer keeps for a plain backward pass, for a
    /// batch of `n` images of `h x w` in fp32: every fused edge bundle keeps about
    /// [`ACTIVATION_BYTES_PER_EDGE_ELEMENT`] bytes per channel, pixel and image of each edge it
    /// computes (once per transition into the node; the H^{l-2} edges once per node), divided
    /// by K with partial channels, plus [`ACTIVATION_BYTES_PER_BYPASS_ELEMENT`] for the
    /// channels that bypass the ops.
    pub fn activation_bytes(&self, n: i64, h: i64, w: i64) -> Vec<f64> {
        let sizes = level_sizes(h, w);
        let blocks = self.config.blocks;
        let own_edges = (num_edges(blocks) - blocks) as f64;
        self.layers
            .iter()
            .map(|nodes| {
                nodes
                    .iter()
                    .map(|node| {
                        let (hj, wj) = sizes[node.level];
                        let transitions = node.inputs.len() as f64;
                        let prev_prev_edges = if node.cell.config().prev_prev_channels.is_some() { blocks } else { 0 };
                        let edges = transitions * own_edges + prev_prev_edges as f64;
                        let elements = (n * self.config.widths().block(node.level) * hj * wj) as f64;
                        // With partial channels the ops keep activations of C / K channels, the
                        // join of the two parts some of all C.
                        let k = self.config.partial_channels as f64;
                        edges
                            * elements
                            * (ACTIVATION_BYTES_PER_EDGE_ELEMENT / k
                                + ACTIVATION_BYTES_PER_BYPASS_ELEMENT * (1.0 - 1.0 / k))
                    })
                    .sum()
            })
            .collect()
    }

    /// Which layers the search steps recompute for a batch of `n` images of `h x w`, by the
    /// configured policy: `None` for the plain backward pass.
    pub fn recompute_plan(&self, n: i64, h: i64, w: i64) -> Option<RecomputePlan> {
        match self.execution.recompute {
            Recompute::Never => None,
            Recompute::Always => Some(RecomputePlan::all(self.layers.len())),
            Recompute::Auto => RecomputePlan::within_budget(
                &self.activation_bytes(n, h, w),
                self.execution.budget_mib() as f64 * (1u64 << 20) as f64,
            ),
        }
    }

    /// Logits `[N, classes, H, W]`: every level's search head, upsampled to the input size and
    /// summed.
    pub fn forward_t(&self, images: &Tensor, arch: &ArchWeights, train: bool) -> Tensor {
        let (_, _, h, w) = images.size4().expect("images are [N, 3, H, W]");
        self.heads_logits(&self.backbone(images, arch, train), h, w, train)
    }

    /// The search heads on the last layer's `features` (level order, as [`Self::backbone`]
    /// gives them): each level's logits upsampled to `h x w` and summed, `[N, classes, h, w]`
    /// in fp32 (double for a network in double).
    pub fn heads_logits(&self, features: &[Tensor], h: i64, w: i64, train: bool) -> Tensor {
        let logits = features
            .iter()
            .zip(&self.heads)
            .map(|(f, head)| resize_bilinear(&head.forward_t(f, train), h, w))
            .reduce(|a, b| a + b)
            .expect("at least one level");
        logits.to_kind(cell::alpha::float_or_double(logits.kind()))
    }
}
