//! When the search steps recompute activations in the backward pass instead of keeping them
//! (a memory-saving mode; docs/performance.md). Not part of the paper's method: the values and
//! gradients are the same either way (tested), only memory and time differ.

use std::fmt;
use std::str::FromStr;

use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize};

/// The recompute policy of the search steps. In config files: `"auto"`, `"always"` or
/// `"never"` (`true` and `false`, the switch of earlier versions, mean always and never).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Recompute {
    /// Keep the activations of as many layers (from the first) as fit in the activation
    /// budget, by an estimate from the network's shape and the batch size, and recompute the
    /// others; with everything under budget, the plain backward pass.
    #[default]
    Auto,
    /// Recompute every layer: the least memory.
    Always,
    /// Keep every activation: the plain backward pass.
    Never,
}

impl FromStr for Recompute {
    type Err = String;

    fn from_str(s: &str) -> Result<Recompute, String> {
        match s {
            "auto" => Ok(Recompute::Auto),
            "always" => Ok(Recompute::Always),
            "never" => Ok(Recompute::Never),
            other => Err(format!(r#"unknown recompute policy "{other}"; expected "auto", "always" or "never""#)),
        }
    }
}

impl<'de> Deserialize<'de> for Recompute {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Recompute, D::Error> {
        struct Policy;
        impl Visitor<'_> for Policy {
            type Value = Recompute;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str(r#""auto", "always", "never" or a boolean"#)
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Recompute, E> {
                Ok(if v { Recompute::Always } else { Recompute::Never })
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Recompute, E> {
                v.parse().map_err(|_| E::invalid_value(de::Unexpected::Str(v), &self))
            }
        }
        deserializer.deserialize_any(Policy)
    }
}

/// Which layers keep their activations: `keep[l]` true for a kept layer, false for one that is
/// recomputed in the backward pass.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecomputePlan {
    pub keep: Vec<bool>,
}

impl RecomputePlan {
    /// Greedy from the first layer: keep layers while their estimated activations (`bytes`, one
    /// per layer) add up to at most `budget` bytes. `None` when every layer fits (no recompute).
    pub fn within_budget(bytes: &[f64], budget: f64) -> Option<RecomputePlan> {
        let mut used = 0.0;
        let keep: Vec<bool> = bytes
            .iter()
            .map(|&b| {
                let fits = used + b <= budget;
                if fits {
                    used += b;
                }
                fits
            })
            .collect();
        (!keep.iter().all(|&k| k)).then_some(RecomputePlan { keep })
    }

    /// Every layer recomputed.
    pub fn all(layers: usize) -> RecomputePlan {
        RecomputePlan { keep: vec![false; layers] }
    }

    /// Number of recomputed layers.
    pub fn recomputed(&self) -> usize {
        self.keep.iter().filter(|&&k| !k).count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policies_parse_from_names_and_the_old_boolean() {
        #[derive(Deserialize)]
        struct C {
            r: Recompute,
        }
        let parse = |s: &str| toml::from_str::<C>(s).map(|c| c.r);
        assert_eq!(parse("r = \"auto\"").unwrap(), Recompute::Auto);
        assert_eq!(parse("r = \"never\"").unwrap(), Recompute::Never);
        assert_eq!(parse("r = true").unwrap(), Recompute::Always);
        assert_eq!(parse("r = false").unwrap(), Recompute::Never);
        let err = parse("r = \"sometimes\"").unwrap_err().to_string();
        assert!(err.contains("sometimes") && err.contains("\"auto\""), "{err}");
    }

    #[test]
    fn budget_keeps_layers_from_the_first_while_they_fit() {
        assert_eq!(RecomputePlan::within_budget(&[1.0, 2.0, 3.0], 6.0), None);
        let plan = RecomputePlan::within_budget(&[1.0, 2.0, 3.0, 1.0], 4.0).unwrap();
        // Layer 2 does not fit after 0 and 1; the smaller layer 3 still does.
        assert_eq!(plan.keep, [true, true, false, true]);
        assert_eq!(plan.recomputed(), 1);
        assert_eq!(RecomputePlan::within_budget(&[5.0, 5.0], 1.0).unwrap().keep, [false, false]);
    }
}
