//! SGD with momentum and Adam over tensors we own, so that their state (momentum buffers, Adam
//! moments, step count) is saved with every checkpoint and a resumed run continues exactly:
//! tch's C++ optimisers cannot save theirs. The updates are PyTorch's (`torch.optim.SGD` and
//! `torch.optim.Adam` with L2 weight decay added to the gradient).

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use tch::{nn, Kind, Tensor};

/// Gradients aligned with a [`Params`] list, by position: `None` for a parameter that took no
/// part in the loss (it is then left alone by the update).
pub type Grads = Vec<Option<Tensor>>;

/// The trainable variables of a VarStore, sorted by name (a stable order for state files).
pub struct Params {
    names: Vec<String>,
    tensors: Vec<Tensor>,
}

impl Params {
    /// Every trainable variable of `vs` (batch-norm running statistics are not trainable).
    pub fn of(vs: &nn::VarStore) -> Params {
        let trainable: Vec<usize> = vs.trainable_variables().iter().map(|t| t.data_ptr() as usize).collect();
        let mut named: Vec<(String, Tensor)> =
            vs.variables().into_iter().filter(|(_, t)| trainable.contains(&(t.data_ptr() as usize))).collect();
        named.sort_by(|a, b| a.0.cmp(&b.0));
        let (names, tensors) = named.into_iter().unzip();
        Params { names, tensors }
    }

    /// The tensors, in name order.
    pub fn tensors(&self) -> &[Tensor] {
        &self.tensors
    }

    /// The names, in the tensors' order.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// Number of scalars.
    pub fn numel(&self) -> usize {
        self.tensors.iter().map(Tensor::numel).sum()
    }

    /// Zero gradients for every parameter (what a rank without a labelled batch contributes).
    pub fn zeros(&self) -> Grads {
        self.tensors.iter().map(|t| Some(t.zeros_like())).collect()
    }

    /// A copy of the values (detached), to [`Params::restore`] bit for bit.
    pub fn snapshot(&self) -> Vec<Tensor> {
        tch::no_grad(|| self.tensors.iter().map(|t| t.detach().copy()).collect())
    }

    /// Copies `values` (from [`Params::snapshot`]) back into the parameters, in place.
    pub fn restore(&self, values: &[Tensor]) {
        tch::no_grad(|| {
            for (p, v) in self.tensors.iter().zip(values) {
                p.shallow_clone().copy_(v);
            }
        });
    }

    /// Adds `scale * direction` to every parameter that has a direction, in place.
    pub fn add_scaled(&self, direction: &[Option<Tensor>], scale: f64) {
        tch::no_grad(|| {
            for (p, d) in self.tensors.iter().zip(direction) {
                if let Some(d) = d {
                    let _ = p.shallow_clone().g_add_(&(d * scale));
                }
            }
        });
    }
}

/// The global L2 norm of `grads` (0 without any).
pub fn grad_norm(grads: &[Option<Tensor>]) -> f64 {
    tch::no_grad(|| {
        let squares: Vec<Tensor> =
            grads.iter().flatten().map(|g| g.to_kind(Kind::Float).square().sum(Kind::Float)).collect();
        if squares.is_empty() {
            return 0.0;
        }
        f64::try_from(Tensor::stack(&squares, 0).sum(Kind::Float).sqrt()).expect("scalar norm")
    })
}

/// Scales `grads` in place so that their global L2 norm is at most `max_norm`; returns the norm
/// before clipping.
pub fn clip_grad_norm(grads: &mut [Option<Tensor>], max_norm: f64) -> f64 {
    let norm = grad_norm(grads);
    if norm > max_norm {
        let scale = max_norm / (norm + 1e-6);
        tch::no_grad(|| {
            for g in grads.iter_mut().flatten() {
                let _ = g.g_mul_scalar_(scale);
            }
        });
    }
    norm
}

/// An optimiser over a [`Params`] list, whose state is saved with every checkpoint.
pub trait Optimiser {
    /// The parameters it updates.
    fn params(&self) -> &Params;
    /// One update from `grads` (aligned with [`Optimiser::params`]) at learning rate `lr`.
    fn step(&mut self, grads: &[Option<Tensor>], lr: f64);
    /// Its state by variable name.
    fn state(&self) -> Vec<(String, Tensor)>;
}

/// SGD hyperparameters (the learning rate comes from the schedule at each step).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SgdConfig {
    pub momentum: f64,
    pub weight_decay: f64,
}

impl Default for SgdConfig {
    fn default() -> Self {
        SgdConfig { momentum: 0.9, weight_decay: 3e-4 }
    }
}

/// SGD with momentum and L2 weight decay.
pub struct Sgd {
    config: SgdConfig,
    params: Params,
    buffers: Vec<Option<Tensor>>,
}

impl Sgd {
    pub fn new(params: Params, config: SgdConfig) -> Sgd {
        let buffers = params.tensors.iter().map(|_| None).collect();
        Sgd { config, params, buffers }
    }

    pub fn config(&self) -> &SgdConfig {
        &self.config
    }

    /// The update direction of each parameter for `grads`: `momentum * buffer + grad + decay *
    /// p` (`None` where the gradient is), so that a step is `p -= lr * direction`. The rule of
    /// [`Optimiser::step`], also used by the second-order architecture step's virtual step
    /// (`crate::train::architect`), which must move the weights exactly as this optimiser would.
    pub fn directions(&self, grads: &[Option<Tensor>]) -> Grads {
        tch::no_grad(|| {
            self.params
                .tensors
                .iter()
                .zip(&self.buffers)
                .zip(grads)
                .map(|((p, buffer), grad)| {
                    let d = grad.as_ref()? + p * self.config.weight_decay;
                    Some(match buffer {
                        None => d,
                        Some(b) => b * self.config.momentum + d,
                    })
                })
                .collect()
        })
    }

    /// Restores momentum buffers saved by [`Optimiser::state`].
    pub fn load_state(&mut self, state: &HashMap<String, Tensor>) {
        self.buffers = restore(&self.params, state, "momentum");
    }
}

impl Optimiser for Sgd {
    fn params(&self) -> &Params {
        &self.params
    }

    fn step(&mut self, grads: &[Option<Tensor>], lr: f64) {
        let directions = self.directions(grads);
        tch::no_grad(|| {
            for ((p, buffer), update) in self.params.tensors.iter().zip(self.buffers.iter_mut()).zip(directions) {
                let Some(update) = update else { continue };
                let mut p = p.shallow_clone();
                let _ = p.g_sub_(&(&update * lr));
                *buffer = Some(update);
            }
        });
    }

    /// Momentum buffers by variable name.
    fn state(&self) -> Vec<(String, Tensor)> {
        named_state(&self.params, &[("momentum", &self.buffers)])
    }
}

/// Adam hyperparameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdamConfig {
    pub lr: f64,
    pub betas: [f64; 2],
    pub eps: f64,
    pub weight_decay: f64,
}

impl Default for AdamConfig {
    fn default() -> Self {
        // Paper §4.2: lr 3e-3, weight decay 1e-3.
        AdamConfig { lr: 3e-3, betas: [0.9, 0.999], eps: 1e-8, weight_decay: 1e-3 }
    }
}

/// Adam with L2 weight decay.
pub struct Adam {
    config: AdamConfig,
    params: Params,
    first: Vec<Option<Tensor>>,
    second: Vec<Option<Tensor>>,
    steps: i64,
}

impl Adam {
    pub fn new(params: Params, config: AdamConfig) -> Adam {
        let n = params.tensors.len();
        Adam { config, params, first: (0..n).map(|_| None).collect(), second: (0..n).map(|_| None).collect(), steps: 0 }
    }

    pub fn config(&self) -> &AdamConfig {
        &self.config
    }

    /// Number of updates made so far.
    pub fn steps(&self) -> i64 {
        self.steps
    }

    /// Restores moments saved by [`Optimiser::state`] and the step count.
    pub fn load_state(&mut self, state: &HashMap<String, Tensor>, steps: i64) {
        self.first = restore(&self.params, state, "adam_m");
        self.second = restore(&self.params, state, "adam_v");
        self.steps = steps;
    }
}

impl Optimiser for Adam {
    fn params(&self) -> &Params {
        &self.params
    }

    /// One update from `grads` at learning rate `lr` (the config's `lr` is what callers pass).
    fn step(&mut self, grads: &[Option<Tensor>], lr: f64) {
        self.steps += 1;
        let [b1, b2] = self.config.betas;
        let correction1 = 1.0 - b1.powi(self.steps as i32);
        let correction2 = 1.0 - b2.powi(self.steps as i32);
        tch::no_grad(|| {
            let slots = self.first.iter_mut().zip(self.second.iter_mut());
            for ((p, (m, v)), grad) in self.params.tensors.iter().zip(slots).zip(grads) {
                let Some(grad) = grad else { continue };
                let g = grad + p * self.config.weight_decay;
                let new_m = match m.take() {
                    None => &g * (1.0 - b1),
                    Some(m) => m * b1 + &g * (1.0 - b1),
                };
                let new_v = match v.take() {
                    None => g.square() * (1.0 - b2),
                    Some(v) => v * b2 + g.square() * (1.0 - b2),
                };
                let denominator = (&new_v / correction2).sqrt() + self.config.eps;
                let mut p = p.shallow_clone();
                let _ = p.g_sub_(&(&new_m / &denominator * (lr / correction1)));
                *m = Some(new_m);
                *v = Some(new_v);
            }
        });
    }

    /// Moments by variable name (the step count is saved by the caller).
    fn state(&self) -> Vec<(String, Tensor)> {
        named_state(&self.params, &[("adam_m", &self.first), ("adam_v", &self.second)])
    }
}

fn named_state(params: &Params, slots: &[(&str, &Vec<Option<Tensor>>)]) -> Vec<(String, Tensor)> {
    let mut out = Vec::new();
    for (slot, tensors) in slots {
        for (name, t) in params.names.iter().zip(tensors.iter()) {
            if let Some(t) = t {
                out.push((format!("{slot}/{name}"), t.shallow_clone()));
            }
        }
    }
    out
}

fn restore(params: &Params, state: &HashMap<String, Tensor>, slot: &str) -> Vec<Option<Tensor>> {
    params
        .names
        .iter()
        .zip(&params.tensors)
        .map(|(name, p)| state.get(&format!("{slot}/{name}")).map(|t| t.to_device(p.device()).to_kind(p.kind())))
        .collect()
}

/// Cosine annealing from `max` to `min` over `total` periods (`torch.optim.lr_scheduler.
/// CosineAnnealingLR`), at period `t`.
pub fn cosine_lr(max: f64, min: f64, t: usize, total: usize) -> f64 {
    min + 0.5 * (max - min) * (1.0 + (std::f64::consts::PI * t as f64 / total.max(1) as f64).cos())
}

/// DeepLab's poly schedule: `base * (1 - t / total)^power`.
pub fn poly_lr(base: f64, t: usize, total: usize, power: f64) -> f64 {
    base * (1.0 - t as f64 / total.max(1) as f64).max(0.0).powf(power)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Device;

    /// The gradient of `loss` with respect to `x`.
    fn grad(loss: Tensor, x: &Tensor) -> Grads {
        Tensor::run_backward(&[loss], &[x], false, false).into_iter().map(Some).collect()
    }

    fn quadratic_store(start: &[f32]) -> (nn::VarStore, Tensor) {
        let vs = nn::VarStore::new(Device::Cpu);
        let x = vs.root().var_copy("x", &Tensor::from_slice(start));
        (vs, x)
    }

    #[test]
    fn sgd_matches_pytorch_by_hand() {
        // loss = sum(x^2) / 2, grad = x. lr 0.1, momentum 0.9, wd 0.01.
        let (vs, x) = quadratic_store(&[1.0, -2.0]);
        let mut sgd = Sgd::new(Params::of(&vs), SgdConfig { momentum: 0.9, weight_decay: 0.01 });
        let mut expected = [1.0f64, -2.0];
        let mut buf = [0.0f64; 2];
        for step in 0..3 {
            let g = grad(x.square().sum(Kind::Float) / 2.0, &x);
            sgd.step(&g, 0.1);
            for i in 0..2 {
                let d = expected[i] + 0.01 * expected[i];
                buf[i] = if step == 0 { d } else { 0.9 * buf[i] + d };
                expected[i] -= 0.1 * buf[i];
            }
        }
        let got = Vec::<f32>::try_from(&x).unwrap();
        for i in 0..2 {
            assert!((got[i] as f64 - expected[i]).abs() < 1e-6, "{got:?} vs {expected:?}");
        }
    }

    /// Clipping scales the gradients' norm down to the limit before a step.
    #[test]
    fn clipping_scales_the_gradient_norm() {
        for (clip, expected) in [(Some(0.5), [1.0 - 0.15, -2.0 + 0.2]), (None, [1.0 - 1.5, -2.0 + 2.0])] {
            // grad = (3, -4), norm 5; lr 0.5, no momentum or decay.
            let (vs, x) = quadratic_store(&[1.0, -2.0]);
            let mut sgd = Sgd::new(Params::of(&vs), SgdConfig { momentum: 0.0, weight_decay: 0.0 });
            let mut g = grad((&x * Tensor::from_slice(&[3.0f32, -4.0])).sum(Kind::Float), &x);
            if let Some(clip) = clip {
                assert!((clip_grad_norm(&mut g, clip) - 5.0).abs() < 1e-6);
            }
            sgd.step(&g, 0.5);
            let got = Vec::<f32>::try_from(&x).unwrap();
            for i in 0..2 {
                assert!((got[i] as f64 - expected[i]).abs() < 1e-5, "clip {clip:?}: {got:?} vs {expected:?}");
            }
        }
    }

    #[test]
    fn adam_matches_pytorch_by_hand_and_resumes_exactly() {
        let config = AdamConfig { lr: 0.01, betas: [0.9, 0.999], eps: 1e-8, weight_decay: 0.001 };
        let run = |steps: usize, (vs, x): (nn::VarStore, Tensor), state: Option<(HashMap<String, Tensor>, i64)>| {
            let mut adam = Adam::new(Params::of(&vs), config.clone());
            if let Some((s, n)) = state {
                adam.load_state(&s, n);
            }
            for _ in 0..steps {
                let g = grad(x.square().sum(Kind::Float) / 2.0, &x);
                adam.step(&g, config.lr);
            }
            let state: HashMap<String, Tensor> = adam.state().into_iter().collect();
            (Vec::<f32>::try_from(&x).unwrap(), state, adam.steps())
        };
        let (straight, _, _) = run(4, quadratic_store(&[1.0, -2.0]), None);
        let (half, state, steps) = run(2, quadratic_store(&[1.0, -2.0]), None);
        let (resumed, _, total) = run(2, quadratic_store(&half), Some((state, steps)));
        assert_eq!(straight, resumed, "two steps, save, two steps == four steps");
        assert_eq!(total, 4);
        // First Adam step moves each coordinate by about lr against its gradient's sign.
        let (one, _, _) = run(1, quadratic_store(&[1.0, -2.0]), None);
        assert!((one[0] - 0.99).abs() < 1e-4 && (one[1] + 1.99).abs() < 1e-4, "{one:?}");
    }

    #[test]
    fn schedules() {
        assert_eq!(cosine_lr(0.025, 0.001, 0, 40), 0.025);
        assert!((cosine_lr(0.025, 0.001, 40, 40) - 0.001).abs() < 1e-12);
        assert!((cosine_lr(0.025, 0.001, 20, 40) - 0.013).abs() < 1e-12);
        assert_eq!(poly_lr(0.05, 0, 100, 0.9), 0.05);
        assert_eq!(poly_lr(0.05, 100, 100, 0.9), 0.0);
    }
}
