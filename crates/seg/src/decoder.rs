//! The DeepLabv3+ decoder (L.-C. Chen et al., ECCV 2018, §3.1; Auto-DeepLab §5.2; facts §7): the
//! rate-4 feature reduced to 48 channels by a 1x1 conv, concatenated with the upsampled ASPP
//! output, two 3x3 convs, a 1x1 classifier (with bias), upsampled to the input size. Every
//! resize aligns corners, as DeepLab does.

use cell::Conv2d;
use serde::{Deserialize, Serialize};
use tch::{nn, nn::ModuleT, Tensor};

use crate::conv::{resize_bilinear, ConvBnRelu};

/// Shape of the decoder.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DecoderConfig {
    /// Channels of the rate-4 (low-level) feature.
    pub low_level_channels: i64,
    /// Channels the low-level feature is reduced to (48).
    pub low_level_reduced: i64,
    /// Channels of the ASPP output.
    pub aspp_channels: i64,
    /// Channels of the two 3x3 convs (256).
    pub channels: i64,
    /// Number of classes (19).
    pub classes: i64,
}

impl DecoderConfig {
    /// DeepLabv3+'s decoder: 48 reduced channels, 256-channel convs, on a 256-channel ASPP.
    pub fn deeplab(low_level_channels: i64, classes: i64) -> DecoderConfig {
        DecoderConfig { low_level_channels, low_level_reduced: 48, aspp_channels: 256, channels: 256, classes }
    }

    /// Builds the decoder under `p`.
    pub fn build(&self, p: &nn::Path) -> Decoder {
        Decoder {
            reduce: ConvBnRelu::new(&(p / "reduce"), self.low_level_channels, self.low_level_reduced, 1, 1),
            conv1: ConvBnRelu::new(&(p / "conv1"), self.aspp_channels + self.low_level_reduced, self.channels, 3, 1),
            conv2: ConvBnRelu::new(&(p / "conv2"), self.channels, self.channels, 3, 1),
            classifier: Conv2d::new(p / "classifier", self.channels, self.classes, 1, Default::default()),
        }
    }
}

/// The decoder. See the module documentation.
#[derive(Debug)]
pub struct Decoder {
    reduce: ConvBnRelu,
    conv1: ConvBnRelu,
    conv2: ConvBnRelu,
    classifier: Conv2d,
}

impl Decoder {
    /// `aspp`: `[N, aspp_channels, h, w]`; `low_level`: `[N, low_level_channels, H/4, W/4]`;
    /// `(height, width)`: the input size. Returns logits `[N, classes, height, width]`.
    pub fn forward_t(&self, aspp: &Tensor, low_level: &Tensor, height: i64, width: i64, train: bool) -> Tensor {
        let (_, _, lh, lw) = low_level.size4().expect("low-level feature is [N, C, H, W]");
        let low = self.reduce.forward_t(low_level, train);
        let high = resize_bilinear(aspp, lh, lw);
        let fused = self.conv2.forward_t(&self.conv1.forward_t(&Tensor::cat(&[high, low], 1), train), train);
        resize_bilinear(&fused.apply(&self.classifier), height, width)
    }
}
