//! Dynamic loss scaling for fp16 autocast (the rule of PyTorch's `GradScaler`, Micikevicius et
//! al., "Mixed Precision Training", ICLR 2018, §3.2). Under fp16 autocast the backward pass
//! runs in half precision, where gradients below 2^-24 flush to zero: the loss is multiplied
//! by a large power of two before the backward pass, and the gradients divided by it before
//! the update (exactly, being a power of two). A step whose gradients overflowed (inf or NaN)
//! is skipped and the scale halved; after `GROWTH_INTERVAL` good steps in a row it doubles.
//!
//! Only the weight updates of float16 autocast runs on CUDA are scaled (`autocast` with
//! `autocast_dtype = "float16"`, `crate::train::precision`); α and β are trained in fp32. The scaler's
//! state is part of the checkpoint, so a resumed run scales as the uninterrupted one.

use serde::{Deserialize, Serialize};
use tch::{Kind, Tensor};

use crate::train::precision::Precision;

/// The first scale, 2^16 as PyTorch's.
pub const INITIAL_SCALE: f64 = 65536.0;
/// Good steps in a row before the scale doubles, as PyTorch's.
pub const GROWTH_INTERVAL: u64 = 2000;
/// The smallest scale: below it the gradients overflow at any scale and the run has a real
/// numerical problem, so [`LossScaler::update`] reports it rather than scaling on.
pub const MIN_SCALE: f64 = 1.0 / 65536.0;

/// The scale and how many good steps have passed since it last changed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LossScaler {
    /// The factor the loss is multiplied by (a power of two).
    pub scale: f64,
    /// Steps with finite gradients since the scale last changed.
    pub good_steps: u64,
    /// Steps skipped so far because their gradients overflowed.
    pub skipped_steps: u64,
}

impl Default for LossScaler {
    fn default() -> Self {
        LossScaler { scale: INITIAL_SCALE, good_steps: 0, skipped_steps: 0 }
    }
}

/// Why scaling cannot go on.
#[derive(Debug, thiserror::Error)]
#[error(
    "fp16 loss scaling: the gradients overflow even at scale {scale:e} (inf or NaN in the weights' gradients \
     for {skipped} steps); the run diverged in half precision: turn autocast off, or lower the learning rate"
)]
pub struct ScaleCollapsed {
    pub scale: f64,
    pub skipped: u64,
}

impl LossScaler {
    /// A scaler for a run of `precision`: only float16 autocast needs one (fp32 and bfloat16
    /// gradients have fp32's range).
    pub fn for_run(precision: Precision) -> Option<LossScaler> {
        precision.scales_the_loss().then(LossScaler::default)
    }

    /// The factor a loss is multiplied by before its backward pass: the scale, or 1 without a
    /// scaler.
    pub fn factor(scaler: Option<&LossScaler>) -> f64 {
        scaler.map_or(1.0, |s| s.scale)
    }

    /// Adds the scaler's state to a metrics row: `fp16_scale` and `fp16_skipped_steps`.
    pub fn log_into(&self, fields: &mut serde_json::Value) {
        fields["fp16_scale"] = serde_json::json!(self.scale);
        fields["fp16_skipped_steps"] = serde_json::json!(self.skipped_steps);
    }

    /// Divides every gradient by the scale, in place; returns whether all of them are finite
    /// (one device synchronisation for all the tensors).
    pub fn unscale(&self, grads: &mut [Option<Tensor>]) -> bool {
        tch::no_grad(|| {
            let inverse = 1.0 / self.scale;
            let finite: Vec<Tensor> = grads
                .iter_mut()
                .flatten()
                .map(|g| {
                    let _ = g.g_mul_scalar_(inverse);
                    g.isfinite().all().to_kind(Kind::Float)
                })
                .collect();
            finite.is_empty() || bool::try_from(Tensor::stack(&finite, 0).min().ge(1.0)).expect("a scalar bool")
        })
    }

    /// Records a step: with finite gradients the good-step count grows and the scale doubles
    /// every [`GROWTH_INTERVAL`] of them; with an overflow the step is counted as skipped and
    /// the scale halves. An error once the scale falls below [`MIN_SCALE`].
    pub fn update(&mut self, finite: bool) -> Result<(), ScaleCollapsed> {
        if finite {
            self.good_steps += 1;
            if self.good_steps >= GROWTH_INTERVAL {
                self.scale *= 2.0;
                self.good_steps = 0;
            }
            return Ok(());
        }
        self.skipped_steps += 1;
        self.good_steps = 0;
        self.scale *= 0.5;
        if self.scale < MIN_SCALE {
            return Err(ScaleCollapsed { scale: self.scale, skipped: self.skipped_steps });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{nn, Device};

    #[test]
    fn the_scale_halves_on_overflow_and_doubles_after_a_run_of_good_steps() {
        let mut s = LossScaler::default();
        s.update(false).unwrap();
        assert_eq!((s.scale, s.skipped_steps, s.good_steps), (INITIAL_SCALE / 2.0, 1, 0));
        for _ in 0..GROWTH_INTERVAL - 1 {
            s.update(true).unwrap();
        }
        assert_eq!(s.scale, INITIAL_SCALE / 2.0, "not yet");
        s.update(true).unwrap();
        assert_eq!((s.scale, s.good_steps), (INITIAL_SCALE, 0));
        // An overflow resets the run of good steps.
        s.update(true).unwrap();
        s.update(false).unwrap();
        assert_eq!(s.good_steps, 0);
        // Overflowing at every scale is a diverged run, said plainly.
        let mut s = LossScaler::default();
        let error = (0..64).find_map(|_| s.update(false).err()).expect("the scale collapses");
        assert!(error.to_string().contains("turn autocast off"), "{error}");
        use crate::train::precision::AutocastDtype::{Bfloat16, Float16};
        assert!(LossScaler::for_run(Precision::of(true, Float16, Device::Cpu)).is_none(), "no scaling without CUDA");
        assert!(LossScaler::for_run(Precision::of(false, Float16, Device::Cuda(0))).is_none(), "nor without autocast");
        assert!(LossScaler::for_run(Precision::of(true, Bfloat16, Device::Cuda(0))).is_none(), "nor for bfloat16");
        assert!(LossScaler::for_run(Precision::of(true, Float16, Device::Cuda(0))).is_some());
    }

    #[test]
    fn unscaling_divides_every_gradient_and_sees_an_overflow() {
        let vs = nn::VarStore::new(Device::Cpu);
        let a = vs.root().var("a", &[3], nn::Init::Const(1.0));
        let b = vs.root().var("b", &[2], nn::Init::Const(1.0));
        let scaler = LossScaler { scale: 1024.0, ..LossScaler::default() };
        let loss = (&a * Tensor::from_slice(&[1.0f32, 2.0, 3.0])).sum(Kind::Float) + (&b * 4.0).sum(Kind::Float);
        let mut grads: Vec<Option<Tensor>> =
            Tensor::run_backward(&[loss * scaler.scale], &[&a, &b], false, false).into_iter().map(Some).collect();
        assert!(scaler.unscale(&mut grads));
        let values = |g: &Option<Tensor>| Vec::<f32>::try_from(g.as_ref().unwrap()).unwrap();
        assert_eq!(values(&grads[0]), [1.0, 2.0, 3.0]);
        assert_eq!(values(&grads[1]), [4.0, 4.0]);
        let _ = grads[1].as_ref().unwrap().get(1).fill_(f64::INFINITY);
        assert!(!scaler.unscale(&mut grads), "an inf is an overflow");
        let _ = grads[1].as_ref().unwrap().get(1).fill_(f64::NAN);
        assert!(!scaler.unscale(&mut grads), "a NaN is an overflow");
    }
}
