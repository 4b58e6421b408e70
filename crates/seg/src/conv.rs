//! Conv-BN(-ReLU), the units the heads and stems are made of (DeepLabv3 §3.3, DeepLabv3+ §3.1).

use cell::Conv2d;
use tch::{nn, nn::ModuleT, Tensor};

/// kxk convolution (no bias, "same" padding at `dilation`) then BN with scale and offset:
/// `[N, c_in, H, W] -> [N, c_out, ceil(H / stride), ceil(W / stride)]` for odd kernels.
#[derive(Debug)]
pub struct ConvBn {
    conv: Conv2d,
    bn: nn::BatchNorm,
}

impl ConvBn {
    /// Builds the unit under `p` (`p / "conv"`, `p / "bn"`).
    pub fn new(p: &nn::Path, c_in: i64, c_out: i64, kernel: i64, stride: i64, dilation: i64) -> ConvBn {
        let padding = dilation * (kernel - 1) / 2;
        let config = nn::ConvConfig { stride, padding, dilation, bias: false, ..Default::default() };
        ConvBn {
            conv: Conv2d::new(p / "conv", c_in, c_out, kernel, config),
            bn: nn::batch_norm2d(p / "bn", c_out, Default::default()),
        }
    }
}

impl ModuleT for ConvBn {
    fn forward_t(&self, xs: &Tensor, train: bool) -> Tensor {
        cell::ops::grouped_batch_norm(&self.bn, &xs.apply(&self.conv), train, 1)
    }
}

/// [`ConvBn`] followed by ReLU.
#[derive(Debug)]
pub struct ConvBnRelu(ConvBn);

impl ConvBnRelu {
    /// Stride 1 at `dilation`: `[N, c_in, H, W] -> [N, c_out, H, W]`.
    pub fn new(p: &nn::Path, c_in: i64, c_out: i64, kernel: i64, dilation: i64) -> ConvBnRelu {
        ConvBnRelu(ConvBn::new(p, c_in, c_out, kernel, 1, dilation))
    }

    /// Stride `stride`, no dilation.
    pub fn strided(p: &nn::Path, c_in: i64, c_out: i64, kernel: i64, stride: i64) -> ConvBnRelu {
        ConvBnRelu(ConvBn::new(p, c_in, c_out, kernel, stride, 1))
    }
}

impl ModuleT for ConvBnRelu {
    fn forward_t(&self, xs: &Tensor, train: bool) -> Tensor {
        self.0.forward_t(xs, train).relu()
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
