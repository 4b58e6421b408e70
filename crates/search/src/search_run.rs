//! `search run`: the bilevel architecture search (paper §4.2; DARTS first-order).
//!
//! The training list is cut into trainA (weights) and trainB (α, β) by a seeded split. Each step
//! updates the weights by SGD on a trainA batch with α and β held as constants (no gradient is
//! computed for them); from `arch_start_epoch` on it then updates α and β by Adam on a trainB
//! batch with the weights frozen (no gradient is computed for the weights). The weights'
//! learning rate follows a cosine schedule per epoch. After every epoch the run decodes the
//! architecture (`arch/epoch_NNN.json`); at the end it writes `arch/final.json` and pictures.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use seg::data::{list_samples, split_halves, Annotation, Batch, Loader, Mode, SampleRef};
use serde::{Deserialize, Serialize};
use tch::{nn, Device, Kind, Tensor};
use tracing::{info, info_span, warn};
use trellis::{ArchParams, Architecture};

use crate::checkpoint::{load_store, read_state, read_tensors, store_tensors, Checkpoints};
use crate::optim::{cosine_lr, Adam, Params, Sgd};
use crate::run_config::{DataConfig, SearchRunConfig};
use crate::rundir::{peak_rss_mib, write_atomic, RunDir};
use crate::step::has_labels;
pub use crate::step::segmentation_loss;

/// How `search run` was asked to run.
pub struct SearchOptions {
    pub config: SearchRunConfig,
    /// The run folder.
    pub out: PathBuf,
    pub device: Device,
    /// Continue the run in `out` from its latest checkpoint.
    pub resume: bool,
    /// Stop (with a checkpoint, as on Ctrl-C) once this many steps are done in total.
    pub stop_after_steps: Option<usize>,
}

/// How a search ended.
#[derive(Debug)]
pub enum SearchOutcome {
    /// All epochs done; the decoded architecture.
    Finished(Architecture),
    /// Stopped early; the checkpoint to resume from.
    Stopped(PathBuf),
}

/// Position and bookkeeping saved in every checkpoint.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct SearchState {
    /// Epoch to continue in, and the first batch of it not yet done.
    epoch: usize,
    batch: usize,
    global_step: usize,
    arch_steps: i64,
    best_val_miou: Option<f64>,
    /// Indices of the training list in trainA and trainB (stable across resumes).
    train_a: Vec<usize>,
    train_b: Vec<usize>,
}

/// Checks the data against the transform before any training: the train split must exist and
/// the crop must fit inside the (resized) images.
pub fn check_data(data: &DataConfig, samples: &[SampleRef]) -> Result<()> {
    let first = samples.first().context("the training split is empty")?;
    let (w, h) = image::image_dimensions(&first.image).with_context(|| format!("reading {}", first.image.display()))?;
    let t = &data.transform;
    let scale = t.base_scale * t.scale_range[1];
    let (sw, sh) = ((w as f32 * scale).round() as u32, (h as f32 * scale).round() as u32);
    let [ch, cw] = t.crop;
    if ch > sh || cw > sw {
        bail!(
            "config data.transform.crop = [{ch}, {cw}] (height, width) is larger than the images after resizing: \
             {} is {w}x{h}, {sw}x{sh} at base_scale {} x scale {}; use a smaller crop or a larger base_scale",
            first.image.display(),
            t.base_scale,
            t.scale_range[1]
        );
    }
    Ok(())
}

fn guard_config(config: &SearchRunConfig) -> Result<()> {
    if config.epochs == 0 {
        bail!("config key `epochs` must be at least 1");
    }
    if config.arch_start_epoch >= config.epochs {
        bail!(
            "config key `arch_start_epoch` = {} but `epochs` = {}: no epoch would update α and β (epochs are 0-based)",
            config.arch_start_epoch,
            config.epochs
        );
    }
    if config.model.layers == 0 || config.model.blocks == 0 || config.model.filter_multiplier < 1 {
        bail!("config keys `model.layers`, `model.blocks` and `model.filter_multiplier` must be at least 1");
    }
    let k = config.model.partial_channels;
    if k < 1 || config.model.filter_multiplier % k != 0 {
        bail!(
            "config key `model.partial_channels` = {k} must be at least 1 and divide `model.filter_multiplier` = {} (the channels of every level are multiples of it)",
            config.model.filter_multiplier
        );
    }
    Ok(())
}

/// Runs (or resumes) a search.
pub fn run(options: SearchOptions) -> Result<SearchOutcome> {
    let config = &options.config;
    guard_config(config)?;
    let device = options.device;
    let data = &config.data;
    let samples = list_samples(&data.root, &data.train_split, Annotation::Fine)
        .with_context(|| format!("listing the training split of {}", data.root.display()))?;
    check_data(data, &samples)?;

    tch::manual_seed(config.seed as i64);
    let mut weights_store = nn::VarStore::new(device);
    let mut arch_store = nn::VarStore::new(device);
    let net = config.model.build(&weights_store.root());
    let arch = ArchParams::new(&arch_store.root(), config.model.blocks, config.model.layers);
    let mut sgd = Sgd::new(Params::of(&weights_store), config.weights.sgd());
    let mut adam = Adam::new(Params::of(&arch_store), config.arch.clone());

    let (train_a, train_b) = split_halves(samples.len(), config.seed);
    let mut state = SearchState {
        epoch: 0,
        batch: 0,
        global_step: 0,
        arch_steps: 0,
        best_val_miou: None,
        train_a: train_a.clone(),
        train_b: train_b.clone(),
    };
    let checkpoints = Checkpoints::new(options.out.join("checkpoints"), config.checkpoint.keep_last)?;
    if options.resume {
        let checkpoint =
            checkpoints.latest()?.with_context(|| format!("{} has no checkpoint to resume", options.out.display()))?;
        load_store(&mut weights_store, &checkpoint.join("weights.safetensors"))?;
        load_store(&mut arch_store, &checkpoint.join("arch.safetensors"))?;
        state = read_state(&checkpoint)?;
        let optim = read_tensors(&checkpoint.join("optim.safetensors"))?;
        sgd.load_state(&optim);
        adam.load_state(&optim, state.arch_steps);
        if (state.train_a.clone(), state.train_b.clone()) != (train_a, train_b) {
            bail!(
                "{}: the trainA/trainB split differs from this data set's; was the data changed?",
                checkpoint.display()
            );
        }
        info!(checkpoint = %checkpoint.display(), epoch = state.epoch, batch = state.batch, "resuming");
    }
    let pick = |indices: &[usize]| -> Vec<SampleRef> { indices.iter().map(|&i| samples[i].clone()).collect() };
    let loader_a = Loader::new(pick(&state.train_a), data.transform.clone(), data.loader.clone(), Mode::Train)
        .context("trainA (the half of the training split that trains the weights)")?;
    let loader_b = Loader::new(pick(&state.train_b), data.transform.clone(), data.loader.clone(), Mode::Train)
        .context("trainB (the half of the training split that trains α and β)")?;
    let steps_per_epoch =
        config.steps_per_epoch.map_or(loader_a.batches_per_epoch(), |s| s.min(loader_a.batches_per_epoch()));
    // The run folder is created only once the data and the loaders are known to be usable.
    let dir = if options.resume {
        RunDir::open(&options.out, device)?
    } else {
        RunDir::create(&options.out, config, device)?
    };
    let val_samples = if config.eval_every_epochs > 0 {
        Some(list_samples(&data.root, &data.val_split, Annotation::Fine).context("listing the val split")?)
    } else {
        None
    };
    info!(
        train_a = state.train_a.len(),
        train_b = state.train_b.len(),
        steps_per_epoch,
        epochs = config.epochs,
        weights = Params::of(&weights_store).tensors().iter().map(|t| t.numel()).sum::<usize>(),
        "search"
    );

    let seed_b = config.seed ^ 0xB0B0_B0B0;
    while state.epoch < config.epochs {
        let epoch = state.epoch;
        let _span = info_span!("epoch", epoch).entered();
        let lr = cosine_lr(config.weights.lr_max, config.weights.lr_min, epoch, config.epochs);
        let arch_active = epoch >= config.arch_start_epoch;
        let mut batches_a = loader_a.epoch_from(config.seed, epoch as u64, state.batch);
        // trainB is read in step with trainA (step s uses its batch s, cycling through trainB
        // when it is shorter), and only while α and β are trained.
        let b_per_epoch = loader_b.batches_per_epoch();
        let mut batches_b: Option<(usize, seg::data::loader::EpochBatches)> = None;
        let bar = crate::logging::progress(steps_per_epoch as u64, format!("epoch {epoch}"));
        bar.set_position(state.batch as u64);
        let mut window = (Instant::now(), 0usize);
        let mut epoch_loss = (0.0, 0usize);
        while state.batch < steps_per_epoch {
            let step = state.batch;
            let _step_span = info_span!("step", step).entered();
            let batch_a: Batch = batches_a.next().context("trainA ended early")??;
            let (images, labels) = batch_a.to_tensors(device);
            tch::manual_seed((config.seed as i64) ^ (state.global_step as i64));
            let mut loss_weights = f64::NAN;
            if has_labels(&labels) {
                let timing = crate::step::weight_step(
                    &net,
                    &arch,
                    &weights_store,
                    &mut sgd,
                    &images,
                    &labels,
                    lr,
                    config.weights.grad_clip,
                    config.autocast,
                );
                loss_weights = timing.loss;
                if !loss_weights.is_finite() {
                    bail!("non-finite weight loss {loss_weights} at epoch {epoch}, step {step} (global step {}); the last good checkpoint is kept", state.global_step);
                }
            } else {
                warn!(epoch, step, "trainA batch has only ignored pixels: weight step skipped");
            }
            let mut loss_arch = None;
            if arch_active {
                let cycle = step / b_per_epoch;
                if batches_b.as_ref().map(|(c, _)| *c) != Some(cycle) {
                    let stream = loader_b.epoch_from(seed_b, (epoch * 1000 + cycle) as u64, step % b_per_epoch);
                    batches_b = Some((cycle, stream));
                }
                let (_, stream) = batches_b.as_mut().expect("the trainB stream was just set");
                let batch_b = stream.next().context("trainB ended early")??;
                let (images_b, labels_b) = batch_b.to_tensors(device);
                if has_labels(&labels_b) {
                    let timing =
                        crate::step::arch_step(&net, &arch, &mut weights_store, &mut adam, &images_b, &labels_b);
                    let value = timing.loss;
                    if !value.is_finite() {
                        bail!("non-finite architecture loss {value} at epoch {epoch}, step {step} (global step {}); the last good checkpoint is kept", state.global_step);
                    }
                    loss_arch = Some(value);
                }
            }
            state.batch += 1;
            state.global_step += 1;
            state.arch_steps = adam.steps();
            if loss_weights.is_finite() {
                epoch_loss = (epoch_loss.0 + loss_weights, epoch_loss.1 + 1);
            }
            window.1 += batch_a.len();
            bar.inc(1);
            if config.log_every_steps > 0 && state.global_step % config.log_every_steps == 0 {
                let seconds = window.0.elapsed().as_secs_f64();
                dir.metric(&serde_json::json!({
                    "kind": "step", "epoch": epoch, "step": step, "global_step": state.global_step,
                    "loss_weights": loss_weights, "loss_arch": loss_arch, "lr_weights": lr,
                    "lr_arch": if arch_active { Some(config.arch.lr) } else { None },
                    "images_per_second": window.1 as f64 / seconds, "peak_rss_mib": peak_rss_mib(),
                }))?;
                info!(global_step = state.global_step, loss_weights, ?loss_arch, lr, "step");
                window = (Instant::now(), 0);
            }
            let stop =
                crate::interrupt::requested() || options.stop_after_steps.is_some_and(|n| state.global_step >= n);
            let periodic = config.checkpoint.every_steps > 0 && state.global_step % config.checkpoint.every_steps == 0;
            if (stop || periodic) && state.batch < steps_per_epoch {
                let path = save(&checkpoints, &state, &weights_store, &arch_store, &sgd, &adam, false)?;
                if stop {
                    crate::logging::finish_progress();
                    info!(checkpoint = %path.display(), "stopped; resume with --resume");
                    return Ok(SearchOutcome::Stopped(path));
                }
            }
        }
        crate::logging::finish_progress();

        // End of epoch: decode, evaluate, checkpoint.
        let decoded = tch::no_grad(|| trellis::decode(arch.alpha.logits(), &arch.beta, &dir.path("arch")))?;
        let mut record = decoded.clone();
        record.extra.insert("epoch".into(), serde_json::json!(epoch));
        record.save(&dir.path(&format!("arch/epoch_{epoch:03}.json")))?;
        append_history(&dir, epoch, &arch)?;
        let val_miou = match &val_samples {
            Some(val) if (epoch + 1) % config.eval_every_epochs == 0 => {
                let weights = tch::no_grad(|| arch.weights());
                let forward = |x: &Tensor| net.forward_t(x, &weights, false);
                let matrix = crate::evaluate::evaluate(
                    val,
                    &data.transform,
                    data.eval_window,
                    device,
                    data.loader.workers,
                    &forward,
                )?;
                Some(matrix.scores().miou)
            }
            _ => None,
        };
        let best = val_miou.is_some_and(|m| state.best_val_miou.is_none_or(|b| m > b));
        if best {
            state.best_val_miou = val_miou;
        }
        let train_loss = epoch_loss.0 / epoch_loss.1.max(1) as f64;
        dir.metric(&serde_json::json!({
            "kind": "epoch", "epoch": epoch, "train_loss": train_loss, "val_miou": val_miou,
            "lr_weights": lr, "arch_active": arch_active, "peak_rss_mib": peak_rss_mib(),
            "cell": decoded.cell, "path": decoded.path,
        }))?;
        info!(epoch, train_loss, ?val_miou, path = ?decoded.path.levels(), "epoch done");
        state.epoch += 1;
        state.batch = 0;
        save(&checkpoints, &state, &weights_store, &arch_store, &sgd, &adam, best)?;
        let stop = crate::interrupt::requested() || options.stop_after_steps.is_some_and(|n| state.global_step >= n);
        if stop && state.epoch < config.epochs {
            let path = checkpoints.latest()?.expect("just saved");
            info!(checkpoint = %path.display(), "stopped; resume with --resume");
            return Ok(SearchOutcome::Stopped(path));
        }
    }

    let decoded = tch::no_grad(|| trellis::decode(arch.alpha.logits(), &arch.beta, &dir.path("arch")))?;
    decoded.save(&dir.path("arch/final.json"))?;
    crate::plots::write_search_pictures(&dir, &decoded)?;
    info!(run = %dir.root().display(), cell = %serde_json::to_string(&decoded.cell)?, path = ?decoded.path.levels(), "search finished");
    Ok(SearchOutcome::Finished(decoded))
}

fn save(
    checkpoints: &Checkpoints,
    state: &SearchState,
    weights: &nn::VarStore,
    arch: &nn::VarStore,
    sgd: &Sgd,
    adam: &Adam,
    best: bool,
) -> Result<PathBuf> {
    let mut optim = sgd.state();
    optim.extend(adam.state());
    let optim = optim.into_iter().map(|(n, t)| (n, t.detach().to_device(Device::Cpu))).collect();
    checkpoints.save(
        state.global_step,
        &[("weights", store_tensors(weights)), ("arch", store_tensors(arch)), ("optim", optim)],
        state,
        best,
    )
}

/// One line per epoch in `arch/history.jsonl`: softmax(α) and normalised β, for the pictures.
fn append_history(dir: &RunDir, epoch: usize, arch: &ArchParams) -> Result<()> {
    let weights = tch::no_grad(|| arch.weights());
    let to_vec = |t: &Tensor| {
        Vec::<f64>::try_from(t.to_device(Device::Cpu).to_kind(Kind::Double).flatten(0, -1)).expect("doubles")
    };
    let line = serde_json::json!({
        "epoch": epoch,
        "alpha": to_vec(&weights.alpha).chunks(8).map(|c| c.to_vec()).collect::<Vec<_>>(),
        "beta": to_vec(&weights.beta).chunks(12).map(|l| l.chunks(3).map(|c| c.to_vec()).collect::<Vec<_>>()).collect::<Vec<_>>(),
    });
    let path = dir.path("arch/history.jsonl");
    let mut text = std::fs::read_to_string(&path).unwrap_or_default();
    // Drop a line for this epoch left by a run that died before its checkpoint.
    text = text
        .lines()
        .filter(|l| {
            serde_json::from_str::<serde_json::Value>(l).ok().and_then(|v| v["epoch"].as_u64()) != Some(epoch as u64)
        })
        .map(|l| format!("{l}\n"))
        .collect();
    text.push_str(&format!("{line}\n"));
    write_atomic(&path, text.as_bytes())
}

/// Reads `arch/history.jsonl` of a run folder.
pub fn read_history(root: &Path) -> Result<Vec<serde_json::Value>> {
    let path = root.join("arch/history.jsonl");
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    text.lines().map(|l| serde_json::from_str(l).with_context(|| format!("parsing {}", path.display()))).collect()
}
