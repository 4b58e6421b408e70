//! `search cost`: the expected cost of raw α and β (the relaxed architecture), the cost of the
//! architecture they decode to, and the probability of every node of the trellis
//! (docs/cost-aware.md).

use std::path::PathBuf;

use anyhow::{Context, Result};
use search::device::DeviceChoice;
use serde::Serialize;
use tch::Kind;
use trellis::{CostKind, RelaxedCell};

#[derive(clap::Args)]
pub struct Args {
    /// Raw parameters, as `search decode` takes them: a search run folder, a checkpoint
    /// folder, a safetensors file or JSON of raw logits.
    #[arg(long)]
    params: PathBuf,
    /// What to count: `macs` (multiply-adds), `params` (parameters) or `latency` (ms, from
    /// `--table`).
    #[arg(long, default_value = "macs")]
    kind: CostKind,
    /// A latency table from `search cost-table` (required for `--kind latency`).
    #[arg(long)]
    table: Option<PathBuf>,
    #[command(flatten)]
    deployment: super::DeploymentFlags,
    /// Also time the decoded network itself (one image, inference) on `--device`, to compare
    /// with a latency table's sum of components.
    #[arg(long)]
    measure: bool,
    /// Where `--measure` runs.
    #[arg(long, value_enum, default_value_t = DeviceChoice::Auto)]
    device: DeviceChoice,
    /// Untimed and timed runs of `--measure` (the median is reported).
    #[arg(long, default_value_t = 3)]
    warmup: usize,
    #[arg(long, default_value_t = 10)]
    repeats: usize,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

/// What `search cost` reports.
#[derive(Debug, Serialize)]
struct Report {
    kind: &'static str,
    unit: &'static str,
    height: i64,
    width: i64,
    filter_multiplier: i64,
    /// E[cost] under the relaxed architecture.
    expected: f64,
    /// The cost of the decoded architecture.
    decoded: f64,
    architecture: trellis::Architecture,
    /// Per layer, the probability of each level (rates 4, 8, 16, 32).
    node_probabilities: Vec<Vec<f64>>,
    /// With `--measure`: the decoded network's own latency, ms (median).
    #[serde(skip_serializing_if = "Option::is_none")]
    decoded_measured_ms: Option<f64>,
}

/// The median latency of the decoded network of `architecture` on one image, ms.
fn measure(args: &Args, d: &super::Deployment, architecture: &trellis::Architecture) -> Result<f64> {
    let device = args.device.resolve()?;
    let vs = tch::nn::VarStore::new(device);
    let config = trellis::DecodedNetworkConfig {
        architecture: architecture.clone(),
        filter_multiplier: d.filter_multiplier,
        classes: d.classes,
        stem_channels: d.stem(),
    };
    let net = config.build(&vs.root());
    let timing = trellis::Timing { device, warmup: args.warmup, repeats: args.repeats };
    let image = tch::Tensor::randn([1, 3, d.height(), d.width()], (Kind::Float, device));
    let forward = |n: i64| net.forward_t(&image.narrow(0, 0, n), false);
    Ok(tch::no_grad(|| trellis::cost_table::time_ms(&forward, &timing)))
}

pub fn exec(args: Args) -> Result<()> {
    // A run folder's own F, classes and image size, unless the flags say otherwise.
    let d = args.deployment.resolve(Some(&args.params))?;
    let params = super::decode::params_path(&args.params)?;
    let raw = trellis::read_raw(&params).context("reading --params")?;
    let architecture = trellis::decode_with_edges(&raw.alpha, &raw.beta, raw.edges.as_ref(), &raw.file)
        .context("decoding --params")?;
    let blocks = architecture.cell.num_blocks();
    let spec = d.spec(blocks);
    anyhow::ensure!(
        args.table.is_some() || args.kind != CostKind::Latency,
        "--kind latency needs --table (write one with `search cost-table`)"
    );
    let model = trellis::cost_model(args.kind, args.table.as_deref(), &spec).context("--table")?;
    let cell = RelaxedCell::new(&raw.alpha, raw.edges.as_ref(), blocks);
    let expected = tch::no_grad(|| model.expected(&cell, &trellis::normalize_beta(&raw.beta.to_kind(Kind::Double))));
    let nodes = Vec::<f64>::try_from(expected.nodes.flatten(0, -1))?;
    let decoded_measured_ms = args.measure.then(|| measure(&args, &d, &architecture)).transpose()?;
    let report = Report {
        kind: args.kind.name(),
        unit: args.kind.unit(),
        height: d.height(),
        width: d.width(),
        filter_multiplier: d.filter_multiplier,
        expected: f64::try_from(&expected.cost)?,
        decoded: model.architecture_cost(&architecture),
        architecture,
        node_probabilities: nodes.chunks(4).map(|c| c.to_vec()).collect(),
        decoded_measured_ms,
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        let scale = |v: f64| match args.kind {
            CostKind::Macs => format!("{:.3}B multiply-adds", v / 1e9),
            CostKind::Params => format!("{:.3}M parameters", v / 1e6),
            CostKind::Latency => format!("{v:.3} ms"),
        };
        println!("at {}x{}, F = {}:", d.width(), d.height(), d.filter_multiplier);
        println!("expected under (α, β): {}", scale(report.expected));
        println!("decoded (path {:?}): {}", report.architecture.path.levels(), scale(report.decoded));
        if let Some(ms) = report.decoded_measured_ms {
            println!("decoded, measured as a whole on {:?}: {ms:.3} ms", args.device);
        }
        println!("node probabilities (rows: layers; columns: rates 4, 8, 16, 32):");
        for (l, row) in report.node_probabilities.iter().enumerate() {
            let cells: Vec<String> = row.iter().map(|p| format!("{p:.3}")).collect();
            println!("  layer {l:>2}: {}", cells.join("  "));
        }
    }
    Ok(())
}
