//! `search compare`: the protocol that says whether a search was worth its cost (issue 24). The
//! searched architecture (given, or found by running the search) is retrained beside
//!
//! - N architectures drawn uniformly from the same space (`tasks::random`);
//! - the paper's Auto-DeepLab cell on the paper's path, cut to the space's L (facts §6);
//! - the searched cell on a fixed DeepLab-like path (rates 4, 8, then 16 to the end: DeepLabv3's
//!   output stride 16);
//! - optionally, random architectures whose cells hold exactly as many `skip_connect` edges as
//!   the searched one (the control for the skip-connection bias);
//!
//! every one with the identical retraining config for K seeds (config seed, seed + 1, …). It
//! reports mean ± sd per architecture and the ranks, Welch's t test and Hedges' g of the searched
//! network's runs against the random architectures' runs, and how many standard deviations of
//! the random architectures' means the searched mean lies above their mean; it writes
//! `compare.json`, `compare.md` and `compare.svg` (a strip plot of every retrained mIoU).
//!
//! The folder holds `plan.json` (everything the comparison was asked), `architectures/`, the
//! search runs (`search/`, `search-1/`, …), one run folder per retraining (`runs/<name>/seed<k>`;
//! `--select`'s `runs/select/<name>/fold<k>`) and one result file per finished retraining
//! (`results/<name>-seed<k>.json`, `results/select-<name>-fold<k>.json`, written atomically),
//! and with `--select` `selected.json`, the picked architecture. `--resume`
//! reads the plan and continues: finished retrainings are read back, a retraining with a
//! checkpoint resumes from it, one without restarts. A resumed comparison may grow
//! ([`Growth`]: more seeds, draws, controls or searches, for a more precise answer) and keeps
//! every finished retraining: its names and architectures are the same in the larger plan, which
//! is checked against `architectures/` before anything runs. In a distributed launch the search runs on
//! every rank together and the retrainings are shared out (retraining i on rank i mod size, each
//! alone on its rank's device); rank 0 writes the report.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use tch::Device;
use tracing::info;
use trellis::{Architecture, NetworkPath};

use crate::dist::Ranks;
use crate::run_config::{RetrainConfig, SearchRunConfig};
use crate::store::session::RunRequest;
use crate::tasks::compare_stats::{hedges_g, welch, Welch};
use crate::tasks::random::mean_std;
use crate::tasks::retrain::{Holdout, ModelChoice, RetrainOptions, RetrainOutcome};
use crate::tasks::search_run::{SearchOptions, SearchOutcome};

/// What a comparison was asked to do: `plan.json`, read back by `--resume`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ComparePlan {
    /// The searched architecture, when given; else [`ComparePlan::search`] finds it.
    pub searched: Option<Architecture>,
    /// The search to run when no architecture is given.
    pub search: Option<SearchRunConfig>,
    /// The space's cells' blocks and the trellis' layers (random draws and baselines).
    pub blocks: usize,
    pub layers: usize,
    /// The retraining every architecture gets.
    pub retrain: RetrainConfig,
    /// Random architectures.
    pub random: usize,
    /// Retraining seeds per architecture (`retrain.seed`, `+ 1`, …).
    pub seeds: usize,
    /// Seed of the random draws.
    pub draw_seed: u64,
    /// Random architectures with the searched cell's number of `skip_connect` edges.
    pub skip_control: usize,
    /// Searches run, with seeds `search.seed`, `+ 1`, … (each decoded architecture one searched
    /// entry, the group's mean what is compared); 1 with a given architecture.
    #[serde(default = "one")]
    pub searches: usize,
    /// Pick one of the searches' architectures by retrainings on one half of the training split
    /// scored on the other (DARTS §3.2, both ways round), reported as
    /// [`CompareReport::selection`].
    #[serde(default)]
    pub select: bool,
    /// With `select`: retraining seeds per fold (`retrain.seed`, `+ 1`, …), each search's
    /// held-out score the mean over folds and seeds.
    #[serde(default = "one")]
    pub select_seeds: usize,
    /// Retraining seeds per random draw, when not [`ComparePlan::seeds`] (`--random-seeds`): a
    /// reference of 8 draws × 2 seeds serves a searched network measured with 6.
    #[serde(default)]
    pub random_seeds: Option<usize>,
    /// The comparison whose finished retrainings of the same random draws, with the same
    /// retraining config, were taken over instead of being run again (`--random-from`;
    /// `tasks::compare_reference`).
    #[serde(default)]
    pub random_from: Option<PathBuf>,
}

fn one() -> usize {
    1
}

/// The counts a resumed comparison may raise (`search compare --resume DIR --seeds K …`): each
/// `None` keeps the plan's. Every finished retraining stays in the larger plan under its own
/// name (random draws and skip controls come from endless seeded sequences, searches and seeds
/// are numbered from the first), so growing loses nothing; shrinking would drop finished runs
/// from the report and is refused.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Growth {
    pub random: Option<usize>,
    pub seeds: Option<usize>,
    pub skip_control: Option<usize>,
    pub searches: Option<usize>,
    /// Turns the selection on (it cannot be turned off).
    pub select: bool,
    pub select_seeds: Option<usize>,
    pub random_seeds: Option<usize>,
}

/// Which group an architecture belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EntryKind {
    Searched,
    Random,
    /// The paper's cell and path.
    Paper,
    /// The searched cell on the DeepLab-like path.
    DeeplabPath,
    /// Random, with the searched cell's number of skips.
    SkipControl,
}

/// One architecture of the comparison.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Entry {
    pub name: String,
    pub kind: EntryKind,
    pub architecture: Architecture,
}

/// One finished retraining: `results/<name>-seed<k>.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UnitResult {
    pub name: String,
    pub seed: u64,
    pub val_miou: f64,
}

/// How `search compare` was asked to run.
pub struct CompareOptions {
    pub plan: ComparePlan,
    /// The comparison's folder.
    pub out: PathBuf,
    /// Continue the comparison in `out` (its `plan.json` must equal `plan`).
    pub resume: bool,
    pub device: Device,
    pub ranks: Ranks,
}

/// The architectures of one group, summarised.
#[derive(Debug, Clone, Serialize)]
pub struct EntryReport {
    pub name: String,
    pub kind: EntryKind,
    pub cell: cell::Genotype,
    pub path: Vec<u8>,
    pub skips: usize,
    /// Val mIoU per retraining seed (fractions).
    pub mious: Vec<f64>,
    pub mean: f64,
    pub sd: f64,
    /// Rank of the mean among all architectures (1: best).
    pub rank: usize,
}

/// What `compare.json` holds.
#[derive(Debug, Clone, Serialize)]
pub struct CompareReport {
    pub entries: Vec<EntryReport>,
    pub seeds: usize,
    /// Retraining seeds of each random draw (the most any has).
    pub random_seeds: usize,
    /// The comparison the random draws' retrainings were taken over from (`--random-from`).
    pub random_from: Option<PathBuf>,
    /// The random architectures' means: their mean and sample sd (over architectures).
    pub random_mean: f64,
    pub random_sd: f64,
    /// The searched architectures' means, averaged over the searches.
    pub searched_mean: f64,
    /// How many searches the searched group holds, and the sd of their means (two or more).
    pub searches: usize,
    pub searched_sd_over_searches: Option<f64>,
    /// (searched mean − random mean) / random sd: the target is ≥ 1.
    pub searched_sd_above_random: Option<f64>,
    /// The retraining noise: the pooled sd of one architecture's runs over its seeds, from every
    /// architecture with two or more (selection units left out); `None` with one seed each.
    pub retraining_sd: Option<f64>,
    /// One standard error of [`CompareReport::searched_sd_above_random`], in random sd: the
    /// searched mean's (`retraining_sd` / √seeds for one search, the sd over searches / √S for
    /// several) and the random mean's (random sd / √N), combined. A miss (or a pass) by less
    /// than this is no evidence either way; more seeds narrow it.
    pub searched_sd_above_se: Option<f64>,
    /// The searched mean's rank among the other architectures (1: best).
    pub searched_rank: usize,
    pub architectures: usize,
    /// Welch's test of the searched network's runs against every random architecture's runs.
    pub welch: Option<Welch>,
    /// Hedges' g of the same two sets of runs.
    pub hedges_g: Option<f64>,
    /// The skip-count control's mean and sd (over architectures), when run.
    pub skip_control_mean: Option<f64>,
    pub skip_control_sd: Option<f64>,
    /// Whether the searched mean beats every hand-designed baseline the space has (the paper's
    /// architecture needs B = 5 and L ≤ 12).
    pub beats_baselines: bool,
    /// Their names.
    pub baselines: Vec<String>,
    /// With `--select`: the search picked without the val split, and how it does.
    pub selection: Option<Selection>,
}

/// The architecture `--select` picked among the searches (DARTS §3.2: each retrained from
/// scratch on trainA and scored on trainB, and the other way round; the val split plays no part
/// in the choice).
#[derive(Debug, Clone, Serialize)]
pub struct Selection {
    /// Each searched entry's held-out scores, in search order.
    pub holdout: Vec<HoldoutScore>,
    /// Retraining seeds per fold.
    pub seeds: usize,
    /// The entry with the best mean held-out mIoU (the first search on ties).
    pub selected: String,
    /// Its val mIoU, mean over the retraining seeds.
    pub mean: f64,
    /// (its mean − random mean) / random sd.
    pub sd_above_random: Option<f64>,
    /// One standard error of `sd_above_random` (as [`CompareReport::searched_sd_above_se`], for
    /// one network).
    pub sd_above_se: Option<f64>,
    /// Its rank among itself and the architectures that are not searched (1: best).
    pub rank: usize,
    /// Whether it beats the paper's architecture and its own cell on the DeepLab-like path.
    pub beats_baselines: bool,
    pub baselines: Vec<String>,
}

/// The searched cell's `skip_connect` count.
fn skips(cell: &cell::Genotype) -> usize {
    cell.blocks().iter().flatten().filter(|e| e.op == cell::Primitive::SkipConnect).count()
}

/// The DeepLab-like path of `layers` layers: rates 4, 8, then 16 (levels 0, 1, 2, 2, …).
pub fn deeplab_path(layers: usize) -> NetworkPath {
    NetworkPath::new((0..layers).map(|l| l.min(2) as u8).collect()).expect("a valid path")
}

/// The paper's path cut to its first `layers` layers (a prefix of a valid path is valid).
fn paper_path(layers: usize) -> Result<NetworkPath> {
    let paper = NetworkPath::paper();
    let levels = paper.levels();
    anyhow::ensure!(layers <= levels.len(), "the paper's path has {} layers, the space {layers}", levels.len());
    Ok(NetworkPath::new(levels[..layers].to_vec())?)
}

/// A random cell of `blocks` blocks with exactly `skips` `skip_connect` edges (the inputs as
/// `cell::Genotype::random` draws them, the other ops uniform over the six that are neither
/// `none` nor `skip_connect`), on a uniform random path.
fn skip_matched(blocks: usize, layers: usize, skips: usize, rng: &mut ChaCha8Rng) -> Result<Architecture> {
    let drawn = cell::Genotype::random(blocks, rng);
    let mut slots: Vec<usize> = (0..2 * blocks).collect();
    for i in (1..slots.len()).rev() {
        slots.swap(i, rng.random_range(0..=i));
    }
    let skip_slots = &slots[..skips.min(slots.len())];
    let others: Vec<cell::Primitive> = cell::Primitive::ALL
        .iter()
        .copied()
        .filter(|p| !matches!(p, cell::Primitive::None | cell::Primitive::SkipConnect))
        .collect();
    let blocks_out = drawn
        .blocks()
        .iter()
        .enumerate()
        .map(|(b, edges)| {
            let mut edges = *edges;
            for (k, edge) in edges.iter_mut().enumerate() {
                edge.op = if skip_slots.contains(&(2 * b + k)) {
                    cell::Primitive::SkipConnect
                } else {
                    others[rng.random_range(0..others.len())]
                };
            }
            edges
        })
        .collect();
    Ok(Architecture {
        cell: cell::Genotype::new(blocks_out)?,
        path: NetworkPath::random(layers, rng),
        extra: Default::default(),
    })
}

impl ComparePlan {
    /// The architectures to retrain: the searched ones first (one per search: `searched`,
    /// `searched_1`, …), the random draws, the paper's, each searched cell on the DeepLab-like
    /// path (`deeplab_path`, `deeplab_path_1`, …), the skip control (of the first search's cell).
    pub fn entries(&self, searched: &[Architecture]) -> Result<Vec<Entry>> {
        let suffix = |s: usize| if s == 0 { String::new() } else { format!("_{s}") };
        let mut entries: Vec<Entry> = searched
            .iter()
            .enumerate()
            .map(|(s, a)| Entry {
                name: format!("searched{}", suffix(s)),
                kind: EntryKind::Searched,
                architecture: a.clone(),
            })
            .collect();
        let first = searched.first().context("no searched architecture")?;
        let space = trellis::SearchNetworkConfig { blocks: self.blocks, layers: self.layers, ..Default::default() };
        for (i, architecture) in crate::tasks::random::draw(&space, self.random, self.draw_seed).into_iter().enumerate()
        {
            entries.push(Entry { name: format!("random_{i:03}"), kind: EntryKind::Random, architecture });
        }
        let paper = Architecture::paper();
        if paper.cell.num_blocks() == self.blocks && self.layers <= paper.path.levels().len() {
            let architecture = Architecture { path: paper_path(self.layers)?, ..paper };
            entries.push(Entry { name: "paper".into(), kind: EntryKind::Paper, architecture });
        } else {
            tracing::warn!(
                blocks = self.blocks,
                layers = self.layers,
                "the paper's cell has 5 blocks and its path 12 layers: no paper baseline in this space"
            );
        }
        for (s, a) in searched.iter().enumerate() {
            let architecture = Architecture { path: deeplab_path(self.layers), ..a.clone() };
            entries.push(Entry {
                name: format!("deeplab_path{}", suffix(s)),
                kind: EntryKind::DeeplabPath,
                architecture,
            });
        }
        let mut rng = ChaCha8Rng::seed_from_u64(self.draw_seed ^ 0x5c1b);
        for i in 0..self.skip_control {
            let architecture = skip_matched(self.blocks, self.layers, skips(&first.cell), &mut rng)?;
            entries.push(Entry { name: format!("skips_{i:03}"), kind: EntryKind::SkipControl, architecture });
        }
        Ok(entries)
    }
}

fn write_json(path: &Path, value: &impl Serialize) -> Result<()> {
    let text = serde_json::to_string_pretty(value)?;
    seg::atomic::write_atomic(path, text.as_bytes()).with_context(|| format!("writing {}", path.display()))
}

/// Opens (fresh) or reopens (`resume`) the comparison folder and checks the plan, on rank 0;
/// the other ranks wait for it and fail with it.
fn open(options: &CompareOptions) -> Result<()> {
    let out = &options.out;
    let plan_file = out.join("plan.json");
    let setup = || -> Result<Vec<u8>> {
        if options.resume {
            let text = seg::limits::read_text(&plan_file).with_context(|| {
                format!("--resume {}: reading its plan.json (is it a comparison folder?)", out.display())
            })?;
            let saved: ComparePlan =
                serde_json::from_str(&text).with_context(|| format!("parsing {}", plan_file.display()))?;
            if saved != options.plan {
                // Only a grown plan may differ from the saved one: the same settings, larger counts.
                if saved.grown(&options.plan.counts()).ok().as_ref() != Some(&options.plan) {
                    bail!(
                        "{} was planned with other settings than these; a resumed comparison keeps its own",
                        plan_file.display()
                    );
                }
                info!(plan = %plan_file.display(), grown = ?options.plan.counts(), "compare: the plan grows");
                write_json(&plan_file, &options.plan)?;
            }
            return Ok(Vec::new());
        }
        if std::fs::read_dir(out).map(|mut d| d.next().is_some()).unwrap_or(false) {
            bail!(
                "--out {} is not empty: a comparison starts in a new folder (continue one with --resume {})",
                out.display(),
                out.display()
            );
        }
        std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
        write_json(&plan_file, &options.plan)?;
        Ok(Vec::new())
    };
    let mine = if options.ranks.rank() == 0 { setup() } else { Ok(Vec::new()) };
    options.ranks.from_rank0(mine)?;
    Ok(())
}

/// A run folder that holds a checkpoint to resume from; a folder without one is removed (it
/// saved nothing), so that the run starts again.
fn resumable(folder: &Path) -> Result<bool> {
    if !folder.exists() {
        return Ok(false);
    }
    let latest = crate::store::checkpoint::Checkpoints::new(folder.join("checkpoints"), 1)?.latest()?;
    if latest.is_some() && folder.join("config.toml").is_file() {
        return Ok(true);
    }
    std::fs::remove_dir_all(folder).with_context(|| format!("removing the unfinished {}", folder.display()))?;
    Ok(false)
}

/// The searched architectures: the plan's, or one per search (`search/`, `search-1/`, …, with
/// seeds `search.seed`, `+ 1`, …), each the finished search's or the search run (or resumed) now
/// on every rank.
fn searched(options: &CompareOptions) -> Result<Vec<Architecture>> {
    if let Some(a) = &options.plan.searched {
        return Ok(vec![a.clone()]);
    }
    let config = options.plan.search.clone().context("the plan has neither an architecture nor a search")?;
    (0..options.plan.searches.max(1))
        .map(|s| {
            let mut config = config.clone();
            config.seed += s as u64;
            let folder = options.out.join(if s == 0 { "search".to_owned() } else { format!("search-{s}") });
            one_search(options, config, folder)
        })
        .collect()
}

/// One search of the comparison in `folder`: its result when finished, else run or resumed.
fn one_search(options: &CompareOptions, config: SearchRunConfig, folder: PathBuf) -> Result<Architecture> {
    let done = folder.join("arch/final.json");
    // Rank 0 looks at the folder; every rank acts on what it saw.
    let state = if options.ranks.rank() == 0 {
        if done.is_file() {
            2u8
        } else {
            resumable(&folder)? as u8
        }
    } else {
        0
    };
    let state = options.ranks.from_rank0(Ok(vec![state]))?[0];
    if state == 2 {
        let bytes =
            options.ranks.from_rank0(std::fs::read(&done).with_context(|| format!("reading {}", done.display())))?;
        return Ok(Architecture::from_json(&String::from_utf8(bytes)?, &done.display().to_string())?);
    }
    let run = RunRequest {
        out: folder.clone(),
        device: options.device,
        resume: state == 1,
        stop_after_steps: None,
        ranks: options.ranks.clone(),
    };
    info!(resume = run.resume, folder = %folder.display(), seed = config.seed, "compare: a search");
    match crate::tasks::search_run::run(SearchOptions { config, run })? {
        SearchOutcome::Finished(architecture) => Ok(architecture),
        SearchOutcome::Stopped(checkpoint) => {
            bail!(
                "the search was stopped at {}; continue with --resume {}",
                checkpoint.display(),
                options.out.display()
            )
        }
    }
}

/// Runs (or continues) the comparison; the report on rank 0 (`None` on the other ranks).
pub fn run(options: &CompareOptions) -> Result<Option<CompareReport>> {
    open(options)?;
    let out = &options.out;
    let searched = searched(options)?;
    let entries = options.plan.entries(&searched)?;
    let results = out.join("results");
    std::fs::create_dir_all(&results).with_context(|| format!("creating {}", results.display()))?;
    let saved = if options.ranks.rank() == 0 {
        save_architectures(out, &entries).and_then(|()| match &options.plan.random_from {
            Some(reference) => options.plan.take_over_random(reference, &results, &entries),
            None => Ok(()),
        })
    } else {
        Ok(())
    };
    options.ranks.from_rank0(saved.map(|()| Vec::new()))?;
    let units = options.plan.units(&entries);
    let (rank, size) = (options.ranks.rank(), options.ranks.size());
    // Each unit's mIoU as f64 bits, on the rank that ran it (0 elsewhere): summed across the
    // ranks, every rank has all of them, without a shared file system.
    let mut bits = vec![0u64; units.len()];
    for (i, unit) in units.iter().enumerate() {
        if i % size != rank {
            continue;
        }
        let entry = &entries[unit.entry];
        let result_file = results.join(unit.file_stem(entry) + ".json");
        let miou = match seg::limits::read_text(&result_file) {
            Ok(text) => {
                let result: UnitResult =
                    serde_json::from_str(&text).with_context(|| format!("parsing {}", result_file.display()))?;
                result.val_miou
            }
            Err(_) => {
                let miou = retrain(options, entry, unit, i, units.len())?;
                write_json(&result_file, &UnitResult { name: entry.name.clone(), seed: unit.seed, val_miou: miou })?;
                miou
            }
        };
        bits[i] = miou.to_bits();
    }
    let bits = options.ranks.sum_counts(&bits)?;
    if rank != 0 {
        return Ok(None);
    }
    let mut mious = vec![Vec::new(); entries.len()];
    let mut holdout = Vec::new();
    for (unit, b) in units.iter().zip(bits) {
        match unit.holdout {
            Some(_) => holdout.push((unit.entry, f64::from_bits(b))),
            None => mious[unit.entry].push(f64::from_bits(b)),
        }
    }
    let mut report = summarise(&entries, mious, options.plan.seeds, &holdout);
    report.random_from = options.plan.random_from.clone();
    if let Some(selection) = &report.selection {
        // The picked network, ready for `search train --arch`.
        let entry = entries.iter().find(|e| e.name == selection.selected).expect("selected from the entries");
        entry.architecture.save(&out.join("selected.json"))?;
    }
    write_json(&out.join("compare.json"), &report)?;
    seg::atomic::write_atomic(&out.join("compare.md"), markdown(&report).as_bytes())?;
    strip_plot(&out.join("compare.svg"), &report)?;
    Ok(Some(report))
}

/// Writes each entry's architecture to `architectures/<name>.json`. One already there (a resumed
/// comparison) must hold the same cell and path: its finished retrainings belong to it, and a
/// plan that now draws another network under that name (another version's draws, a hand-edited
/// file) would mix two networks' runs in one row, so it is refused before anything is written.
fn save_architectures(out: &Path, entries: &[Entry]) -> Result<()> {
    let folder = out.join("architectures");
    std::fs::create_dir_all(&folder).with_context(|| format!("creating {}", folder.display()))?;
    let file = |entry: &Entry| folder.join(format!("{}.json", entry.name));
    for entry in entries {
        let path = file(entry);
        if !path.exists() {
            continue;
        }
        let text = seg::limits::read_text(&path)?;
        let saved = Architecture::from_json(&text, &path.display().to_string())?;
        let a = &entry.architecture;
        if (&saved.cell, &saved.path) != (&a.cell, &a.path) {
            bail!(
                "{} holds another cell or path than this comparison's plan makes for `{}`: its finished \
                 retrainings would be reported as another network's; start a new comparison",
                path.display(),
                entry.name
            );
        }
    }
    entries.iter().try_for_each(|entry| Ok(entry.architecture.save(&file(entry))?))
}

/// `compare.svg`: every retrained mIoU, one column per architecture (best mean first), the
/// searched network in red, the random draws in grey, the hand-designed baselines in blue, the
/// skip-count control in green; a dashed line at the random architectures' mean.
fn strip_plot(path: &Path, report: &CompareReport) -> Result<()> {
    use plotters::style::RGBColor;
    let mut entries: Vec<&EntryReport> = report.entries.iter().collect();
    entries.sort_by(|a, b| b.mean.total_cmp(&a.mean));
    let percent: Vec<Vec<f64>> = entries.iter().map(|e| e.mious.iter().map(|m| 100.0 * m).collect()).collect();
    let strips: Vec<crate::observe::plots::Strip> = entries
        .iter()
        .zip(&percent)
        .map(|(e, values)| crate::observe::plots::Strip {
            name: &e.name,
            colour: match e.kind {
                EntryKind::Searched => RGBColor(200, 30, 30),
                EntryKind::Random => RGBColor(120, 120, 120),
                EntryKind::Paper | EntryKind::DeeplabPath => RGBColor(40, 80, 200),
                EntryKind::SkipControl => RGBColor(30, 150, 60),
            },
            values,
            mean: 100.0 * e.mean,
        })
        .collect();
    let title = "val mIoU (%) per retraining: red searched, grey random, blue baselines, green skip control";
    crate::observe::plots::strip_plot(path, title, &strips, 100.0 * report.random_mean, "val mIoU %")
}

/// A searched entry's held-out mIoUs (fractions).
#[derive(Debug, Clone, Serialize)]
pub struct HoldoutScore {
    pub name: String,
    /// Trained on trainA scored on trainB, then trained on trainB scored on trainA; with several
    /// selection seeds, these two for seed 0, then for seed 1, and so on.
    pub folds: Vec<f64>,
    pub mean: f64,
}

/// One retraining of the comparison.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Unit {
    /// Index into the entries.
    pub entry: usize,
    /// Offset of the retraining seed.
    pub seed: u64,
    /// A selection unit: trained on one half of the training split, scored on the other.
    pub holdout: Option<Holdout>,
}

impl Unit {
    /// A selection unit's fold and seed: `fold<0|1>` for seed 0, `fold<0|1>-seed<k>` after.
    fn fold_tag(h: Holdout, seed: u64) -> String {
        match seed {
            0 => format!("fold{}", h.swapped as u8),
            k => format!("fold{}-seed{k}", h.swapped as u8),
        }
    }

    /// Its result file's name: `<entry>-seed<k>`, or `select-<entry>-<fold tag>`.
    fn file_stem(&self, entry: &Entry) -> String {
        match self.holdout {
            Some(h) => format!("select-{}-{}", entry.name, Self::fold_tag(h, self.seed)),
            None => format!("{}-seed{}", entry.name, self.seed),
        }
    }

    /// Its run folder in the comparison: `runs/<entry>/seed<k>`, or
    /// `runs/select/<entry>/<fold tag>`.
    fn folder(&self, entry: &Entry) -> String {
        match self.holdout {
            Some(h) => format!("runs/select/{}/{}", entry.name, Self::fold_tag(h, self.seed)),
            None => format!("runs/{}/seed{}", entry.name, self.seed),
        }
    }
}

impl ComparePlan {
    /// This plan grown as `growth` says, checked as the flags are; a count below the plan's is
    /// refused, naming its flag.
    pub fn grown(&self, growth: &Growth) -> Result<ComparePlan> {
        let mut plan = self.clone();
        let raise = |flag: &str, count: &mut usize, to: Option<usize>| -> Result<()> {
            if let Some(to) = to {
                anyhow::ensure!(
                    to >= *count,
                    "{flag} {to}: this comparison already has {count}; a resumed comparison only grows, \
                     so that no finished retraining is dropped from its report"
                );
                *count = to;
            }
            Ok(())
        };
        raise("--random", &mut plan.random, growth.random)?;
        raise("--seeds", &mut plan.seeds, growth.seeds)?;
        raise("--skip-control", &mut plan.skip_control, growth.skip_control)?;
        raise("--searches", &mut plan.searches, growth.searches)?;
        raise("--select-seeds", &mut plan.select_seeds, growth.select_seeds)?;
        if let Some(to) = growth.random_seeds {
            let mut count = self.random_seeds();
            raise("--random-seeds", &mut count, Some(to))?;
            plan.random_seeds = Some(count);
        }
        plan.select |= growth.select;
        plan.validate()?;
        Ok(plan)
    }

    /// Every count of this plan, as a [`Growth`] that would reach it.
    fn counts(&self) -> Growth {
        Growth {
            random: Some(self.random),
            seeds: Some(self.seeds),
            skip_control: Some(self.skip_control),
            searches: Some(self.searches),
            select: self.select,
            select_seeds: Some(self.select_seeds),
            random_seeds: self.random_seeds,
        }
    }

    /// The plan of the comparison in `dir` (`--random-from DIR`), checked.
    pub fn read_reference(dir: &Path) -> Result<ComparePlan> {
        let path = dir.join("plan.json");
        let text = seg::limits::read_text(&path).with_context(|| {
            format!("--random-from {}: reading {} (is it a comparison folder?)", dir.display(), path.display())
        })?;
        let plan: ComparePlan = serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
        plan.validate().with_context(|| format!("checking {}", path.display()))?;
        Ok(plan)
    }

    /// Refuses a reference comparison (in `dir`) whose random draws' retrainings would not be
    /// this plan's: another space, draw seed or retraining config (the differing keys named).
    pub fn check_reference(&self, reference: &ComparePlan, dir: &Path) -> Result<()> {
        let name = dir.display();
        if (self.blocks, self.layers) != (reference.blocks, reference.layers) {
            bail!(
                "--random-from {name}: its space has B = {} and L = {}, this comparison's B = {} and L = {}",
                reference.blocks,
                reference.layers,
                self.blocks,
                self.layers
            );
        }
        if self.draw_seed != reference.draw_seed {
            bail!(
                "--random-from {name}: its random architectures were drawn with --seed {}, this comparison's with \
                 --seed {}",
                reference.draw_seed,
                self.draw_seed
            );
        }
        let keys = crate::tasks::compare_reference::differing_keys(
            &serde_json::to_value(&self.retrain)?,
            &serde_json::to_value(&reference.retrain)?,
        );
        if !keys.is_empty() {
            bail!(
                "--random-from {name}: its retraining config differs in {}; its runs would not be this comparison's \
                 (give the same --retrain-config, --set-retrain and --data, or retrain the random draws here)",
                keys.join(", ")
            );
        }
        Ok(())
    }

    /// Takes over the reference comparison's finished retrainings of the random `entries` into
    /// `results` (`tasks::compare_reference::take_over`), once: with every one already there
    /// (a resumed comparison) the reference is not read again.
    fn take_over_random(&self, reference: &Path, results: &Path, entries: &[Entry]) -> Result<()> {
        let draws: Vec<(&str, &Architecture)> = entries
            .iter()
            .filter(|e| e.kind == EntryKind::Random)
            .map(|e| (e.name.as_str(), &e.architecture))
            .collect();
        let seeds = self.random_seeds();
        let have = |name: &str, k: usize| results.join(format!("{name}-seed{k}.json")).is_file();
        if draws.iter().all(|(name, _)| (0..seeds).all(|k| have(name, k))) {
            return Ok(());
        }
        self.check_reference(&Self::read_reference(reference)?, reference)?;
        crate::tasks::compare_reference::take_over(reference, results, &draws, seeds)
    }

    /// Retraining seeds per random draw: `random_seeds`, else `seeds`.
    pub fn random_seeds(&self) -> usize {
        self.random_seeds.unwrap_or(self.seeds)
    }

    /// Retraining seeds of an entry of `kind` (selection units aside).
    fn seeds_of(&self, kind: EntryKind) -> usize {
        match kind {
            EntryKind::Random => self.random_seeds(),
            _ => self.seeds,
        }
    }

    /// Checks the counts, whether they come from the flags or from a resumed `plan.json`; the
    /// errors name the flag that sets each one.
    pub fn validate(&self) -> Result<()> {
        let seeds = self.seeds;
        anyhow::ensure!(seeds >= 1, "--seeds {seeds}: at least one retraining per architecture");
        crate::limits::check_draws("--random", self.random)?;
        anyhow::ensure!(seeds <= 1000, "--seeds {seeds}: over the limit of 1000 retrainings per architecture");
        let random_seeds = self.random_seeds();
        anyhow::ensure!(
            (1..=1000).contains(&random_seeds),
            "--random-seeds {random_seeds}: from 1 to 1000 retrainings per random draw"
        );
        let searches = self.searches;
        anyhow::ensure!((1..=100).contains(&searches), "--searches {searches}: from 1 to 100 searches");
        anyhow::ensure!(
            searches == 1 || self.searched.is_none(),
            "--searches {searches} runs the searches: drop --arch (one given architecture is one search)"
        );
        anyhow::ensure!(
            !self.select || searches >= 2,
            "--select picks one of several searches: give --searches 2 or more"
        );
        let select_seeds = self.select_seeds;
        anyhow::ensure!(
            (1..=100).contains(&select_seeds),
            "--select-seeds {select_seeds}: from 1 to 100 retraining seeds per fold"
        );
        anyhow::ensure!(
            self.select || select_seeds == 1,
            "--select-seeds {select_seeds} sets how --select scores the searches: add --select"
        );
        Ok(())
    }

    /// The retrainings: with `select`, two selection units per searched entry and selection seed
    /// first (they decide which search is picked: trained on trainA scored on trainB, and the
    /// other way round; seed-major), then every entry for every seed it has (random draws
    /// [`ComparePlan::random_seeds`], the others `seeds`), seed-major, so that a comparison
    /// stopped early has every architecture's first seeds.
    pub fn units(&self, entries: &[Entry]) -> Vec<Unit> {
        // The split of the first search: the halves it searched on.
        let split = self.search.as_ref().map_or(0, |s| s.seed);
        let select_seeds = if self.select { self.select_seeds as u64 } else { 0 };
        let select = (0..select_seeds).flat_map(|seed| {
            [false, true].into_iter().flat_map(move |swapped| {
                entries.iter().enumerate().filter(|(_, e)| e.kind == EntryKind::Searched).map(move |(entry, _)| Unit {
                    entry,
                    seed,
                    holdout: Some(Holdout { seed: split, swapped }),
                })
            })
        });
        let most = self.seeds.max(self.random_seeds()) as u64;
        let seeds = (0..most).flat_map(|seed| {
            entries
                .iter()
                .enumerate()
                .filter(move |(_, e)| seed < self.seeds_of(e.kind) as u64)
                .map(move |(entry, _)| Unit { entry, seed, holdout: None })
        });
        select.chain(seeds).collect()
    }
}

/// Retrains `entry` as `unit` says (unit `i` of `n`), resuming a checkpointed run.
fn retrain(options: &CompareOptions, entry: &Entry, unit: &Unit, i: usize, n: usize) -> Result<f64> {
    let (k, holdout) = (unit.seed, unit.holdout);
    let folder = options.out.join(unit.folder(entry));
    let resume = resumable(&folder)?;
    let mut config = options.plan.retrain.clone();
    config.seed += k;
    config.name = unit.file_stem(entry);
    let run =
        RunRequest { out: folder, device: options.device, resume, stop_after_steps: None, ranks: Ranks::of(None) };
    let start = std::time::Instant::now();
    let model = ModelChoice::Deployed(entry.architecture.clone());
    let miou = match crate::tasks::retrain::train(RetrainOptions { config, model, run, holdout })? {
        RetrainOutcome::Finished { val_miou, .. } => val_miou,
        RetrainOutcome::Stopped(checkpoint) => {
            bail!(
                "retraining {} was stopped at {}; continue with --resume {}",
                entry.name,
                checkpoint.display(),
                options.out.display()
            )
        }
    };
    info!(unit = i + 1, of = n, name = %entry.name, seed = k, selection = holdout.is_some(), val_miou = %format!("{:.2} %", 100.0 * miou), seconds = %format!("{:.1}", start.elapsed().as_secs_f64()), "compare: retrained");
    Ok(miou)
}

/// The report of `entries` with their per-seed mIoUs, and with `--select` the searched entries'
/// held-out mIoUs (`(entry index, mIoU)`, each entry's folds in order).
pub fn summarise(entries: &[Entry], mious: Vec<Vec<f64>>, seeds: usize, holdout: &[(usize, f64)]) -> CompareReport {
    let mut reports: Vec<EntryReport> = entries
        .iter()
        .zip(mious)
        .map(|(e, m)| {
            let (mean, sd) = mean_std(&m);
            EntryReport {
                name: e.name.clone(),
                kind: e.kind,
                cell: e.architecture.cell.clone(),
                path: e.architecture.path.levels().to_vec(),
                skips: skips(&e.architecture.cell),
                mious: m,
                mean,
                sd,
                rank: 0,
            }
        })
        .collect();
    let means: Vec<f64> = reports.iter().map(|r| r.mean).collect();
    for r in &mut reports {
        r.rank = 1 + means.iter().filter(|&&m| m > r.mean).count();
    }
    let of = |kind: EntryKind| reports.iter().filter(move |r| r.kind == kind);
    let random_means: Vec<f64> = of(EntryKind::Random).map(|r| r.mean).collect();
    let (random_mean, random_sd) = mean_std(&random_means);
    // The searched group: one entry per search, compared by the mean of their means.
    let searched_means: Vec<f64> = of(EntryKind::Searched).map(|r| r.mean).collect();
    let (searched_mean, searched_sd) = mean_std(&searched_means);
    let searched_runs: Vec<f64> = of(EntryKind::Searched).flat_map(|r| r.mious.clone()).collect();
    let random_runs: Vec<f64> = of(EntryKind::Random).flat_map(|r| r.mious.clone()).collect();
    let skip_means: Vec<f64> = of(EntryKind::SkipControl).map(|r| r.mean).collect();
    let skip = (!skip_means.is_empty()).then(|| mean_std(&skip_means));
    // Each baseline kind as a group (the DeepLab-like path holds one entry per searched cell).
    let group_mean = |kind: EntryKind| {
        let means: Vec<f64> = of(kind).map(|r| r.mean).collect();
        (!means.is_empty()).then(|| mean_std(&means).0)
    };
    let baseline_means: Vec<f64> =
        [EntryKind::Paper, EntryKind::DeeplabPath].into_iter().filter_map(group_mean).collect();
    let beats_baselines = baseline_means.iter().all(|&m| searched_mean > m);
    let baselines: Vec<String> =
        of(EntryKind::Paper).chain(of(EntryKind::DeeplabPath)).map(|r| r.name.clone()).collect();
    let retraining_sd = pooled_sd(&reports);
    let random = (random_mean, random_sd);
    // The searched mean's standard error: its seeds' for one search, the searches' spread for
    // several (which holds their seeds' noise too).
    let searched_se = match searched_means.len() {
        0 | 1 => runs_se(retraining_sd, searched_runs.len()),
        n => Some(searched_sd / (n as f64).sqrt()),
    };
    let selection = select(&reports, holdout, &random_means, random, retraining_sd);
    CompareReport {
        random_seeds: of(EntryKind::Random).map(|r| r.mious.len()).max().unwrap_or(0),
        random_from: None,
        retraining_sd,
        searched_sd_above_se: sd_above_se(searched_se, &random_means, random),
        selection,
        seeds,
        random_mean,
        random_sd,
        searched_mean,
        searches: searched_means.len(),
        searched_sd_over_searches: (searched_means.len() >= 2).then_some(searched_sd),
        searched_sd_above_random: sd_above(searched_mean, &random_means, (random_mean, random_sd)),
        searched_rank: rank_among_others(&reports, searched_mean),
        architectures: reports.len(),
        welch: welch(&searched_runs, &random_runs),
        hedges_g: hedges_g(&searched_runs, &random_runs),
        skip_control_mean: skip.map(|s| s.0),
        skip_control_sd: skip.map(|s| s.1),
        beats_baselines,
        baselines,
        entries: reports,
    }
}

/// The pooled within-architecture sd: √(Σ (nᵢ − 1) sᵢ² / Σ (nᵢ − 1)) over the entries with two
/// or more runs; `None` when no entry has two.
fn pooled_sd(reports: &[EntryReport]) -> Option<f64> {
    let (ss, dof) = reports
        .iter()
        .filter(|r| r.mious.len() >= 2)
        .fold((0.0, 0usize), |(ss, dof), r| (ss + (r.mious.len() - 1) as f64 * r.sd * r.sd, dof + r.mious.len() - 1));
    (dof > 0).then(|| (ss / dof as f64).sqrt())
}

/// The standard error of one network's mean over `runs` retrainings.
fn runs_se(retraining_sd: Option<f64>, runs: usize) -> Option<f64> {
    retraining_sd.map(|s| s / (runs.max(1) as f64).sqrt())
}

/// The random sd to measure by: when at least two random draws with some spread exist.
fn measuring_sd(random_means: &[f64], random_sd: f64) -> Option<f64> {
    (random_means.len() >= 2 && random_sd > 0.0).then_some(random_sd)
}

/// One standard error of [`sd_above`] for a mean of standard error `se`: √(se² + random sd² / N)
/// / random sd (the random sd's own error left out).
fn sd_above_se(se: Option<f64>, random_means: &[f64], (_, random_sd): (f64, f64)) -> Option<f64> {
    let (se, sd) = (se?, measuring_sd(random_means, random_sd)?);
    Some((se * se + sd * sd / random_means.len() as f64).sqrt() / sd)
}

/// (mean − random mean) / random sd, when at least two random draws with some spread exist.
fn sd_above(mean: f64, random_means: &[f64], (random_mean, random_sd): (f64, f64)) -> Option<f64> {
    measuring_sd(random_means, random_sd).map(|sd| (mean - random_mean) / sd)
}

/// The rank of `mean` among the architectures that are not searched (1: best).
fn rank_among_others(reports: &[EntryReport], mean: f64) -> usize {
    1 + reports.iter().filter(|r| r.kind != EntryKind::Searched && r.mean > mean).count()
}

/// The `--select` verdict: the searched entry with the best mean held-out mIoU, judged against
/// the paper's architecture and its own cell on the DeepLab-like path.
fn select(
    reports: &[EntryReport],
    holdout: &[(usize, f64)],
    random_means: &[f64],
    random: (f64, f64),
    retraining_sd: Option<f64>,
) -> Option<Selection> {
    let mut scores: Vec<(usize, HoldoutScore)> = Vec::new();
    for &(e, miou) in holdout {
        match scores.iter_mut().find(|(i, _)| *i == e) {
            Some((_, s)) => s.folds.push(miou),
            None => scores.push((e, HoldoutScore { name: reports[e].name.clone(), folds: vec![miou], mean: 0.0 })),
        }
    }
    for (_, s) in &mut scores {
        s.mean = mean_std(&s.folds).0;
    }
    let &(best, _) = scores.iter().fold(None, |acc: Option<&(usize, HoldoutScore)>, s| match acc {
        Some(a) if a.1.mean >= s.1.mean => Some(a),
        _ => Some(s),
    })?;
    let chosen = &reports[best];
    // Its own cell on the DeepLab-like path: the DeepLab entry in the same place among its kind.
    let nth = reports[..best].iter().filter(|r| r.kind == EntryKind::Searched).count();
    let own_deeplab = reports.iter().filter(|r| r.kind == EntryKind::DeeplabPath).nth(nth);
    let baselines: Vec<&EntryReport> =
        reports.iter().filter(|r| r.kind == EntryKind::Paper).chain(own_deeplab).collect();
    // Two folds per selection seed.
    let seeds = scores.iter().map(|(_, s)| s.folds.len()).max().unwrap_or(0).div_ceil(2);
    Some(Selection {
        holdout: scores.into_iter().map(|(_, s)| s).collect(),
        seeds,
        selected: chosen.name.clone(),
        mean: chosen.mean,
        sd_above_random: sd_above(chosen.mean, random_means, random),
        sd_above_se: sd_above_se(runs_se(retraining_sd, chosen.mious.len()), random_means, random),
        rank: rank_among_others(reports, chosen.mean),
        beats_baselines: baselines.iter().all(|b| chosen.mean > b.mean),
        baselines: baselines.iter().map(|b| b.name.clone()).collect(),
    })
}

/// The target (at least +1 random sd above the random mean) in words: "met", or how far it is
/// missed in random sd and in mIoU points, and whether that is within one standard error `se`
/// (then more seeds, or for a group of `searches` more searches, can tell); empty when there is
/// no random sd to measure by.
fn target_verdict(sd_above: Option<f64>, random_sd: f64, se: Option<f64>, searches: usize) -> String {
    let more = if searches >= 2 {
        "more searches or seeds (--resume DIR --searches S --seeds K)"
    } else {
        "more retraining seeds (--resume DIR --seeds K)"
    };
    let close = |by: f64| match se {
        Some(se) if by < se => format!(", within one standard error ({se:.2} sd) of the line: {more} can tell"),
        _ => String::new(),
    };
    match sd_above {
        Some(sd) if sd >= 1.0 => format!(": target met{}", close(sd - 1.0)),
        Some(sd) => format!(
            ": target missed by {:.2} sd ({:.2} points){}",
            1.0 - sd,
            100.0 * (1.0 - sd) * random_sd,
            close(1.0 - sd)
        ),
        None => String::new(),
    }
}

/// A figure in random sd with its standard error: `+0.80 ± 0.62`.
fn with_se(sd: f64, se: Option<f64>) -> String {
    match se {
        Some(se) => format!("{sd:+.2} ± {se:.2}"),
        None => format!("{sd:+.2}"),
    }
}

/// A p value with its leading digits, however small.
fn p_value(p: f64) -> String {
    if p >= 1e-3 {
        format!("{p:.4}")
    } else {
        format!("{p:.2e}")
    }
}

/// `compare.md`: the verdict, then one row per architecture, best first.
pub fn markdown(r: &CompareReport) -> String {
    let pct = |v: f64| format!("{:.2}", 100.0 * v);
    let mut text = String::from("# search compare\n\n");
    let drawn = r.entries.iter().filter(|e| e.kind == EntryKind::Random).count();
    let random = if drawn == 0 {
        "no random architectures (--random 0)".to_owned()
    } else {
        let sd = r
            .searched_sd_above_random
            .map_or("n/a (fewer than two random draws)".into(), |s| with_se(s, r.searched_sd_above_se));
        let seeds =
            if r.random_seeds == r.seeds { String::new() } else { format!(", {} seed(s) each", r.random_seeds) };
        let from = r
            .random_from
            .as_ref()
            .map_or(String::new(), |d| format!(", their retrainings taken over from {}", d.display()));
        format!(
            "random architectures: {} ± {} % (mean ± sd of {drawn} architectures' means{seeds}{from}); searched − random mean = {sd} random sd (target ≥ +1){}",
            pct(r.random_mean),
            pct(r.random_sd),
            target_verdict(r.searched_sd_above_random, r.random_sd, r.searched_sd_above_se, r.searches)
        )
    };
    let over = match r.searched_sd_over_searches {
        Some(sd) => format!("mean of {} searches, sd {} % over searches, ", r.searches, pct(sd)),
        None => String::new(),
    };
    text += &format!(
        "Searched: **{} %** ({over}rank {} of {}, {} seed(s) each); {random}; beats the hand-designed baselines ({}): {}.\n\n",
        pct(r.searched_mean),
        r.searched_rank,
        r.architectures - r.searches + 1,
        r.seeds,
        r.baselines.join(", "),
        if r.beats_baselines { "yes" } else { "no" }
    );
    match (&r.welch, r.hedges_g) {
        (Some(w), Some(g)) => {
            text += &format!(
                "Welch's t test, searched runs against random runs: t = {:.3}, df = {:.1}, one-sided p = {} (two-sided {}); Hedges' g = {g:.3}.\n\n",
                w.t,
                w.df,
                p_value(w.p_greater),
                p_value(w.p_two_sided)
            )
        }
        _ => text += "Welch's test and Hedges' g need at least two runs on each side with some spread.\n\n",
    }
    if let Some(s) = &r.selection {
        let scores: Vec<String> = s
            .holdout
            .iter()
            .map(|h| {
                let folds: Vec<String> = h.folds.iter().map(|&m| pct(m)).collect();
                format!("{} {} ({})", h.name, pct(h.mean), folds.join(", "))
            })
            .collect();
        let sd = s.sd_above_random.map_or("n/a".into(), |v| with_se(v, s.sd_above_se));
        let seeds = match s.seeds {
            1 => String::new(),
            k => format!(", with {k} retraining seeds each"),
        };
        text += &format!(
            "Selected without the val split (each search's network retrained on trainA and scored on trainB, and the other way round{seeds}; mean (folds): {}): **{}**, {} % on val, {sd} random sd{}, rank {} of {}; beats its baselines ({}): {}.\n\n",
            scores.join(", "),
            s.selected,
            pct(s.mean),
            target_verdict(s.sd_above_random, r.random_sd, s.sd_above_se, 1),
            s.rank,
            r.architectures - r.searches + 1,
            s.baselines.join(", "),
            if s.beats_baselines { "yes" } else { "no" }
        );
    }
    if let (Some(sd), Some(_)) = (r.retraining_sd, r.searched_sd_above_se) {
        text += &format!(
            "± after a figure in random sd: one standard error, from the retraining noise ({} points, the pooled sd of each architecture's runs over its seeds; the sd over searches for several) and the random mean's own error (random sd / √N).\n\n",
            pct(sd)
        );
    }
    if let (Some(m), Some(s)) = (r.skip_control_mean, r.skip_control_sd) {
        text += &format!(
            "Skip-count control (random cells with the searched cell's skips): {} ± {} %.\n\n",
            pct(m),
            pct(s)
        );
    }
    text += "| rank | architecture | kind | mean mIoU % | sd | per seed | path | skips |\n|---:|---|---|---:|---:|---|---|---:|\n";
    let mut rows: Vec<&EntryReport> = r.entries.iter().collect();
    rows.sort_by(|a, b| b.mean.total_cmp(&a.mean));
    for e in rows {
        let seeds: Vec<String> = e.mious.iter().map(|&m| pct(m)).collect();
        text += &format!(
            "| {} | {} | {} | {} | {} | {} | {:?} | {} |\n",
            e.rank,
            e.name,
            serde_json::to_value(e.kind).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default(),
            pct(e.mean),
            pct(e.sd),
            seeds.join(", "),
            e.path,
            e.skips
        );
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    /// In the demo's space (B = 5, L = 4): the paper's cell on its path's first four layers, the
    /// searched cell on rates 4, 8, 16, 16, and skip controls with exactly the searched skips.
    #[test]
    fn the_baselines_come_from_the_same_space() {
        let searched = crate::tasks::random::draw(
            &trellis::SearchNetworkConfig { blocks: 5, layers: 4, ..Default::default() },
            1,
            9,
        )
        .remove(0);
        let plan = ComparePlan {
            searched: Some(searched.clone()),
            search: None,
            blocks: 5,
            layers: 4,
            retrain: RetrainConfig::default(),
            random: 3,
            seeds: 1,
            draw_seed: 0,
            skip_control: 20,
            searches: 1,
            select: false,
            select_seeds: 1,
            random_seeds: None,
            random_from: None,
        };
        let entries = plan.entries(std::slice::from_ref(&searched)).unwrap();
        let kinds: Vec<EntryKind> = entries.iter().map(|e| e.kind).collect();
        assert_eq!(
            &kinds[..6],
            [
                EntryKind::Searched,
                EntryKind::Random,
                EntryKind::Random,
                EntryKind::Random,
                EntryKind::Paper,
                EntryKind::DeeplabPath
            ]
        );
        let paper = &entries[4].architecture;
        assert_eq!(paper.cell, Architecture::paper().cell);
        assert_eq!(paper.path.levels(), &Architecture::paper().path.levels()[..4]);
        assert_eq!(entries[5].architecture.path.levels(), [0, 1, 2, 2]);
        assert_eq!(entries[5].architecture.cell, searched.cell);
        for e in &entries[6..] {
            assert_eq!(skips(&e.architecture.cell), skips(&searched.cell), "{:?}", e.architecture.cell);
            assert_eq!(e.architecture.path.levels().len(), 4);
        }
        let distinct: std::collections::HashSet<String> =
            entries[6..].iter().map(|e| serde_json::to_string(&e.architecture.cell).unwrap()).collect();
        assert!(distinct.len() > 15, "the controls are drawn, not copies");
    }

    /// Several searches are one group: its mean is the mean of the searches' means, its rank
    /// among the other architectures, its runs pooled in Welch's test, and the DeepLab-like
    /// baseline is the group of every searched cell on that path.
    #[test]
    fn several_searches_are_compared_as_one_group() {
        let space = trellis::SearchNetworkConfig { blocks: 5, layers: 4, ..Default::default() };
        let searched = crate::tasks::random::draw(&space, 2, 7);
        let plan = ComparePlan {
            searched: None,
            search: None,
            blocks: 5,
            layers: 4,
            retrain: RetrainConfig::default(),
            random: 2,
            seeds: 2,
            draw_seed: 0,
            skip_control: 0,
            searches: 2,
            select: true,
            select_seeds: 1,
            random_seeds: None,
            random_from: None,
        };
        let entries = plan.entries(&searched).unwrap();
        let names: Vec<&str> = entries.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(
            names,
            ["searched", "searched_1", "random_000", "random_001", "paper", "deeplab_path", "deeplab_path_1"]
        );
        assert_eq!(entries[6].architecture.cell, searched[1].cell);
        let mious = vec![
            vec![0.60, 0.62], // searched: 0.61
            vec![0.50, 0.52], // searched_1: 0.51
            vec![0.50, 0.50], // random: 0.50
            vec![0.54, 0.54], // random: 0.54
            vec![0.40, 0.40], // paper
            vec![0.58, 0.58], // deeplab_path
            vec![0.55, 0.57], // deeplab_path_1: 0.56, the group 0.57
        ];
        // Held-out folds: searched 0.40 and 0.42 (0.41), searched_1 0.45 and 0.41 (0.43).
        let r = summarise(&entries, mious, 2, &[(0, 0.40), (1, 0.45), (0, 0.42), (1, 0.41)]);
        assert!((r.searched_mean - 0.56).abs() < 1e-12);
        assert_eq!(r.searches, 2);
        assert!((r.searched_sd_over_searches.unwrap() - (0.005f64).sqrt()).abs() < 1e-12);
        // Above it: deeplab_path (0.58) only; the DeepLab-like group (0.57) beats it.
        assert_eq!(r.searched_rank, 2);
        assert!(!r.beats_baselines);
        assert!((r.searched_sd_above_random.unwrap() - (0.56 - 0.52) / (0.0008f64).sqrt()).abs() < 1e-9);
        assert!(r.welch.is_some(), "four searched runs against four random runs");
        assert!(markdown(&r).contains("mean of 2 searches"));
        // The retraining noise: three entries with 0.02 between their seeds (variance 0.0002 each)
        // over seven degrees of freedom. The group's standard error: its sd over searches / √2
        // (0.05) with the random mean's (variance 0.0008 / 2), in random sd; +1.41 passes the
        // line by less than that.
        assert!((r.retraining_sd.unwrap() - (0.0006f64 / 7.0).sqrt()).abs() < 1e-12);
        let se = r.searched_sd_above_se.unwrap();
        assert!((se - (0.0029f64 / 0.0008).sqrt()).abs() < 1e-9, "{se}");
        let md = markdown(&r);
        assert!(
            md.contains(&format!("= +1.41 ± {se:.2} random sd (target ≥ +1): target met, within one standard error")),
            "{md}"
        );
        // --select: searched_1 did better held out; its val mean 0.51 is below its own cell on
        // the DeepLab-like path (0.56) and the random mean.
        let s = r.selection.as_ref().unwrap();
        assert_eq!(s.selected, "searched_1");
        assert_eq!(s.holdout[1].folds, [0.45, 0.41]);
        assert!((s.holdout[1].mean - 0.43).abs() < 1e-12);
        assert!((s.mean - 0.51).abs() < 1e-12);
        // One network of two seeds: the retraining noise / √2 with the random mean's error; a
        // miss by 1.35 sd is more than that.
        let se = s.sd_above_se.unwrap();
        assert!((se - ((0.0006 / 7.0 / 2.0 + 0.0004) / 0.0008f64).sqrt()).abs() < 1e-9, "{se}");
        assert!(
            md.contains(&format!("-0.35 ± {se:.2} random sd: target missed by 1.35 sd (3.83 points), rank")),
            "{md}"
        );
        assert_eq!(s.baselines, ["paper", "deeplab_path_1"]);
        assert!(!s.beats_baselines);
        assert_eq!(s.rank, 4, "below deeplab_path, deeplab_path_1 and random_001");
        assert!(s.sd_above_random.unwrap() < 0.0);
        assert!(markdown(&r).contains("**searched_1**"));
        // The group is (0.56 − 0.52) / 0.028 = +1.41 sd above random; the pick (0.51) is below.
        let text = markdown(&r);
        assert!(text.contains("random sd (target ≥ +1): target met"), "{text}");
        let missed = 1.0 - s.sd_above_random.unwrap();
        assert!(
            text.contains(&format!(
                "random sd: target missed by {missed:.2} sd ({:.2} points)",
                100.0 * (0.52 - 0.51 + 0.0008f64.sqrt())
            )),
            "{text}"
        );
        let units = plan.units(&entries);
        assert_eq!(units.len(), 4 + 2 * entries.len());
        let fold = |swapped| Some(Holdout { seed: 0, swapped });
        assert_eq!(
            units[..4].iter().map(|u| (u.entry, u.holdout)).collect::<Vec<_>>(),
            [(0, fold(false)), (1, fold(false)), (0, fold(true)), (1, fold(true))]
        );
        assert!(units[4..].iter().all(|u| u.holdout.is_none()));
        assert_eq!(units[0].file_stem(&entries[0]), "select-searched-fold0");
        assert_eq!(units[3].folder(&entries[1]), "runs/select/searched_1/fold1");
        // Two selection seeds: seed 0's four units as before (the same files), then seed 1's.
        let two = ComparePlan { select_seeds: 2, ..plan.clone() };
        let units = two.units(&entries);
        assert_eq!(units.len(), 8 + 2 * entries.len());
        assert_eq!(
            units[..8].iter().map(|u| (u.entry, u.seed, u.holdout)).collect::<Vec<_>>(),
            [
                (0, 0, fold(false)),
                (1, 0, fold(false)),
                (0, 0, fold(true)),
                (1, 0, fold(true)),
                (0, 1, fold(false)),
                (1, 1, fold(false)),
                (0, 1, fold(true)),
                (1, 1, fold(true))
            ]
        );
        assert_eq!(units[0].file_stem(&entries[0]), "select-searched-fold0");
        assert_eq!(units[7].file_stem(&entries[1]), "select-searched_1-fold1-seed1");
        assert_eq!(units[7].folder(&entries[1]), "runs/select/searched_1/fold1-seed1");
        assert_eq!(units[8].file_stem(&entries[0]), "searched-seed0");
        // Without --select no selection unit, whatever select_seeds says.
        let none = ComparePlan { select: false, ..two };
        assert!(none.units(&entries).iter().all(|u| u.holdout.is_none()));
        // The score is the mean over folds and seeds: searched 0.41 and 0.47 per seed (0.44),
        // searched_1 0.43 and 0.41 (0.42), so the second seed turns the pick to searched.
        let holdout = [(0, 0.40), (1, 0.45), (0, 0.42), (1, 0.41), (0, 0.46), (1, 0.42), (0, 0.48), (1, 0.40)];
        let mious = vec![vec![0.5]; entries.len()];
        let r = summarise(&entries, mious, 1, &holdout);
        let s = r.selection.as_ref().unwrap();
        assert_eq!(s.selected, "searched");
        assert_eq!(s.seeds, 2);
        assert_eq!(s.holdout[0].folds, [0.40, 0.42, 0.46, 0.48]);
        assert!((s.holdout[0].mean - 0.44).abs() < 1e-12 && (s.holdout[1].mean - 0.42).abs() < 1e-12);
        assert!(markdown(&r).contains("and the other way round, with 2 retraining seeds each"));
    }
}
