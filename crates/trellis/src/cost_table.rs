//! Building a [`CostTable`]: every [`Component`] of the deployable network (paper §5.2) built on
//! its own, exactly as [`crate::DecodedNetwork`] builds it, then counted (multiply-adds on an
//! empty batch, as `search summary` counts, and trainable parameters) and, for a latency table,
//! timed on a device at the deployment size: `warmup` untimed forward passes of one image,
//! then the median of `repeats` timed ones, in inference mode without gradients (FasterSeg's
//! lookup table, Chen et al., ICLR 2020, §3.3).

use std::cell::RefCell;
use std::collections::HashMap;
use std::time::Instant;

use cell::{count_multiply_adds, OpConfig, OpStyle, ReluConvBn, Widths};
use seg::conv::{resize_bilinear, ConvBn};
use seg::{AsppConfig, DecoderConfig};
use tch::{nn, nn::ModuleT, Device, Kind, Tensor};

use std::path::Path;

use crate::cost::{
    components, Component, Cost, CostError, CostKind, CostModel, CostTable, Entry, Feature, Measurement, TableSpec,
};
use crate::network::level_sizes;
use crate::space::downsample;

/// How latencies are measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    pub device: Device,
    pub warmup: usize,
    pub repeats: usize,
}

/// One component, built: its forward pass on a batch of `n` images (random inputs, made on the
/// first call for each `n`).
type Forward = Box<dyn Fn(i64) -> Tensor>;

impl TableSpec {
    fn widths(&self) -> Widths {
        Widths::new(self.filter_multiplier, self.blocks)
    }

    /// Channels, spatial size and level of a feature.
    fn feature(&self, feature: Feature) -> (i64, (i64, i64), usize) {
        let sizes = level_sizes(self.height, self.width);
        match feature {
            Feature::Stem1 => (self.stem_channels[1], ((self.height - 1) / 2 + 1, (self.width - 1) / 2 + 1), 0),
            Feature::Stem2 => (self.stem_channels[2], sizes[0], 0),
            Feature::Cell(level) => (self.widths().cell(level as usize), sizes[level as usize], level as usize),
        }
    }

    /// Builds `component` under `p` (on `device`) and returns its forward pass.
    fn build(&self, component: Component, p: &nn::Path, device: Device) -> Forward {
        let sizes = level_sizes(self.height, self.width);
        let widths = self.widths();
        // Inputs are made once per batch size and reused, so that timing measures the
        // component alone.
        let cache: RefCell<HashMap<[i64; 4], Tensor>> = RefCell::default();
        let input = move |n: i64, c: i64, (h, w): (i64, i64)| {
            let mut cache = cache.borrow_mut();
            cache
                .entry([n, c, h, w])
                .or_insert_with(|| Tensor::randn([n, c, h, w], (Kind::Float, device)))
                .shallow_clone()
        };
        let (height, width, classes) = (self.height, self.width, self.classes);
        let [c0, c1, c2] = self.stem_channels;
        match component {
            Component::Stem => {
                let stem = [
                    ConvBn::new(&(p / "stem0"), 3, c0, 3, 2, 1),
                    ConvBn::new(&(p / "stem1"), c0, c1, 3, 1, 1),
                    ConvBn::new(&(p / "stem2"), c1, c2, 3, 2, 1),
                ];
                Box::new(move |n| {
                    let x = stem[0].forward_t(&input(n, 3, (height, width)), false).relu();
                    let prev_prev = stem[1].forward_t(&x, false);
                    stem[2].forward_t(&prev_prev.relu(), false)
                })
            }
            Component::Prev { from, to } => {
                let (c_in, size, level) = self.feature(from);
                let conv = ReluConvBn::new(p, c_in, widths.block(to as usize), 1, 1, true);
                let target = sizes[to as usize];
                Box::new(move |n| {
                    let x = input(n, c_in, size);
                    let x = if (to as usize) < level { resize_bilinear(&x, target.0, target.1) } else { x };
                    conv.forward_t(&x, false)
                })
            }
            Component::PrevPrev { from, at, to } => {
                let (c_in, size, _) = self.feature(from);
                let c = widths.block(to as usize);
                let conv = (c_in != c).then(|| ReluConvBn::new(p, c_in, c, 1, 1, true));
                let target = sizes[at as usize];
                Box::new(move |n| {
                    let mut x = input(n, c_in, size);
                    if size != target {
                        x = x.upsample_bilinear2d([target.0, target.1], true, None, None);
                    }
                    match &conv {
                        Some(conv) => conv.forward_t(&x, false),
                        None => x,
                    }
                })
            }
            Component::Op { op, level, stride } => {
                let c = widths.block(level as usize);
                let config = OpConfig { primitive: op, channels: c, stride: stride as i64, style: OpStyle::Deployed };
                let op = config.build(p).expect("components hold no `none`");
                let size = sizes[level as usize + 1 - stride as usize];
                Box::new(move |n| op.forward_t(&input(n, c, size), false))
            }
            Component::Aspp { level } => {
                let c = widths.cell(level as usize);
                let aspp = AsppConfig::deeplab(c, downsample(level as usize)).build(p);
                let size = sizes[level as usize];
                Box::new(move |n| resize_bilinear(&aspp.forward_t(&input(n, c, size), false), sizes[0].0, sizes[0].1))
            }
            Component::Decoder { low_level } => {
                let (c_low, _, _) = self.feature(low_level);
                let decoder = DecoderConfig::deeplab(c_low, classes).build(p);
                let aspp_channels = AsppConfig::deeplab(widths.cell(0), 4).channels;
                Box::new(move |n| {
                    decoder.forward_t(
                        &input(n, aspp_channels, sizes[0]),
                        &input(n, c_low, sizes[0]),
                        height,
                        width,
                        false,
                    )
                })
            }
        }
    }
}

/// The cost model of `kind` for networks of `spec`: from the table at `table` when given
/// (checked against `spec`; the file is named in errors), else counted from the components
/// themselves (multiply-adds and parameters only).
pub fn cost_model(kind: CostKind, table: Option<&Path>, spec: &TableSpec) -> Result<CostModel, CostError> {
    let (table, origin) = match table {
        Some(path) => {
            let origin = path.display().to_string();
            let table = CostTable::load(path)?;
            table.check(&origin, spec)?;
            (table, origin)
        }
        None if kind == CostKind::Latency => return Err(CostError::NoTable),
        None => (build_table(spec, None), "counted".to_string()),
    };
    table.model(kind, &origin)
}

/// Milliseconds of `forward` on one image (its argument is the batch size, 1 here): the median
/// of `repeats` runs after `warmup`, synchronised on CUDA.
pub fn time_ms(forward: &dyn Fn(i64) -> Tensor, timing: &Timing) -> f64 {
    let sync = || {
        if let Device::Cuda(index) = timing.device {
            tch::Cuda::synchronize(index as i64);
        }
    };
    for _ in 0..timing.warmup {
        let _ = forward(1);
    }
    sync();
    let mut runs: Vec<f64> = (0..timing.repeats.max(1))
        .map(|_| {
            let start = Instant::now();
            let _ = forward(1);
            sync();
            start.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    runs.sort_by(f64::total_cmp);
    runs[runs.len() / 2]
}

/// The table of `spec`: multiply-adds and parameters of every component, and with `timing` its
/// measured latency. `measurement` describes the timing (device, versions) for the file.
pub fn build_table(spec: &TableSpec, timing: Option<(&Timing, Measurement)>) -> CostTable {
    let device = timing.as_ref().map_or(Device::Cpu, |(t, _)| t.device);
    let entries = tch::no_grad(|| {
        components()
            .into_iter()
            .map(|component| {
                let vs = nn::VarStore::new(device);
                let forward = spec.build(component, &vs.root(), device);
                let params =
                    vs.variables().values().filter(|t| t.requires_grad()).fold(0.0, |n, t| n + t.numel() as f64);
                let (_, macs) = count_multiply_adds(|| forward(0));
                let latency_ms = timing.as_ref().map(|(t, _)| time_ms(&forward, t));
                Entry { component, cost: Cost { macs: macs as f64, params, latency_ms } }
            })
            .collect()
    });
    CostTable {
        height: spec.height,
        width: spec.width,
        filter_multiplier: spec.filter_multiplier,
        blocks: spec.blocks,
        classes: spec.classes,
        stem_channels: spec.stem_channels,
        measurement: timing.map(|(_, m)| m),
        entries,
    }
}
