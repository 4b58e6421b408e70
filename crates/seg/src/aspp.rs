//! Atrous Spatial Pyramid Pooling (DeepLabv3, L.-C. Chen et al., arXiv 1706.05587, §3.3) in the
//! two forms Auto-DeepLab uses (paper §3.2 and §5.2; facts §3, §7):
//!
//! - [`SearchAspp`]: the search head put on every level of the last layer: a 1x1 conv, one 3x3
//!   atrous conv with rate 96/s and image pooling, each branch B*F*s/4 channels, fused by a 1x1
//!   conv and classified by a 1x1 conv. The network sums the four heads' upsampled logits.
//! - [`Aspp`]: the deployed DeepLab head on the backbone's last feature: a 1x1 conv, three 3x3
//!   atrous convs and image pooling at 256 channels each, then a 1x1 projection of the concat.
//!
//! Image pooling at batch 1 in training mode: BN over one value per channel has no variance
//! (PyTorch raises "Expected more than 1 value per channel"). There the pooled branch's BN
//! uses its running statistics instead of the batch's; with more than one image it trains as
//! usual.

use cell::{Conv2d, Widths};
use serde::{Deserialize, Serialize};
use tch::{nn, nn::ModuleT, Tensor};

use crate::conv::{resize_bilinear, ConvBnRelu};

/// The image-pooling branch: global average, 1x1 conv, BN, ReLU, broadcast back to `[H, W]`.
#[derive(Debug)]
struct ImagePooling {
    unit: ConvBnRelu,
}

impl ImagePooling {
    fn forward_t(&self, xs: &Tensor, train: bool) -> Tensor {
        let (n, _, h, w) = xs.size4().expect("ASPP input is [N, C, H, W]");
        let pooled = xs.adaptive_avg_pool2d([1, 1]);
        // One value per channel cannot be batch-normalised: use the running statistics.
        let pooled = self.unit.forward_t(&pooled, train && n > 1);
        resize_bilinear(&pooled, h, w)
    }
}

/// The search head of one level.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SearchAsppConfig {
    /// Channels of the level's feature, B*F*s/4.
    pub in_channels: i64,
    /// Channels of each branch, B*F*s/4.
    pub channels: i64,
    /// Rate of the 3x3 atrous branch, 96/s (24, 12, 6, 3 for s = 4, 8, 16, 32).
    pub rate: i64,
    /// Number of classes.
    pub classes: i64,
}

impl SearchAsppConfig {
    /// The head of `level` (downsample rate s) for cells of `widths`: `in_channels` =
    /// `channels` = B*F*s/4, rate 96/s.
    pub fn for_level(widths: Widths, level: usize, classes: i64) -> SearchAsppConfig {
        let channels = widths.cell(level);
        SearchAsppConfig { in_channels: channels, channels, rate: 96 / Widths::rate(level), classes }
    }

    /// Builds the head under `p`.
    pub fn build(&self, p: &nn::Path) -> SearchAspp {
        let c = self.channels;
        SearchAspp {
            conv1x1: ConvBnRelu::new(&(p / "conv1x1"), self.in_channels, c, 1, 1),
            atrous: ConvBnRelu::new(&(p / "atrous"), self.in_channels, c, 3, self.rate),
            pooling: ImagePooling { unit: ConvBnRelu::new(&(p / "pooling"), self.in_channels, c, 1, 1) },
            fuse: ConvBnRelu::new(&(p / "fuse"), 3 * c, c, 1, 1),
            classifier: Conv2d::new(p / "classifier", c, self.classes, 1, Default::default()),
        }
    }
}

/// A search head: `[N, in_channels, h, w] -> [N, classes, h, w]` logits.
#[derive(Debug)]
pub struct SearchAspp {
    conv1x1: ConvBnRelu,
    atrous: ConvBnRelu,
    pooling: ImagePooling,
    fuse: ConvBnRelu,
    classifier: Conv2d,
}

impl ModuleT for SearchAspp {
    fn forward_t(&self, xs: &Tensor, train: bool) -> Tensor {
        let branches =
            [self.conv1x1.forward_t(xs, train), self.atrous.forward_t(xs, train), self.pooling.forward_t(xs, train)];
        self.fuse.forward_t(&Tensor::cat(&branches, 1), train).apply(&self.classifier)
    }
}

/// The deployed DeepLab ASPP.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AsppConfig {
    /// Channels of the backbone's last feature.
    pub in_channels: i64,
    /// Channels of every branch and of the output (256 in DeepLab).
    pub channels: i64,
    /// Rates of the 3x3 atrous branches (DeepLabv3: 6, 12, 18 at output stride 16; twice
    /// that at output stride 8).
    pub rates: Vec<i64>,
}

impl AsppConfig {
    /// DeepLab's head at 256 channels with the DeepLabv3 rates for `output_stride`.
    pub fn deeplab(in_channels: i64, output_stride: i64) -> AsppConfig {
        let rates = [6, 12, 18].iter().map(|r| (r * 16 / output_stride).max(1)).collect();
        AsppConfig { in_channels, channels: 256, rates }
    }

    /// Builds the head under `p`.
    pub fn build(&self, p: &nn::Path) -> Aspp {
        let c = self.channels;
        let atrous = self
            .rates
            .iter()
            .enumerate()
            .map(|(i, &rate)| ConvBnRelu::new(&(p / format!("atrous{i}")), self.in_channels, c, 3, rate))
            .collect::<Vec<_>>();
        let branches = 2 + atrous.len() as i64;
        Aspp {
            conv1x1: ConvBnRelu::new(&(p / "conv1x1"), self.in_channels, c, 1, 1),
            atrous,
            pooling: ImagePooling { unit: ConvBnRelu::new(&(p / "pooling"), self.in_channels, c, 1, 1) },
            project: ConvBnRelu::new(&(p / "project"), branches * c, c, 1, 1),
        }
    }
}

/// The deployed ASPP: `[N, in_channels, h, w] -> [N, channels, h, w]`.
#[derive(Debug)]
pub struct Aspp {
    conv1x1: ConvBnRelu,
    atrous: Vec<ConvBnRelu>,
    pooling: ImagePooling,
    project: ConvBnRelu,
}

impl ModuleT for Aspp {
    fn forward_t(&self, xs: &Tensor, train: bool) -> Tensor {
        let mut branches = vec![self.conv1x1.forward_t(xs, train)];
        branches.extend(self.atrous.iter().map(|a| a.forward_t(xs, train)));
        branches.push(self.pooling.forward_t(xs, train));
        self.project.forward_t(&Tensor::cat(&branches, 1), train)
    }
}
