//! What the architecture step's loss adds to the segmentation loss (paper §4.2 has none of
//! it): the expected cost of the deployable network under (α, β) against a budget
//! (`[arch.cost]`, FasterSeg's latency loss with its adaptive weight; `trellis::cost`), and the
//! stabilisers against the collapse into skip connections: β-DARTS's Beta-Decay regulariser
//! on α and DARTS-'s auxiliary skip connection, each with its schedule over the search.

use anyhow::{Context, Result};
use tch::{Kind, Tensor};
use trellis::{ArchParams, Architecture, CostModel, RelaxedCell, SearchNetworkConfig, TableSpec};

use crate::run_config::{ArchConfig, CostConfig};

/// The configured extra terms, ready to use.
pub struct ArchLoss {
    config: ArchConfig,
    blocks: usize,
    cost: Option<CostModel>,
}

/// The values of the extra terms at one step.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Terms {
    /// E[cost] in the kind's unit.
    pub expected_cost: Option<f64>,
    /// The Beta-Decay regulariser's value (before its weight).
    pub beta_decay: Option<f64>,
}

/// The cost model of `[arch.cost]` for networks of `model`'s shape: from `arch.cost.table`
/// when set (checked against the shape and size), else multiply-adds and parameters counted
/// from the components themselves.
pub fn cost_model(cost: &CostConfig, model: &SearchNetworkConfig) -> Result<CostModel> {
    let spec = TableSpec {
        height: cost.height,
        width: cost.width,
        filter_multiplier: cost.filter_multiplier,
        blocks: model.blocks,
        classes: model.classes,
        stem_channels: cost.stem_channels,
    };
    trellis::cost_model(cost.kind, cost.table.as_deref(), &spec).context("config key `arch.cost.table`")
}

impl ArchLoss {
    /// Builds the terms `config` asks for, for a search of `model`.
    pub fn new(config: &ArchConfig, model: &SearchNetworkConfig) -> Result<ArchLoss> {
        let cost = config.cost.as_ref().map(|c| cost_model(c, model)).transpose()?;
        Ok(ArchLoss { config: config.clone(), blocks: model.blocks, cost })
    }

    /// Whether the architecture loss has anything beyond the segmentation loss.
    pub fn is_active(&self) -> bool {
        self.cost.is_some() || self.config.beta_decay.is_some()
    }

    /// The cost term's configuration, if any.
    pub fn cost_config(&self) -> Option<&CostConfig> {
        self.config.cost.as_ref()
    }

    /// DARTS-'s auxiliary skip coefficient at progress `t` (fraction of the search's steps done).
    pub fn aux_skip(&self, t: f64) -> f64 {
        self.config.aux_skip.as_ref().map_or(0.0, |s| s.start * s.schedule.factor(t, false))
    }

    /// The Beta-Decay regulariser's weight at progress `t`.
    pub fn beta_decay_weight(&self, t: f64) -> f64 {
        self.config.beta_decay.as_ref().map_or(0.0, |d| d.weight * d.schedule.factor(t, true))
    }

    /// The relaxed cell of the current α (and edge weights).
    fn relaxed(&self, arch: &ArchParams) -> RelaxedCell {
        RelaxedCell::new(arch.alpha.logits(), arch.edges.as_ref(), self.blocks)
    }

    /// E[cost] under the current α and β (differentiable), if a cost is configured.
    pub fn expected_cost(&self, arch: &ArchParams) -> Option<Tensor> {
        let model = self.cost.as_ref()?;
        Some(model.expected(&self.relaxed(arch), &trellis::normalize_beta(&arch.beta)).cost)
    }

    /// The cost of a decoded architecture, if a cost is configured.
    pub fn decoded_cost(&self, architecture: &Architecture) -> Option<f64> {
        self.cost.as_ref().map(|m| m.architecture_cost(architecture))
    }

    /// The extra loss at progress `t` with the cost term's current `cost_weight`, to be added
    /// to the segmentation loss (`None` when nothing is configured), and its terms' values.
    pub fn penalty(&self, arch: &ArchParams, cost_weight: f64, t: f64) -> Option<(Tensor, Terms)> {
        if !self.is_active() {
            return None;
        }
        let mut parts: Vec<Tensor> = Vec::new();
        let mut terms = Terms { expected_cost: None, beta_decay: None };
        if let (Some(expected), Some(config)) = (self.expected_cost(arch), &self.config.cost) {
            terms.expected_cost = Some(f64::try_from(&expected).expect("a scalar"));
            parts.push(expected * (cost_weight / config.target));
        }
        if self.config.beta_decay.is_some() {
            // Beta-Decay: the mean over edges of smoothmax(α_e) = logsumexp over the ops.
            let value = arch.alpha.logits().to_kind(Kind::Double).logsumexp([-1], false).mean(Kind::Double);
            terms.beta_decay = Some(f64::try_from(&value).expect("a scalar"));
            parts.push(value * self.beta_decay_weight(t));
        }
        Some((Tensor::stack(&parts, 0).sum(Kind::Double), terms))
    }

    /// FasterSeg's adaptive rule: the cost weight for the next epoch given the decoded
    /// network's cost (unchanged without `adapt` or inside the band).
    pub fn adapt(&self, weight: f64, decoded: f64) -> f64 {
        match &self.config.cost {
            Some(c) if c.adapt && decoded > c.target * (1.0 + c.band) => weight * c.factor,
            Some(c) if c.adapt && decoded < c.target * (1.0 - c.band) => weight / c.factor,
            _ => weight,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::run_config::{AuxSkipConfig, BetaDecayConfig, Schedule};

    #[test]
    fn schedules_rise_and_fall_as_documented() {
        let config = ArchConfig {
            beta_decay: Some(BetaDecayConfig { weight: 2.0, schedule: Schedule::Linear }),
            aux_skip: Some(AuxSkipConfig { start: 1.0, schedule: Schedule::Cosine }),
            ..Default::default()
        };
        let model = SearchNetworkConfig { layers: 2, blocks: 2, filter_multiplier: 2, ..Default::default() };
        let loss = ArchLoss::new(&config, &model).unwrap();
        assert_eq!([0.0, 0.25, 1.0].map(|t| loss.beta_decay_weight(t)), [0.0, 0.5, 2.0]);
        assert!((loss.aux_skip(0.0) - 1.0).abs() < 1e-12 && loss.aux_skip(1.0).abs() < 1e-12);
        assert!((loss.aux_skip(0.5) - 0.5).abs() < 1e-12);
        assert_eq!(Schedule::Constant.factor(0.7, true), 1.0);
    }

    #[test]
    fn the_adaptive_rule_moves_the_weight_towards_the_band() {
        let cost = CostConfig {
            kind: trellis::CostKind::Params,
            target: 100.0,
            weight: 1.0,
            adapt: true,
            band: 0.1,
            factor: 2.0,
            height: 64,
            width: 64,
            filter_multiplier: 2,
            stem_channels: trellis::PAPER_STEM_CHANNELS,
            table: None,
        };
        let config = ArchConfig { cost: Some(cost), ..Default::default() };
        let model = SearchNetworkConfig { layers: 2, blocks: 2, filter_multiplier: 2, ..Default::default() };
        let loss = ArchLoss::new(&config, &model).unwrap();
        assert_eq!([loss.adapt(1.0, 120.0), loss.adapt(1.0, 105.0), loss.adapt(1.0, 80.0)], [2.0, 1.0, 0.5]);
    }
}
