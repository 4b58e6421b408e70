//! 2-D convolution that can count its multiply-adds, so that `search summary` reports a
//! network's cost from the network itself rather than from a second description of it.
//!
//! Counting is per image: inside [`count_multiply_adds`], every convolution adds
//! `C_out * H_out * W_out * (C_in / groups) * k_h * k_w`. Running the forward pass on an empty
//! batch (`[0, 3, H, W]`) propagates shapes without computing anything.

use std::cell::Cell;

use tch::{nn, nn::Module, Tensor};

thread_local! {
    static MULTIPLY_ADDS: Cell<Option<u64>> = const { Cell::new(None) };
}

/// Runs `f` and returns its result with the multiply-adds per image of the convolutions it
/// ran on this thread.
pub fn count_multiply_adds<R>(f: impl FnOnce() -> R) -> (R, u64) {
    let outer = MULTIPLY_ADDS.with(|c| c.replace(Some(0)));
    let result = f();
    let counted = MULTIPLY_ADDS.with(|c| c.replace(outer)).unwrap_or(0);
    if let Some(outer) = outer {
        MULTIPLY_ADDS.with(|c| c.set(Some(outer + counted)));
    }
    (result, counted)
}

/// A convolution: `[N, C_in, H, W] -> [N, C_out, H', W']`.
#[derive(Debug)]
pub struct Conv2d {
    inner: nn::Conv2D,
}

impl Conv2d {
    /// Builds the convolution under `p` (variables `weight` and, with `config.bias`, `bias`).
    pub fn new(p: nn::Path, c_in: i64, c_out: i64, kernel: i64, config: nn::ConvConfig) -> Conv2d {
        Conv2d { inner: nn::conv2d(p, c_in, c_out, kernel, config) }
    }

    /// The weight `[C_out, C_in / groups, k, k]` (shares storage with the variable).
    pub fn weight(&self) -> Tensor {
        self.inner.ws.shallow_clone()
    }
}

impl Module for Conv2d {
    fn forward(&self, xs: &Tensor) -> Tensor {
        let ys = self.inner.forward(xs);
        MULTIPLY_ADDS.with(|counter| {
            if let Some(count) = counter.get() {
                let out: i64 = ys.size()[1..].iter().product();
                let per_output: i64 = self.inner.ws.size()[1..].iter().product();
                counter.set(Some(count + (out * per_output) as u64));
            }
        });
        ys
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{Device, Kind};

    #[test]
    fn counts_per_image_even_on_an_empty_batch() {
        let vs = nn::VarStore::new(Device::Cpu);
        let config = nn::ConvConfig { stride: 2, padding: 1, groups: 2, ..Default::default() };
        let conv = Conv2d::new(vs.root(), 4, 6, 3, config);
        let (y, macs) = count_multiply_adds(|| conv.forward(&Tensor::zeros([0, 4, 9, 9], (Kind::Float, Device::Cpu))));
        assert_eq!(y.size(), [0, 6, 5, 5]);
        assert_eq!(macs, 6 * 5 * 5 * 2 * 9);
        // Outside a counting scope nothing is recorded; nested scopes add up.
        let ((_, inner), outer) = count_multiply_adds(|| {
            let _ = conv.forward(&Tensor::zeros([1, 4, 9, 9], (Kind::Float, Device::Cpu)));
            count_multiply_adds(|| conv.forward(&Tensor::zeros([1, 4, 9, 9], (Kind::Float, Device::Cpu))))
        });
        assert_eq!((inner, outer), (macs, 2 * macs));
    }
}
