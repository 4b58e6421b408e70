//! `search demo`: the whole chain on synthetic data.

use std::path::PathBuf;

use anyhow::Result;
use search::device::DeviceChoice;
use search::observe::env::EnvReport;

#[derive(clap::Args)]
pub struct Args {
    /// Output folder (default: runs/demo-<unix time>).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Override a key of the built-in search config (configs/demo-search.toml).
    #[arg(long = "set-search", value_name = "KEY=VALUE")]
    search_overrides: Vec<String>,
    /// Override a key of the built-in retraining config (configs/demo-retrain.toml).
    #[arg(long = "set-retrain", value_name = "KEY=VALUE")]
    retrain_overrides: Vec<String>,
    /// Seed of the data, the search, the retrainings and the random architectures.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Random architectures from the same space to retrain beside the searched one.
    #[arg(long, default_value_t = 4)]
    random: usize,
    #[arg(long, value_enum, default_value_t = DeviceChoice::Auto)]
    device: DeviceChoice,
    /// Also print the report as JSON.
    #[arg(long)]
    json: bool,
}

pub fn exec(args: Args) -> Result<()> {
    let device = args.device.resolve()?;
    let out = args.out.clone().unwrap_or_else(|| {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
        PathBuf::from("runs").join(format!("demo-{now}"))
    });
    let start = std::time::Instant::now();
    print!("{}", EnvReport::collect().to_text());
    let options = search::tasks::demo::DemoOptions {
        out: out.clone(),
        device,
        seed: args.seed,
        random: args.random,
        search_overrides: args.search_overrides,
        retrain_overrides: args.retrain_overrides,
    };
    let report = search::tasks::demo::run(&options)?;
    let total = start.elapsed().as_secs_f64();
    println!("decoded cell: {}", serde_json::to_string(&report.architecture.cell)?);
    println!("decoded path: {:?}", report.architecture.path.levels());
    for (stage, seconds) in &report.seconds {
        println!("{stage:>9}: {seconds:6.1} s");
    }
    println!(
        "searched network, retrained:  val mIoU {:5.2} %  (from its label-id PNGs: {:5.2} %)",
        100.0 * report.searched_miou,
        100.0 * report.predicted_files_miou
    );
    println!(
        "search ended with α entropy {:.3}, β entropy {:.3} (1 = uniform, 0 = decided)",
        report.alpha_entropy, report.beta_entropy
    );
    match &report.margins {
        Some(m) => println!(
            "decision margins (chosen weight minus runner-up): α {:.3} per kept edge, β {:.3} per node ({:.3} on the path); closest call {:.4}{}",
            m.alpha_mean,
            m.beta_mean,
            m.beta_path_mean,
            m.closest,
            if m.closest < cell::genotype::NEAR_TIE_MARGIN { " (a near tie)" } else { "" }
        ),
        None => println!("decision margins: not recorded by this search"),
    }
    if !report.random_mious.is_empty() {
        let list: Vec<String> = report.random_mious.iter().map(|m| format!("{:.2}", 100.0 * m)).collect();
        println!(
            "{} random architectures, same recipe: val mIoU {:5.2} ± {:.2} %  ({})",
            report.random_mious.len(),
            100.0 * report.random_mean,
            100.0 * report.random_std,
            list.join(", ")
        );
        let points = 100.0 * (report.searched_miou - report.random_mean);
        let rank = format!("searched network ranks {} of {}", report.rank, report.random_mious.len() + 1);
        if report.random_mious.len() < 2 || report.random_std == 0.0 {
            println!("{rank}; {points:+.2} points from the random mean: target not judged (it needs a spread: --random 2 or more)");
        } else {
            let margin = (report.searched_miou - report.random_mean) / report.random_std;
            println!(
                "{rank}; {points:+.2} points from the random mean ({margin:+.2} standard deviations): target (>= +1 sd) {}",
                if margin >= 1.0 { "met" } else { "missed" }
            );
        }
    }
    println!("per-pixel baseline (1x1 conv): val mIoU {:5.2} %", 100.0 * report.baseline_miou);
    println!("{total:.0} s in all; everything is in {}", out.display());
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    }
    Ok(())
}
