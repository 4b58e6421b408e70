//! `search train`: retraining a decoded network from scratch (paper §5.2): SGD with momentum and
//! DeepLab's poly learning rate, random crops, scheduled drop path, evaluation on the val split
//! every `eval_every` iterations. The same loop trains the demo's per-pixel baseline.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use cell::Conv2d;
use seg::data::{list_samples, Annotation, Loader, Mode};
use serde::{Deserialize, Serialize};
use tch::nn::Module;
use tch::{nn, Device, Tensor};
use tracing::{info, info_span, warn};
use trellis::{Architecture, DecodedNetwork, DecodedNetworkConfig, DropPath};

use crate::checkpoint::{load_store, read_state, read_tensors, store_tensors, write_tensors, Checkpoints};
use crate::optim::{poly_lr, Params, Sgd};
use crate::run_config::RetrainConfig;
use crate::rundir::{peak_rss_mib, RunDir};
use crate::search_run::check_data;
use crate::step::{has_labels, segmentation_loss};

/// A network that maps normalised images `[N, 3, H, W]` to logits `[N, classes, H, W]`.
pub trait Segmenter {
    /// `progress`: fraction of training done (drives scheduled drop path).
    fn logits(&self, images: &Tensor, train: bool, progress: f64) -> Tensor;
}

/// The decoded network with its drop-path setting.
pub struct Deployed {
    pub net: DecodedNetwork,
    pub drop_path_keep_prob: f64,
}

impl Segmenter for Deployed {
    fn logits(&self, images: &Tensor, train: bool, progress: f64) -> Tensor {
        self.net.forward_drop_path(images, train, DropPath { keep_prob: self.drop_path_keep_prob, progress })
    }
}

/// The demo's baseline: a 1x1 convolution from the pixel's colour to class logits.
pub struct PixelClassifier {
    conv: Conv2d,
}

impl PixelClassifier {
    pub fn new(p: &nn::Path, classes: i64) -> PixelClassifier {
        PixelClassifier { conv: Conv2d::new(p / "classifier", 3, classes, 1, Default::default()) }
    }
}

impl Segmenter for PixelClassifier {
    fn logits(&self, images: &Tensor, _train: bool, _progress: f64) -> Tensor {
        self.conv.forward(images)
    }
}

/// Which model `train` trains.
pub enum ModelChoice {
    Deployed(Architecture),
    PixelBaseline,
}

/// How `search train` was asked to run.
pub struct RetrainOptions {
    pub config: RetrainConfig,
    pub model: ModelChoice,
    pub out: PathBuf,
    pub device: Device,
    pub resume: bool,
    pub stop_after_steps: Option<usize>,
}

/// How a retraining ended.
#[derive(Debug)]
pub enum RetrainOutcome {
    /// All iterations done: the final val mIoU and the weights file.
    Finished {
        val_miou: f64,
        weights: PathBuf,
    },
    Stopped(PathBuf),
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct RetrainState {
    iteration: usize,
    epoch: usize,
    batch: usize,
    best_val_miou: Option<f64>,
}

/// Builds the model of `choice` in `vs`.
pub fn build_model(choice: &ModelChoice, config: &RetrainConfig, vs: &nn::VarStore) -> Box<dyn Segmenter> {
    match choice {
        ModelChoice::Deployed(architecture) => {
            let net = DecodedNetworkConfig {
                architecture: architecture.clone(),
                filter_multiplier: config.model.filter_multiplier,
                classes: config.model.classes,
            }
            .build(&vs.root());
            Box::new(Deployed { net, drop_path_keep_prob: config.model.drop_path_keep_prob })
        }
        ModelChoice::PixelBaseline => Box::new(PixelClassifier::new(&vs.root(), config.model.classes)),
    }
}

fn guard(config: &RetrainConfig, model: &ModelChoice) -> Result<()> {
    if config.iterations == 0 {
        bail!("config key `iterations` must be at least 1");
    }
    if !(config.model.drop_path_keep_prob > 0.0 && config.model.drop_path_keep_prob <= 1.0) {
        bail!("config key `model.drop_path_keep_prob` must be in (0, 1], got {}", config.model.drop_path_keep_prob);
    }
    if let ModelChoice::Deployed(architecture) = model {
        let layers = architecture.path.num_layers();
        let blocks = architecture.cell.num_blocks();
        architecture
            .check_shape(config.model.blocks.unwrap_or(blocks), config.model.layers.unwrap_or(layers), "--arch")
            .context("the architecture does not match config keys `model.blocks` / `model.layers`")?;
    }
    Ok(())
}

/// Runs (or resumes) a retraining.
pub fn train(options: RetrainOptions) -> Result<RetrainOutcome> {
    let config = &options.config;
    guard(config, &options.model)?;
    let device = options.device;
    let data = &config.data;
    let samples = list_samples(&data.root, &data.train_split, Annotation::Fine)
        .with_context(|| format!("listing the training split of {}", data.root.display()))?;
    check_data(data, &samples)?;
    let val = list_samples(&data.root, &data.val_split, Annotation::Fine).context("listing the val split")?;
    let loader =
        Loader::new(samples, data.transform.clone(), data.loader.clone(), Mode::Train).context("the training split")?;

    let dir = if options.resume {
        RunDir::open(&options.out, device)?
    } else {
        RunDir::create(&options.out, config, device)?
    };
    if let (ModelChoice::Deployed(architecture), false) = (&options.model, options.resume) {
        architecture.save(&dir.path("arch.json"))?;
    }
    let checkpoints = Checkpoints::new(dir.path("checkpoints"), config.checkpoint.keep_last)?;
    tch::manual_seed(config.seed as i64);
    let mut vs = nn::VarStore::new(device);
    let model = build_model(&options.model, config, &vs);
    let mut sgd = Sgd::new(Params::of(&vs), config.sgd());
    let mut state = RetrainState { iteration: 0, epoch: 0, batch: 0, best_val_miou: None };
    if options.resume {
        let checkpoint =
            checkpoints.latest()?.with_context(|| format!("{} has no checkpoint to resume", options.out.display()))?;
        load_store(&mut vs, &checkpoint.join("weights.safetensors"))?;
        sgd.load_state(&read_tensors(&checkpoint.join("optim.safetensors"))?);
        state = read_state(&checkpoint)?;
        info!(checkpoint = %checkpoint.display(), iteration = state.iteration, "resuming");
    }
    let parameters: usize = Params::of(&vs).tensors().iter().map(|t| t.numel()).sum();
    info!(parameters, iterations = config.iterations, batches_per_epoch = loader.batches_per_epoch(), "train");

    let evaluate = |model: &dyn Segmenter| -> Result<f64> {
        let forward = |x: &Tensor| model.logits(x, false, 1.0);
        let matrix =
            crate::evaluate::evaluate(&val, &data.transform, data.eval_window, device, data.loader.workers, &forward)?;
        Ok(matrix.scores().miou)
    };
    let save = |state: &RetrainState, sgd: &Sgd, vs: &nn::VarStore, best: bool| -> Result<PathBuf> {
        let optim = sgd.state().into_iter().map(|(n, t)| (n, t.detach().to_device(Device::Cpu))).collect();
        checkpoints.save(state.iteration, &[("weights", store_tensors(vs)), ("optim", optim)], state, best)
    };

    let bar = crate::logging::progress(config.iterations as u64, "train");
    bar.set_position(state.iteration as u64);
    let mut batches = loader.epoch_from(config.seed, state.epoch as u64, state.batch);
    let mut window = (Instant::now(), 0usize);
    while state.iteration < config.iterations {
        let iteration = state.iteration;
        let _span = info_span!("iteration", iteration).entered();
        let batch = match batches.next() {
            Some(batch) => batch?,
            None => {
                state.epoch += 1;
                state.batch = 0;
                batches = loader.epoch(config.seed, state.epoch as u64);
                continue;
            }
        };
        let (images, labels) = batch.to_tensors(device);
        tch::manual_seed((config.seed as i64) ^ (iteration as i64));
        let lr = poly_lr(config.lr, iteration, config.iterations, config.lr_power);
        let progress = iteration as f64 / config.iterations as f64;
        let mut loss_value = f64::NAN;
        if has_labels(&labels) {
            sgd.params().zero_grad();
            let logits = tch::autocast(config.autocast && device.is_cuda(), || model.logits(&images, true, progress));
            let loss = segmentation_loss(&logits.to_kind(tch::Kind::Float), &labels);
            loss_value = f64::try_from(&loss)?;
            if !loss_value.is_finite() {
                bail!("non-finite loss {loss_value} at iteration {iteration}; the last good checkpoint is kept");
            }
            loss.backward();
            sgd.step(lr);
        } else {
            warn!(iteration, "batch has only ignored pixels: step skipped");
        }
        state.iteration += 1;
        state.batch += 1;
        window.1 += batch.len();
        bar.inc(1);
        if config.log_every_steps > 0 && state.iteration % config.log_every_steps == 0 {
            let seconds = window.0.elapsed().as_secs_f64();
            dir.metric(&serde_json::json!({
                "kind": "step", "iteration": state.iteration, "loss": loss_value, "lr": lr,
                "images_per_second": window.1 as f64 / seconds, "peak_rss_mib": peak_rss_mib(),
            }))?;
            info!(iteration = state.iteration, loss = loss_value, lr, "step");
            window = (Instant::now(), 0);
        }
        let last = state.iteration == config.iterations;
        if config.eval_every > 0 && state.iteration % config.eval_every == 0 && !last {
            let miou = evaluate(model.as_ref())?;
            let best = state.best_val_miou.is_none_or(|b| miou > b);
            if best {
                state.best_val_miou = Some(miou);
            }
            dir.metric(&serde_json::json!({"kind": "eval", "iteration": state.iteration, "val_miou": miou}))?;
            info!(iteration = state.iteration, val_miou = miou, "evaluated");
            save(&state, &sgd, &vs, best)?;
        }
        let stop = crate::interrupt::requested() || options.stop_after_steps.is_some_and(|n| state.iteration >= n);
        let periodic = config.checkpoint.every_steps > 0 && state.iteration % config.checkpoint.every_steps == 0;
        if (stop || periodic) && !last {
            let path = save(&state, &sgd, &vs, false)?;
            if stop {
                crate::logging::finish_progress();
                info!(checkpoint = %path.display(), "stopped; resume with --resume");
                return Ok(RetrainOutcome::Stopped(path));
            }
        }
    }
    crate::logging::finish_progress();
    let miou = evaluate(model.as_ref())?;
    let best = state.best_val_miou.is_none_or(|b| miou >= b);
    if best {
        state.best_val_miou = Some(miou);
    }
    dir.metric(&serde_json::json!({"kind": "eval", "iteration": state.iteration, "val_miou": miou, "final": true}))?;
    save(&state, &sgd, &vs, best)?;
    let weights = dir.path("weights.safetensors");
    let tmp = dir.path("weights.safetensors.tmp");
    write_tensors(&tmp, &store_tensors(&vs))?;
    std::fs::rename(&tmp, &weights).with_context(|| format!("writing {}", weights.display()))?;
    info!(val_miou = miou, weights = %weights.display(), "training finished");
    Ok(RetrainOutcome::Finished { val_miou: miou, weights })
}
