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
    /// Where to run.
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
    let text = report_text(&report, total);
    print!("{text}");
    write_report(&report, total, &text)?;
    println!("{total:.0} s in all; everything is in {} (report.md, report.json, report.svg)", out.display());
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    }
    Ok(())
}

/// The demo's headline in words: the architecture, the stages' times, searched against random,
/// the entropies and margins (percent with two decimals, entropies and margins with three).
fn report_text(report: &search::tasks::demo::DemoReport, total: f64) -> String {
    use std::fmt::Write;
    let mut t = String::new();
    let _ = writeln!(t, "decoded cell: {}", serde_json::to_string(&report.architecture.cell).unwrap_or_default());
    let _ = writeln!(t, "decoded path: {:?}", report.architecture.path.levels());
    for (stage, seconds) in &report.seconds {
        let _ = writeln!(t, "{stage:>9}: {seconds:6.1} s");
    }
    let _ = writeln!(
        t,
        "searched network, retrained:  val mIoU {:5.2} %  (from its label-id PNGs: {:5.2} %)",
        100.0 * report.searched_miou,
        100.0 * report.predicted_files_miou
    );
    let _ = writeln!(
        t,
        "search ended with α entropy {:.3}, β entropy {:.3} (1 = uniform, 0 = decided)",
        report.alpha_entropy, report.beta_entropy
    );
    let _ = match &report.margins {
        Some(m) => writeln!(
            t,
            "decision margins (chosen weight minus runner-up): α {:.3} per kept edge, β {:.3} per node ({:.3} on the path); closest call {:.3}{}",
            m.alpha_mean,
            m.beta_mean,
            m.beta_path_mean,
            m.closest,
            if m.closest < cell::genotype::NEAR_TIE_MARGIN { " (a near tie)" } else { "" }
        ),
        None => writeln!(t, "decision margins: not recorded by this search"),
    };
    if let Some((layer, margin)) = report.margins.as_ref().and_then(|m| m.path_closest()) {
        let _ = writeln!(
            t,
            "closest call on the path: layer {layer}, path margin {margin:.3}{}",
            if margin < cell::genotype::NEAR_TIE_MARGIN {
                " (a near tie: a path through another node there scores almost as well)"
            } else {
                ""
            }
        );
    }
    if let Some(d) = &report.decided {
        let _ = writeln!(
            t,
            "progressive decisions fixed the blocks at block margins {:.3} to {:.3}{}",
            d.smallest,
            d.largest,
            if d.near_tie {
                format!(" (block {} at the end of epoch {}: a near tie when decided)", d.block, d.epoch)
            } else {
                String::new()
            }
        );
    }
    if !report.undecided.is_empty() {
        let _ = writeln!(
            t,
            "blocks {:?} were never certain enough to fix (margin below arch.progressive.min_margin) and were decoded by their argmax",
            report.undecided
        );
    }
    if !report.random_mious.is_empty() {
        let list: Vec<String> = report.random_mious.iter().map(|m| format!("{:.2}", 100.0 * m)).collect();
        let _ = writeln!(
            t,
            "{} random architectures, same recipe: val mIoU {:5.2} ± {:.2} %  ({})",
            report.random_mious.len(),
            100.0 * report.random_mean,
            100.0 * report.random_std,
            list.join(", ")
        );
        let points = 100.0 * (report.searched_miou - report.random_mean);
        let rank = format!("searched network ranks {} of {}", report.rank, report.random_mious.len() + 1);
        let _ = match margin_sd(report) {
            None => writeln!(t, "{rank}; {points:+.2} points from the random mean: target not judged (it needs a spread: --random 2 or more)"),
            Some(margin) => writeln!(
                t,
                "{rank}; {points:+.2} points from the random mean ({margin:+.2} standard deviations): target (>= +1 sd) {}",
                if margin >= 1.0 { "met" } else { "missed" }
            ),
        };
    }
    let _ = writeln!(t, "per-pixel baseline (1x1 conv): val mIoU {:5.2} %", 100.0 * report.baseline_miou);
    let _ = writeln!(t, "{total:.1} s in all");
    t
}

/// How many random standard deviations the searched network lies above the random mean.
fn margin_sd(report: &search::tasks::demo::DemoReport) -> Option<f64> {
    (report.random_mious.len() >= 2 && report.random_std > 0.0)
        .then(|| (report.searched_miou - report.random_mean) / report.random_std)
}

/// `report.json` (the report, the margin in sd, the total time and where the pictures are),
/// `report.md` (the text) and `report.svg` (searched against random) in the demo's folder.
fn write_report(report: &search::tasks::demo::DemoReport, total: f64, text: &str) -> Result<()> {
    let out = &report.out;
    let pictures: Vec<String> =
        ["search/arch/cell.png", "search/arch/path.png", "search/arch/alpha.png", "search/arch/beta.png", "report.svg"]
            .iter()
            .filter(|p| **p == "report.svg" || out.join(p).is_file())
            .map(|p| out.join(p).display().to_string())
            .collect();
    let mut json = serde_json::to_value(report)?;
    json["margin_sd"] = serde_json::json!(margin_sd(report));
    json["total_seconds"] = serde_json::json!(total);
    json["pictures"] = serde_json::json!(pictures);
    search::store::rundir::write_file(
        &out.join("report.json"),
        (serde_json::to_string_pretty(&json)? + "\n").as_bytes(),
    )?;
    let md = format!("# search demo\n\n```text\n{text}```\n\n![searched against random](report.svg)\n");
    search::store::rundir::write_file(&out.join("report.md"), md.as_bytes())?;
    let searched = [100.0 * report.searched_miou];
    let random: Vec<f64> = report.random_mious.iter().map(|m| 100.0 * m).collect();
    let strips = [
        search::observe::plots::Strip {
            name: "searched",
            colour: plotters::style::RGBColor(200, 40, 40),
            values: &searched,
            mean: searched[0],
        },
        search::observe::plots::Strip {
            name: "random",
            colour: plotters::style::RGBColor(90, 90, 90),
            values: &random,
            mean: 100.0 * report.random_mean,
        },
    ];
    search::observe::plots::strip_plot(
        &out.join("report.svg"),
        "search demo: the searched network against random ones (val mIoU %)",
        &strips,
        100.0 * report.random_mean,
        "val mIoU %",
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use search::tasks::demo::{DemoReport, MarginsRecord};
    use trellis::progressive::DecidedMargins;

    fn report() -> DemoReport {
        DemoReport {
            out: "demo".into(),
            architecture: trellis::Architecture::paper(),
            searched_miou: 0.6,
            predicted_files_miou: 0.6,
            random_mious: vec![0.5, 0.52, 0.54],
            random_mean: 0.52,
            random_std: 0.02,
            rank: 1,
            alpha_entropy: 0.0,
            beta_entropy: 0.9,
            margins: Some(MarginsRecord {
                alpha_mean: 1.0,
                beta_mean: 0.13,
                beta_path_mean: 0.16,
                closest: 1.0,
                beta_path: vec![0.0001, 0.2, 0.2, 0.1],
                path: vec![0.3, 0.005, 0.2, 0.1],
            }),
            decided: None,
            undecided: Vec::new(),
            baseline_miou: 0.3,
            seconds: vec![("search".into(), 1.0)],
        }
    }

    /// The report says the margins each block was fixed at, names a near tie when one was
    /// fixed, and names the blocks that were never certain enough to fix.
    #[test]
    fn the_report_gives_the_decided_margins_and_the_undecided_blocks() {
        let mut r = report();
        let text = report_text(&r, 10.0);
        assert!(!text.contains("progressive decisions") && !text.contains("never certain"), "{text}");
        r.decided = Some(DecidedMargins { smallest: 0.011, block: 0, epoch: 8, largest: 0.022, near_tie: false });
        let text = report_text(&r, 10.0);
        assert!(text.contains("progressive decisions fixed the blocks at block margins 0.011 to 0.022\n"), "{text}");
        r.decided = Some(DecidedMargins { smallest: 0.004, block: 2, epoch: 4, largest: 0.022, near_tie: true });
        r.undecided = vec![1, 3];
        let text = report_text(&r, 10.0);
        assert!(text.contains("(block 2 at the end of epoch 4: a near tie when decided)"), "{text}");
        assert!(text.contains("blocks [1, 3] were never certain enough to fix"), "{text}");
        assert!(text.contains("+4.00 standard deviations"), "{text}");
        assert!(text.contains("closest call on the path: layer 1, path margin 0.005 (a near tie"), "{text}");
        r.margins.as_mut().unwrap().path = vec![0.3, 0.05];
        assert!(report_text(&r, 1.0).contains("closest call on the path: layer 1, path margin 0.050\n"));
    }
}
