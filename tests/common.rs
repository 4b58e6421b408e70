//! Helpers shared by the integration tests.
#![allow(dead_code)]

use tch::{Kind, Tensor};

/// Whether `t` has a gradient that is finite everywhere and not all zero.
pub fn has_useful_gradient(t: &Tensor) -> bool {
    search::smoke::has_useful_gradient(t)
}

/// Largest absolute difference between two tensors of the same shape.
pub fn max_abs_diff(a: &Tensor, b: &Tensor) -> f64 {
    assert_eq!(a.size(), b.size());
    f64::try_from((a - b).abs().max().to_kind(Kind::Double)).unwrap()
}

/// Total number of elements of the trainable variables of a store.
pub fn trainable_numel(vs: &tch::nn::VarStore) -> i64 {
    vs.trainable_variables().iter().map(|t| t.numel() as i64).sum()
}
