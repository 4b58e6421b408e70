//! The deployable network decoded from an [`Architecture`] (paper §4.3, §5.2, Fig. 3; official
//! TF `nas_network.py` `_build_nas_base` and `hnasnet`; facts §6, §7).
//!
//! - Stem: 3x3 conv 64 stride 2, BN, ReLU; 3x3 conv 64, BN; ReLU; 3x3 conv 128 stride 2, BN.
//!   The second conv's BN output (rate 2, before its ReLU) is cell 0's H^{l-2}; the third's
//!   (rate 4, no ReLU) is its H^{l-1}.
//! - One [`FixedCell`] per layer at the path's level, F * 2^level channels per block. Moving one
//!   level coarser uses stride 2 in the ops on the cell inputs; moving one level finer resizes
//!   H^{l-1} bilinearly to the finer level's size before the cell; each cell resizes H^{l-2} to
//!   H^{l-1}'s size (all resizes align corners, as DeepLab).
//! - ReLU on the last cell's output, the deployed ASPP (256 channels, DeepLabv3 rates for the
//!   path's output stride) and the DeepLabv3+ decoder on the rate-4 low-level feature: the
//!   output of the last cell of the path's first run at level 0 (cell 2 for the paper's path,
//!   as in TF), or the stem's output when the path starts at level 1.
//!
//! Level sizes follow [`crate::network::level_sizes`], which equal DeepLab's `scale_dimension`
//! sizes for crops of the form 2^k * n + 1 and stay consistent for any other size.

use cell::{FixedCell, FixedCellConfig, Widths};
use seg::conv::{resize_bilinear, ConvBn};
use seg::{Aspp, AsppConfig, Decoder, DecoderConfig};
use serde::{Deserialize, Serialize};
use tch::{nn, nn::ModuleT, Tensor};

use crate::architecture::Architecture;
use crate::network::level_sizes;
use crate::space::downsample;

/// Everything that shapes the deployable network.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DecodedNetworkConfig {
    /// The decoded cell and path.
    pub architecture: Architecture,
    /// Filter multiplier F (20 / 32 / 48 for Auto-DeepLab-S / M / L).
    pub filter_multiplier: i64,
    /// Output classes (19 for Cityscapes).
    pub classes: i64,
    /// Channels of the three stem convolutions (the paper's 64, 64, 128 by default; the
    /// second's output is H^{-2} of the first cell, the third's H^{-1}).
    #[serde(default = "crate::network::paper_stem_channels")]
    pub stem_channels: [i64; 3],
}

/// Where the parameters of a deployable network sit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ParameterCount {
    pub backbone: i64,
    pub aspp: i64,
    pub decoder: i64,
    pub total: i64,
}

impl DecodedNetworkConfig {
    /// Index of the cell whose output is the rate-4 low-level feature, `None` for the stem.
    pub fn low_level_cell(&self) -> Option<usize> {
        let levels = self.architecture.path.levels();
        levels.iter().take_while(|&&level| level == 0).count().checked_sub(1)
    }

    /// Builds the network under `p`, with sub-paths `backbone`, `aspp` and `decoder`.
    pub fn build(&self, p: &nn::Path) -> DecodedNetwork {
        let genotype = &self.architecture.cell;
        let widths = Widths::new(self.filter_multiplier, genotype.num_blocks());
        let bp = p / "backbone";
        let [c0, c1, c2] = self.stem_channels;
        let stem = [
            ConvBn::new(&(&bp / "stem0"), 3, c0, 3, 2, 1),
            ConvBn::new(&(&bp / "stem1"), c0, c1, 3, 1, 1),
            ConvBn::new(&(&bp / "stem2"), c1, c2, 3, 2, 1),
        ];
        let levels = self.architecture.path.levels();
        // Channels of H^{l-2} and H^{l-1} as the cells go.
        let (mut prev_prev, mut prev) = (c1, c2);
        let mut previous_level = 0u8;
        let cells: Vec<FixedCell> = levels
            .iter()
            .enumerate()
            .map(|(l, &level)| {
                let stride = if level == previous_level + 1 { 2 } else { 1 };
                let channels = widths.block(level as usize);
                let cell = FixedCellConfig {
                    genotype: genotype.clone(),
                    channels,
                    prev_prev_channels: prev_prev,
                    prev_channels: prev,
                    stride,
                }
                .build(&(&bp / format!("cell{l}")));
                (prev_prev, prev) = (prev, widths.cell(level as usize));
                previous_level = level;
                cell
            })
            .collect();
        let last_level = *levels.last().expect("a path has layers") as usize;
        let low_level_channels = match self.low_level_cell() {
            Some(_) => widths.cell(0),
            None => c2,
        };
        let aspp = AsppConfig::deeplab(widths.cell(last_level), downsample(last_level)).build(&(p / "aspp"));
        let decoder = DecoderConfig::deeplab(low_level_channels, self.classes).build(&(p / "decoder"));
        DecodedNetwork { config: self.clone(), stem, cells, aspp, decoder }
    }
}

/// The deployable network. See the module documentation.
#[derive(Debug)]
pub struct DecodedNetwork {
    config: DecodedNetworkConfig,
    stem: [ConvBn; 3],
    cells: Vec<FixedCell>,
    aspp: Aspp,
    decoder: Decoder,
}

impl DecodedNetwork {
    /// The configuration it was built from.
    pub fn config(&self) -> &DecodedNetworkConfig {
        &self.config
    }

    /// The backbone: `images` `[N, 3, H, W]` to (the last cell's output after ReLU at the
    /// path's last level, the rate-4 low-level feature).
    pub fn backbone(&self, images: &Tensor, train: bool) -> (Tensor, Tensor) {
        self.backbone_drop_path(images, train, DropPath::OFF)
    }

    fn backbone_drop_path(&self, images: &Tensor, train: bool, drop_path: DropPath) -> (Tensor, Tensor) {
        let (_, _, h, w) = images.size4().expect("images are [N, 3, H, W]");
        let sizes = level_sizes(h, w);
        let x = self.stem[0].forward_t(images, train).relu();
        let mut prev_prev = self.stem[1].forward_t(&x, train);
        let mut prev = self.stem[2].forward_t(&prev_prev.relu(), train);
        let low_level_cell = self.config.low_level_cell();
        let mut low_level = low_level_cell.is_none().then(|| prev.shallow_clone());
        let mut previous_level = 0u8;
        for (l, (cell, &level)) in self.cells.iter().zip(self.config.architecture.path.levels()).enumerate() {
            if level + 1 == previous_level {
                let (th, tw) = sizes[level as usize];
                prev = resize_bilinear(&prev, th, tw);
            }
            let output = cell.forward_drop_path(&prev_prev, &prev, train, drop_path.keep_prob(l, self.cells.len()));
            if Some(l) == low_level_cell {
                low_level = Some(output.shallow_clone());
            }
            prev_prev = std::mem::replace(&mut prev, output);
            previous_level = level;
        }
        (prev.relu(), low_level.expect("the low-level feature is set"))
    }

    /// Logits `[N, classes, H, W]`.
    pub fn forward_t(&self, images: &Tensor, train: bool) -> Tensor {
        self.forward_drop_path(images, train, DropPath::OFF)
    }

    /// Logits `[N, classes, H, W]` with scheduled drop path in the cells (training only).
    pub fn forward_drop_path(&self, images: &Tensor, train: bool, drop_path: DropPath) -> Tensor {
        let (_, _, h, w) = images.size4().expect("images are [N, 3, H, W]");
        let (features, low_level) = self.backbone_drop_path(images, train, drop_path);
        let aspp = self.aspp.forward_t(&features, train);
        self.decoder.forward_t(&aspp, &low_level, h, w, train)
    }
}

/// Scheduled drop path (paper §5.2; Zoph et al., CVPR 2018), as the official code schedules it:
/// cell l of L keeps a path with `1 - (l + 1) / L * (1 - keep_prob)`, and that drop rate grows
/// linearly with training progress from 0 to its full value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DropPath {
    /// Keep probability of the last cell at the end of training (1 = no drop path).
    pub keep_prob: f64,
    /// Fraction of training done, 0..=1.
    pub progress: f64,
}

impl DropPath {
    /// No drop path.
    pub const OFF: DropPath = DropPath { keep_prob: 1.0, progress: 0.0 };

    /// Keep probability of cell `cell` of `cells` at the current progress.
    pub fn keep_prob(&self, cell: usize, cells: usize) -> f64 {
        let layer_keep = 1.0 - (cell + 1) as f64 / cells as f64 * (1.0 - self.keep_prob);
        1.0 - self.progress.clamp(0.0, 1.0) * (1.0 - layer_keep)
    }
}

/// Parameters of a network built with [`DecodedNetworkConfig::build`] under `vs.root()`.
pub fn count_parameters(vs: &nn::VarStore) -> ParameterCount {
    let mut count = ParameterCount { backbone: 0, aspp: 0, decoder: 0, total: 0 };
    for (name, t) in vs.variables() {
        if !t.requires_grad() {
            continue;
        }
        let n = t.numel() as i64;
        match name.split('.').next() {
            Some("backbone") => count.backbone += n,
            Some("aspp") => count.aspp += n,
            Some("decoder") => count.decoder += n,
            _ => {}
        }
        count.total += n;
    }
    count
}
