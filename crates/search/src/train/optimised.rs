//! One set of optimised parameters: the parameters, their optimiser, float16's loss scaler
//! (when the run scales), the ranks the gradients are averaged over and gradient clipping. Every
//! update of every task goes through [`Optimised::apply`] (a labelled batch's gradients) or
//! [`Optimised::apply_empty`] (a rank whose batch has no labelled pixel): the search's weight
//! step and architecture step (`crate::train::architect`) and retraining alike, so the order
//! "average across the ranks → unscale, skip an overflowed step → clip → step" is written once.

use anyhow::Result;
use tch::Tensor;

use crate::dist::Ranks;
use crate::train::loss_scale::LossScaler;
use crate::train::optim::{clip_grad_norm, Grads, Optimiser, Params};

/// What an update did.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Applied {
    /// The loss, averaged across the ranks.
    pub loss: f64,
    /// Whether the parameters moved (not when the loss was non-finite, or the float16
    /// gradients overflowed, or a single process had no labelled batch).
    pub updated: bool,
    /// Seconds spent averaging across the ranks.
    pub communication: f64,
    /// Seconds spent unscaling, clipping and stepping (device work included).
    pub update: f64,
}

/// Parameters with their optimiser, loss scaler, ranks and clipping.
pub struct Optimised<O> {
    optimiser: O,
    scaler: Option<LossScaler>,
    ranks: Ranks,
    /// The largest global gradient norm (none: no clipping).
    clip: Option<f64>,
}

impl<O: Optimiser> Optimised<O> {
    /// `optimiser`'s parameters, trained on `ranks`, clipped to a global norm of `clip` (0 or
    /// less: no clipping, as DARTS clips at 5).
    pub fn new(optimiser: O, ranks: Ranks, clip: f64) -> Optimised<O> {
        Optimised { optimiser, scaler: None, ranks, clip: (clip > 0.0).then_some(clip) }
    }

    /// With float16's dynamic loss scaling (`None`: none).
    pub fn with_scaler(mut self, scaler: Option<LossScaler>) -> Optimised<O> {
        self.scaler = scaler;
        self
    }

    pub fn params(&self) -> &Params {
        self.optimiser.params()
    }

    pub fn optimiser(&self) -> &O {
        &self.optimiser
    }

    pub fn optimiser_mut(&mut self) -> &mut O {
        &mut self.optimiser
    }

    pub fn ranks(&self) -> &Ranks {
        &self.ranks
    }

    /// The loss scaler, when the run scales its loss.
    pub fn scaler(&self) -> Option<&LossScaler> {
        self.scaler.as_ref()
    }

    /// Replaces the loss scaler's state (a resumed run), where this run scales.
    pub fn set_scaler(&mut self, saved: LossScaler) {
        if let Some(scaler) = self.scaler.as_mut() {
            *scaler = saved;
        }
    }

    /// The factor a loss is multiplied by before its backward pass (1 without scaling).
    pub fn loss_factor(&self) -> f64 {
        LossScaler::factor(self.scaler.as_ref())
    }

    /// The update from a labelled batch: `grads` (of the loss times [`Optimised::loss_factor`],
    /// aligned with [`Optimised::params`]) and the unscaled `loss` are averaged across the
    /// ranks; with a finite mean loss the gradients are unscaled (a float16 step whose
    /// gradients overflowed is skipped, on every rank alike), clipped, and the optimiser steps
    /// at `lr`. A non-finite loss updates nothing; the caller decides what to do.
    pub fn apply(&mut self, mut grads: Grads, loss: f64, lr: f64) -> Result<Applied> {
        let start = std::time::Instant::now();
        let loss = self.ranks.average(self.optimiser.params().tensors(), &mut grads, loss)?;
        let communication = start.elapsed().as_secs_f64();
        let mut applied = Applied { loss, updated: false, communication, update: 0.0 };
        if !loss.is_finite() {
            return Ok(applied);
        }
        let start = std::time::Instant::now();
        applied.updated = self.update(grads, lr)?;
        if let Some(p) = self.optimiser.params().tensors().first() {
            crate::device::synchronize(p.device());
        }
        applied.update = start.elapsed().as_secs_f64();
        Ok(applied)
    }

    /// The update of a rank whose batch has no labelled pixel: in a distributed run it joins
    /// the averaging with zero gradients (every rank takes part in every all-reduce) and takes
    /// the averaged update; in one process nothing happens (`None`).
    pub fn apply_empty(&mut self, lr: f64) -> Result<Option<Applied>> {
        if !self.ranks.is_distributed() {
            return Ok(None);
        }
        let zeros = self.optimiser.params().zeros();
        // This rank's loss counts as 0 in the mean it reports.
        self.apply(zeros, 0.0, lr).map(Some)
    }

    /// Unscale (skipping an overflowed step), clip and step; whether the parameters moved.
    fn update(&mut self, mut grads: Grads, lr: f64) -> Result<bool> {
        if let Some(scaler) = self.scaler.as_mut() {
            let finite = scaler.unscale(&mut grads);
            scaler.update(finite)?;
            if !finite {
                tracing::warn!(scale = scaler.scale, "fp16 gradients overflowed: step skipped, loss scale halved");
                return Ok(false);
            }
        }
        if let Some(clip) = self.clip {
            clip_grad_norm(&mut grads, clip);
        }
        self.optimiser.step(&grads, lr);
        Ok(true)
    }
}

/// The tensors of `grads` that are defined, as `Option`s (libtorch's undefined gradient of an
/// unused input becomes `None`).
pub fn defined(grads: Vec<Tensor>) -> Grads {
    grads.into_iter().map(|g| g.defined().then_some(g)).collect()
}
