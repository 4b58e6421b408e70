//! `search compare`: the whole comparison protocol in one command (`search::tasks::compare`).

use std::path::PathBuf;

use anyhow::{Context, Result};
use search::device::DeviceChoice;
use search::run_config::{RetrainConfig, SearchRunConfig};
use search::tasks::compare::{CompareOptions, ComparePlan, Growth};

#[derive(clap::Args)]
pub struct Args {
    /// The search config: the space (its `model.blocks`, `model.layers`) and, without --arch,
    /// the search to run.
    #[arg(long, value_name = "FILE.toml")]
    search_config: Option<PathBuf>,
    /// Override a key of the search config (repeatable).
    #[arg(long = "set-search", value_name = "KEY=VALUE")]
    search_overrides: Vec<String>,
    /// The retraining config every architecture gets.
    #[arg(long, value_name = "FILE.toml")]
    retrain_config: Option<PathBuf>,
    /// Override a key of the retraining config (repeatable).
    #[arg(long = "set-retrain", value_name = "KEY=VALUE")]
    retrain_overrides: Vec<String>,
    /// The searched architecture (a JSON file, e.g. a run's arch/final.json); without it the
    /// search runs first, inside the comparison folder.
    #[arg(long)]
    arch: Option<String>,
    /// Data set root, for the search and every retraining (overrides `data.root`).
    #[arg(long)]
    data: Option<PathBuf>,
    /// Data set layout, for the search and every retraining (overrides `data.format`).
    #[arg(long, value_enum)]
    format: Option<seg::data::DataFormat>,
    /// Random architectures drawn from the same space (default 8). With --resume: raise it to
    /// draw more (the first ones are the same).
    #[arg(long)]
    random: Option<usize>,
    /// Retraining seeds per architecture (default 2). With --resume: raise it to retrain every
    /// architecture with more seeds, keeping the finished ones.
    #[arg(long)]
    seeds: Option<usize>,
    /// Retraining seeds per random draw, when not --seeds (default: --seeds; with --random-from,
    /// the reference's). With --resume: raise it.
    #[arg(long)]
    random_seeds: Option<usize>,
    /// Take over the finished retrainings of the random draws from this earlier comparison (the
    /// same space, --seed, retraining config and data; refused otherwise, naming what differs)
    /// instead of running them again; --random and --random-seeds default to its counts, and a
    /// draw or seed it lacks is retrained here.
    #[arg(long, value_name = "DIR", conflicts_with = "resume")]
    random_from: Option<PathBuf>,
    /// Seed of the random draws.
    #[arg(long, default_value_t = 0, conflicts_with = "resume")]
    seed: u64,
    /// Also retrain this many random architectures whose cells have as many `skip_connect`
    /// edges as the searched cell (the control for the skip-connection bias; default 0). With
    /// --resume: raise it to draw more.
    #[arg(long)]
    skip_control: Option<usize>,
    /// Searches to run (seeds `seed` of the search config, + 1, …), each decoded architecture
    /// retrained like the others and the group's mean compared: how the search does, not one
    /// search's luck. Needs --search-config without --arch (default 1). With --resume: raise it
    /// to run more searches.
    #[arg(long)]
    searches: Option<usize>,
    /// With --searches ≥ 2, also pick one of the searches' architectures as DARTS does (Liu et
    /// al. 2019, §3.2): each is retrained with the retraining config on trainA of the training
    /// split and scored on trainB, and the other way round (never the val split); the best mean
    /// is reported as `selected` and written to `selected.json`. With --resume: add the selection
    /// to a comparison of several searches.
    #[arg(long)]
    select: bool,
    /// With --select, retraining seeds per fold (the retraining config's seed, + 1, …): each
    /// search's held-out score is the mean over both folds and these seeds, less noisy, at
    /// 2 × seeds retrainings on half the data per search (default 1). With --resume: raise it.
    #[arg(long)]
    select_seeds: Option<usize>,
    /// The comparison's folder (must be new or empty).
    #[arg(long, conflicts_with = "resume")]
    out: Option<PathBuf>,
    /// Continue the comparison in this folder with its own plan: no other settings, but
    /// --seeds, --random, --random-seeds, --skip-control, --searches, --select and --select-seeds may raise its
    /// counts (every finished retraining is kept).
    #[arg(long)]
    resume: Option<PathBuf>,
    /// Where to run.
    #[arg(long, value_enum, default_value_t = DeviceChoice::Auto)]
    device: DeviceChoice,
    /// Start this many ranks on this machine (as `search run`); the retrainings are shared out.
    #[arg(long)]
    nproc_per_node: Option<usize>,
    /// How long a rank waits for the others in any collective before it stops with an error.
    #[arg(long, default_value_t = 300)]
    dist_timeout_s: u64,
}

impl Args {
    /// `data.root` and `data.format` overrides from --data and --format, last (so that what a
    /// config reads from the data root comes from this one).
    fn data_overrides(&self, mut overrides: Vec<String>) -> Vec<String> {
        if let Some(format) = self.format {
            overrides.push(format!("data.format={}", toml::Value::String(format.to_string())));
        }
        if let Some(data) = &self.data {
            let root = std::fs::canonicalize(data).unwrap_or_else(|_| data.clone());
            overrides.push(format!("data.root={}", toml::Value::String(root.display().to_string())));
        }
        overrides
    }

    /// The counts --resume is asked to raise.
    fn growth(&self) -> Growth {
        Growth {
            random: self.random,
            seeds: self.seeds,
            skip_control: self.skip_control,
            searches: self.searches,
            select: self.select,
            select_seeds: self.select_seeds,
            random_seeds: self.random_seeds,
        }
    }

    fn plan(&self) -> Result<ComparePlan> {
        let retrain_flags = super::ConfigFlags {
            config: self.retrain_config.clone(),
            overrides: self.data_overrides(self.retrain_overrides.clone()),
        };
        let retrain: RetrainConfig = retrain_flags.load().context("the retraining config (--retrain-config)")?;
        let searched = match &self.arch {
            Some(spec) => Some(search::arch_source::resolve(spec).context("reading --arch")?),
            None => None,
        };
        let search: Option<SearchRunConfig> = match (&self.search_config, &searched) {
            (None, Some(_)) => None,
            (None, None) => anyhow::bail!("say what to compare: --search-config FILE (runs the search) or --arch FILE"),
            (Some(file), _) => {
                let flags = super::ConfigFlags {
                    config: Some(file.clone()),
                    overrides: self.data_overrides(self.search_overrides.clone()),
                };
                Some(flags.load().context("the search config (--search-config)")?)
            }
        };
        let (blocks, layers) = match (&search, &searched) {
            (Some(s), _) => (s.model.blocks, s.model.layers),
            (None, Some(a)) => (a.cell.num_blocks(), a.path.levels().len()),
            (None, None) => unreachable!("checked above"),
        };
        if let (Some(_), Some(a)) = (&search, &searched) {
            anyhow::ensure!(
                (a.cell.num_blocks(), a.path.levels().len()) == (blocks, layers),
                "--arch has B = {} and L = {}, the search config's space B = {blocks} and L = {layers}",
                a.cell.num_blocks(),
                a.path.levels().len()
            );
        }
        let reference = match &self.random_from {
            Some(dir) => Some(ComparePlan::read_reference(dir)?),
            None => None,
        };
        let plan = ComparePlan {
            search: if searched.is_some() { None } else { search },
            searched,
            blocks,
            layers,
            retrain,
            random: self.random.or(reference.as_ref().map(|r| r.random)).unwrap_or(8),
            seeds: self.seeds.unwrap_or(2),
            draw_seed: self.seed,
            skip_control: self.skip_control.unwrap_or(0),
            searches: self.searches.unwrap_or(1),
            select: self.select,
            select_seeds: self.select_seeds.unwrap_or(1),
            random_seeds: self.random_seeds.or(reference.as_ref().map(ComparePlan::random_seeds)),
            random_from: match &self.random_from {
                Some(dir) => {
                    Some(std::fs::canonicalize(dir).with_context(|| format!("--random-from {}", dir.display()))?)
                }
                None => None,
            },
        };
        plan.validate()?;
        if let (Some(reference), Some(dir)) = (&reference, &plan.random_from) {
            plan.check_reference(reference, dir)?;
        }
        Ok(plan)
    }
}

pub fn exec(args: Args) -> Result<()> {
    if let Some(n) = args.nproc_per_node {
        let all: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
        return search::dist::launch::run_local(n, &search::dist::launch::arguments_without_nproc(&all));
    }
    let timeout = std::time::Duration::from_secs(args.dist_timeout_s);
    let (device, ranks) = search::dist::join_from_env(args.device.resolve()?, timeout)?;
    let (plan, out, resume) = match &args.resume {
        Some(dir) => {
            anyhow::ensure!(
                args.search_config.is_none()
                    && args.retrain_config.is_none()
                    && args.arch.is_none()
                    && args.data.is_none()
                    && args.format.is_none()
                    && args.search_overrides.is_empty()
                    && args.retrain_overrides.is_empty(),
                "--resume continues a comparison with its own plan: drop --search-config, --retrain-config, --arch, \
                 --data, --format and every --set-*"
            );
            // Rank 0 reads the plan for every rank.
            let path = dir.join("plan.json");
            let read = seg::limits::read_text(&path).map(String::into_bytes).with_context(|| {
                format!("--resume {}: reading {} (is it a comparison folder?)", dir.display(), path.display())
            });
            let text = String::from_utf8(ranks.from_rank0(read)?)?;
            let plan: ComparePlan =
                serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
            plan.validate().with_context(|| format!("checking {}", path.display()))?;
            let plan = plan.grown(&args.growth()).with_context(|| format!("growing {}", path.display()))?;
            (plan, dir.clone(), true)
        }
        None => (
            args.plan()?,
            args.out.clone().context("say where the comparison goes: --out DIR (or --resume DIR)")?,
            false,
        ),
    };
    let options = CompareOptions { plan, out, resume, device, ranks };
    if let Some(report) = search::tasks::compare::run(&options)? {
        print!("{}", search::tasks::compare::markdown(&report));
        println!("\nwritten: {}/compare.json, compare.md, compare.svg", options.out.display());
    }
    Ok(())
}
