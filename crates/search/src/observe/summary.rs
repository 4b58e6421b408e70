//! `search summary`: parameters and multiply-adds of the deployable network (paper Table 2).

use cell::count_multiply_adds;
use serde::Serialize;
use tch::{nn, Device, Kind, Tensor};
use trellis::{count_parameters, Architecture, DecodedNetworkConfig, ParameterCount};

/// What `search summary` reports.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub filter_multiplier: i64,
    pub classes: i64,
    pub height: i64,
    pub width: i64,
    pub path: Vec<u8>,
    pub parameters: ParameterCount,
    /// Multiply-adds of one image at `height x width` (convolutions only).
    pub multiply_adds: u64,
}

/// Builds the network of `architecture` at filter multiplier `f` (with the paper's stem) and
/// counts it: [`summarize_config`].
pub fn summarize(architecture: &Architecture, f: i64, classes: i64, height: i64, width: i64) -> Summary {
    let config = DecodedNetworkConfig {
        architecture: architecture.clone(),
        filter_multiplier: f,
        classes,
        stem_channels: trellis::PAPER_STEM_CHANNELS,
    };
    summarize_config(&config, height, width)
}

/// Builds the network `config` describes and counts it. The multiply-adds come from a forward
/// pass over an empty batch of the given size, which propagates shapes without computing.
pub fn summarize_config(config: &DecodedNetworkConfig, height: i64, width: i64) -> Summary {
    let vs = nn::VarStore::new(Device::Cpu);
    let (architecture, f, classes) = (&config.architecture, config.filter_multiplier, config.classes);
    let net = config.build(&vs.root());
    let parameters = count_parameters(&vs);
    let images = Tensor::zeros([0, 3, height, width], (Kind::Float, Device::Cpu));
    let (logits, multiply_adds) = count_multiply_adds(|| tch::no_grad(|| net.forward_t(&images, false)));
    assert_eq!(logits.size(), [0, classes, height, width]);
    Summary {
        filter_multiplier: f,
        classes,
        height,
        width,
        path: architecture.path.levels().to_vec(),
        parameters,
        multiply_adds,
    }
}

impl Summary {
    /// Human-readable lines.
    pub fn to_text(&self) -> String {
        let m = |n: i64| format!("{:.2}M", n as f64 / 1e6);
        format!(
            "filter multiplier F = {}, {} classes, path {:?}\nparameters: {} (backbone {}, ASPP {}, decoder {}; {} exactly)\nmultiply-adds at {}x{}: {:.2}B\n",
            self.filter_multiplier,
            self.classes,
            self.path,
            m(self.parameters.total),
            m(self.parameters.backbone),
            m(self.parameters.aspp),
            m(self.parameters.decoder),
            self.parameters.total,
            self.height,
            self.width,
            self.multiply_adds as f64 / 1e9
        )
    }
}
