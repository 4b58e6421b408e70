//! Conv-BN-ReLU, the unit the heads are made of (DeepLabv3 §3.3, DeepLabv3+ §3.1).

use tch::{nn, nn::ModuleT, Tensor};

/// kxk convolution (no bias, "same" padding at `dilation`), BN with scale and offset, ReLU:
/// `[N, c_in, H, W] -> [N, c_out, H, W]`.
#[derive(Debug)]
pub struct ConvBnRelu {
    conv: nn::Conv2D,
    bn: nn::BatchNorm,
}

impl ConvBnRelu {
    /// Builds the unit under `p` (`p / "conv"`, `p / "bn"`).
    pub fn new(p: &nn::Path, c_in: i64, c_out: i64, kernel: i64, dilation: i64) -> ConvBnRelu {
        let config =
            nn::ConvConfig { padding: dilation * (kernel - 1) / 2, dilation, bias: false, ..Default::default() };
        ConvBnRelu {
            conv: nn::conv2d(p / "conv", c_in, c_out, kernel, config),
            bn: nn::batch_norm2d(p / "bn", c_out, Default::default()),
        }
    }
}

impl ModuleT for ConvBnRelu {
    fn forward_t(&self, xs: &Tensor, train: bool) -> Tensor {
        xs.apply(&self.conv).apply_t(&self.bn, train).relu()
    }
}

/// Bilinear resize with corners aligned, as DeepLab does: `[N, C, h, w] -> [N, C, H, W]`.
pub fn resize_bilinear(xs: &Tensor, height: i64, width: i64) -> Tensor {
    let (_, _, h, w) = xs.size4().expect("resize input is [N, C, H, W]");
    if (h, w) == (height, width) {
        xs.shallow_clone()
    } else {
        xs.upsample_bilinear2d([height, width], true, None, None)
    }
}
