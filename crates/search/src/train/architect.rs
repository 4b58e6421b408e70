//! The Architect: the architecture half of the bilevel search (paper §4.2; DARTS, H. Liu et
//! al., ICLR 2019, §2.3). It owns the architecture optimiser (Adam on α, β and, when searched,
//! the PC-DARTS edge weights) and computes the architecture gradient of
//! min_α L_val(w*(α), α), w*(α) = argmin_w L_train(w, α), with trainA as L_train and trainB as
//! L_val, by one of two strategies (`arch.order`):
//!
//! - **first order** (`1`): w*(α) ≈ w, so the gradient is ∇α L_trainB(w, α);
//! - **second order** (`2`): w*(α) ≈ w′ = w − ξ·d, the virtual step of the weights' own SGD
//!   (d = momentum·buffer + ∇w L_trainA(w, α) + decay·w, exactly what the weight optimiser
//!   would apply, without clipping as in DARTS), and the gradient is
//!   ∇α L_trainB(w′, α) − ξ·∇²_{α,w} L_trainA(w, α)·∇w′ L_trainB(w′, α), the Hessian-vector
//!   product by central differences: [∇α L_trainA(w⁺, α) − ∇α L_trainA(w⁻, α)] / 2ε with
//!   w± = w ± ε·∇w′ L_trainB(w′, α) and ε = r / ‖∇w′ L_trainB(w′, α)‖, r = `arch.hessian_step`
//!   (DARTS' 0.01 by default). ξ is `arch.unrolled_lr`, by default the weights' current learning
//!   rate (as DARTS). The central difference's error grows with r: on the tiny network of
//!   tests/architect.rs (double precision, ξ = 0.5) the gradient at DARTS' r = 0.01 is 0.97
//!   (relative) from the brute-force derivative, at r = 1e-4 6.9e-4 (docs/performance.md); in
//!   fp32 a small r loses digits to cancellation instead, so r is a config key.
//!
//! The second-order step leaves the weight store exactly as it found it: the weights are
//! restored bit for bit from a copy, and its forward passes do not update the batch norms'
//! running statistics. The first-order step is the one the search always had (its training-mode
//! forward pass updates the running statistics once, as before). Every pass runs in fp32 (α and
//! β are trained in fp32; `crate::train::precision`). In a distributed run the weights'
//! gradients of the virtual step and ∇w′ L_trainB are averaged across the ranks before use, so
//! that w′, ε and w± are the same on every rank, and the architecture gradient is averaged
//! before Adam's update; a rank whose batch has no labelled pixel contributes zeros and joins
//! every all-reduce.

use std::time::Instant;

use anyhow::Result;
use serde::{Deserialize, Serialize};
use tch::Tensor;
use trellis::{ArchParams, SearchNetwork};

use crate::dist::Ranks;
use crate::train::backward::Wrt;
use crate::train::optim::{grad_norm, Adam, Grads, Sgd};
use crate::train::optimised::Optimised;
use crate::train::precision::Precision;
use crate::train::step::{gradients, has_labels, Labelled, StepTiming};

/// The architecture-gradient strategy (`arch.order`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(try_from = "u8", into = "u8")]
pub enum Order {
    /// ∇α L_trainB(w, α).
    #[default]
    First,
    /// DARTS' one-step unrolled gradient.
    Second,
}

impl TryFrom<u8> for Order {
    type Error = String;
    fn try_from(value: u8) -> Result<Order, String> {
        match value {
            1 => Ok(Order::First),
            2 => Ok(Order::Second),
            other => Err(format!("{other} is not an order: 1 (first-order DARTS) or 2 (second-order, unrolled)")),
        }
    }
}

impl From<Order> for u8 {
    fn from(order: Order) -> u8 {
        match order {
            Order::First => 1,
            Order::Second => 2,
        }
    }
}

/// What the second-order gradient needs of the weight step: the weights with their optimiser
/// (its momentum buffers and decay make the virtual step), the trainA batch and the weights'
/// current learning rate.
#[derive(Clone, Copy)]
pub struct Unrolled<'a> {
    pub weights: &'a Optimised<Sgd>,
    pub train_a: Labelled<'a>,
    pub weight_lr: f64,
}

/// An architecture gradient and what computing it took.
pub struct ArchGradient {
    /// The trainB loss (at w′ for the second order); NaN when a loss was non-finite.
    pub loss: f64,
    /// Aligned with the architecture parameters.
    pub grads: Grads,
    pub forward: f64,
    pub backward: f64,
    pub communication: f64,
}

/// The architecture optimiser and gradient strategy.
pub struct Architect {
    optimised: Optimised<Adam>,
    order: Order,
    /// ξ; `None`: the weights' current learning rate.
    unrolled_lr: Option<f64>,
    /// r in ε = r / ‖∇w′ L_trainB‖ (DARTS: 0.01).
    hessian_step: f64,
}

/// DARTS' r in the finite-difference step ε = r / ‖∇w′ L_trainB(w′, α)‖.
pub const DARTS_HESSIAN_STEP: f64 = 0.01;

impl Architect {
    /// Adam (`adam`, over the architecture store's parameters) on `ranks`, with the gradient of
    /// `order` (the second order with ξ = the weights' learning rate and DARTS' ε).
    pub fn new(adam: Adam, ranks: Ranks, order: Order) -> Architect {
        Architect {
            optimised: Optimised::new(adam, ranks, 0.0),
            order,
            unrolled_lr: None,
            hessian_step: DARTS_HESSIAN_STEP,
        }
    }

    /// The second order's ξ (`None`: the weights' current learning rate) and r of ε = r / ‖∇w′
    /// L_trainB‖ (`arch.unrolled_lr`, `arch.hessian_step`).
    pub fn unrolled(mut self, unrolled_lr: Option<f64>, hessian_step: f64) -> Architect {
        self.unrolled_lr = unrolled_lr;
        self.hessian_step = hessian_step;
        self
    }

    pub fn order(&self) -> Order {
        self.order
    }

    pub fn adam(&self) -> &Adam {
        self.optimised.optimiser()
    }

    pub fn adam_mut(&mut self) -> &mut Adam {
        self.optimised.optimiser_mut()
    }

    /// One architecture step on the trainB batch `train_b`: the gradient of the configured
    /// order, plus that of `penalty` (the architecture loss's extra terms, a function of α and
    /// β alone, `crate::train::arch_loss`) when given, averaged across the ranks, then Adam.
    /// Nothing is updated when the loss or the penalty is non-finite (the caller decides). A
    /// trainB batch without a labelled pixel is skipped in one process; a rank of a distributed
    /// run joins with zeros.
    pub fn step(
        &mut self,
        net: &SearchNetwork,
        arch: &ArchParams,
        train_b: Labelled,
        unrolled: Unrolled,
        penalty: Option<&dyn Fn() -> Tensor>,
    ) -> Result<StepTiming> {
        let lr = self.adam().config().lr;
        let labelled = has_labels(train_b.labels);
        if !labelled && !self.optimised.ranks().is_distributed() {
            return Ok(StepTiming::empty(None));
        }
        let gradient = self.gradient(net, arch, train_b, unrolled)?;
        let mut grads = gradient.grads;
        let mut backward = gradient.backward;
        let penalty = match penalty {
            Some(f) => {
                let start = Instant::now();
                let p = f();
                let value = f64::try_from(&p)?;
                if value.is_finite() {
                    let params: Vec<&Tensor> = self.optimised.params().tensors().iter().collect();
                    let extra = Tensor::run_backward(&[p], &params, false, false);
                    for (slot, g) in grads.iter_mut().zip(extra) {
                        crate::train::backward::add(slot, g);
                    }
                }
                backward += start.elapsed().as_secs_f64();
                Some(value)
            }
            None => None,
        };
        let mut timing = StepTiming {
            loss: gradient.loss,
            forward: gradient.forward,
            backward,
            update: 0.0,
            communication: gradient.communication,
            penalty,
            labelled,
        };
        // The penalty is the same on every rank (α and β are), so every rank skips alike.
        if penalty.is_some_and(|p| !p.is_finite()) {
            return Ok(timing);
        }
        let applied = self.optimised.apply(grads, gradient.loss, lr)?;
        timing.loss = applied.loss;
        timing.update = applied.update;
        timing.communication += applied.communication;
        Ok(timing)
    }

    /// The architecture gradient of the configured order on `train_b` (and, for the second
    /// order, `unrolled`'s trainA batch), before the penalty and before averaging across the
    /// ranks. The weight store is left as it was (second order: bit for bit, running statistics
    /// included).
    pub fn gradient(
        &self,
        net: &SearchNetwork,
        arch: &ArchParams,
        train_b: Labelled,
        unrolled: Unrolled,
    ) -> Result<ArchGradient> {
        let arch_params = self.optimised.params().tensors();
        match self.order {
            Order::First => {
                let weights = unrolled.weights.params().tensors();
                let (grads, forward, backward) = pass(net, arch, train_b, Wrt::arch(arch_params, weights));
                Ok(ArchGradient { loss: grads.0, grads: grads.2, forward, backward, communication: 0.0 })
            }
            Order::Second => {
                let xi = self.unrolled_lr.unwrap_or(unrolled.weight_lr);
                cell::ops::with_running_stats_frozen(|| {
                    self.second_order(net, arch, train_b, unrolled, xi, arch_params)
                })
            }
        }
    }

    fn second_order(
        &self,
        net: &SearchNetwork,
        arch: &ArchParams,
        train_b: Labelled,
        unrolled: Unrolled,
        xi: f64,
        arch_params: &[Tensor],
    ) -> Result<ArchGradient> {
        let ranks = self.optimised.ranks();
        let weights = unrolled.weights.params();
        let w = weights.tensors();
        let original = weights.snapshot();
        let mut out =
            ArchGradient { loss: f64::NAN, grads: Vec::new(), forward: 0.0, backward: 0.0, communication: 0.0 };
        let mut timed = |(forward, backward): (f64, f64)| {
            out.forward += forward;
            out.backward += backward;
        };
        // The virtual step w′ = w − ξ·d from ∇w L_trainA(w, α), α constant.
        let ((loss_a, mut g, _), f, b) = pass(net, arch, unrolled.train_a, Wrt::weights(w));
        timed((f, b));
        let start = Instant::now();
        let loss_a = ranks.average(w, &mut g, loss_a)?;
        let mut communication = start.elapsed().as_secs_f64();
        let directions = unrolled.weights.optimiser().directions(&g);
        weights.add_scaled(&directions, -xi);
        // ∇α L_trainB(w′, α) and ∇w′ L_trainB(w′, α).
        let wrt = Wrt { weights: w, arch: arch_params, constant: &[] };
        let ((loss_b, mut dw, dalpha), f, b) = pass(net, arch, train_b, wrt);
        timed((f, b));
        let start = Instant::now();
        ranks.average(w, &mut dw, 0.0)?;
        communication += start.elapsed().as_secs_f64();
        // The Hessian-vector product by central differences around w.
        let norm = grad_norm(&dw);
        let mut grads = dalpha;
        if norm > 0.0 && norm.is_finite() && loss_a.is_finite() {
            let eps = self.hessian_step / norm;
            let mut at = |sign: f64| {
                weights.restore(&original);
                weights.add_scaled(&dw, sign * eps);
                let ((_, _, da), f, b) = pass(net, arch, unrolled.train_a, Wrt::arch(arch_params, w));
                timed((f, b));
                da
            };
            let (plus, minus) = (at(1.0), at(-1.0));
            let factor = xi / (2.0 * eps);
            grads = grads
                .into_iter()
                .zip(plus.into_iter().zip(minus))
                .map(|(g, (p, m))| match (g, p, m) {
                    (Some(g), Some(p), Some(m)) => Some(g - (p - m) * factor),
                    (g, _, _) => g,
                })
                .collect();
        }
        weights.restore(&original);
        out.loss = if loss_a.is_finite() { loss_b } else { loss_a };
        out.grads = grads;
        out.communication = communication;
        Ok(out)
    }
}

/// One fp32 forward and backward pass on `batch` for the gradients `wrt` asks for:
/// ((loss, weights' gradients, architecture gradients), forward seconds, backward seconds). A
/// batch without a labelled pixel gives loss 0 and zero gradients (what a rank of a distributed
/// run contributes then).
fn pass(net: &SearchNetwork, arch: &ArchParams, batch: Labelled, wrt: Wrt) -> ((f64, Grads, Grads), f64, f64) {
    if !has_labels(batch.labels) {
        let zeros = |tensors: &[Tensor]| -> Grads { tensors.iter().map(|t| Some(t.zeros_like())).collect() };
        return ((0.0, zeros(wrt.weights), zeros(wrt.arch)), 0.0, 0.0);
    }
    let g = gradients(net, arch, batch, Precision::Full, 1.0, wrt);
    let (forward, backward) = (g.forward_seconds, g.backward_seconds);
    ((g.loss, g.weights, g.arch), forward, backward)
}
