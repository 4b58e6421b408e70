//! `search train`: retraining a decoded network from scratch (paper §5.2): SGD with momentum and
//! DeepLab's poly learning rate, random crops, scheduled drop path, evaluation on the val split
//! every `eval_every` iterations, gradient clipping as in the search. The steps run in the one
//! training loop ([`crate::train::train_loop`]). The same task trains the demo's per-pixel baseline.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use cell::Conv2d;
use seg::data::loader::EpochBatches;
use seg::data::{Loader, Mode, SampleRef};
use tch::nn::Module;
use tch::{nn, Device, Tensor};
use tracing::{info, warn};
use trellis::{Architecture, DecodedNetwork, DecodedNetworkConfig, DropPath};

use crate::dist::Ranks;
use crate::run_config::{FinalWeights, RetrainConfig};
use crate::store::checkpoint::{load_store, read_state, read_tensors, store_tensors, write_tensors};
use crate::store::session::{self, Compute, RunRequest};
use crate::tasks::search_run::check_data;
use crate::train::loss_scale::LossScaler;
use crate::train::optim::{poly_lr, Optimiser, Params, Sgd};
use crate::train::optimised::{defined, Optimised};
use crate::train::step::{has_labels, segmentation_loss};
use crate::train::train_loop::{EvalSchedule, LoopConfig, LoopOutcome, Position, StepRecord, Task};

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
    pub run: RunRequest,
    /// Train on one half of the training split and evaluate on the other, instead of the val
    /// split (which is then not read): how `search compare --select` scores a searched
    /// architecture.
    pub holdout: Option<Holdout>,
}

/// The training split cut into halves as a search with `seed` cuts it into trainA and trainB
/// (`seg::data::split_halves`): one half is trained on, the other evaluated on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Holdout {
    pub seed: u64,
    /// false: train on trainA, evaluate on trainB; true: train on trainB, evaluate on trainA.
    pub swapped: bool,
}

impl Holdout {
    /// The halves' names, trained on then evaluated on.
    pub fn names(&self) -> (&'static str, &'static str) {
        if self.swapped {
            ("trainB", "trainA")
        } else {
            ("trainA", "trainB")
        }
    }
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

/// Builds the model of `choice` in `vs`.
pub fn build_model(choice: &ModelChoice, config: &RetrainConfig, vs: &nn::VarStore) -> Box<dyn Segmenter> {
    match choice {
        ModelChoice::Deployed(architecture) => {
            let net = DecodedNetworkConfig {
                architecture: architecture.clone(),
                filter_multiplier: config.model.filter_multiplier,
                classes: config.model.classes,
                stem_channels: config.model.stem_channels,
            }
            .build(&vs.root());
            Box::new(Deployed { net, drop_path_keep_prob: config.model.drop_path_keep_prob })
        }
        ModelChoice::PixelBaseline => Box::new(PixelClassifier::new(&vs.root(), config.model.classes)),
    }
}

/// Checks that the architecture fits the config's `model.blocks` / `model.layers`.
fn check_architecture(config: &RetrainConfig, model: &ModelChoice) -> Result<()> {
    if let ModelChoice::Deployed(architecture) = model {
        let layers = architecture.path.num_layers();
        let blocks = architecture.cell.num_blocks();
        architecture
            .check_shape(config.model.blocks.unwrap_or(blocks), config.model.layers.unwrap_or(layers), "--arch")
            .context("the architecture does not match config keys `model.blocks` / `model.layers`")?;
    }
    Ok(())
}

/// Retraining as a [`Task`] of the training loop.
struct Retrain<'a> {
    config: &'a RetrainConfig,
    device: Device,
    vs: nn::VarStore,
    model: Box<dyn Segmenter>,
    /// SGD with the loss scaler (float16 autocast only), the ranks and clipping.
    sgd: Optimised<Sgd>,
    loader: Loader,
    val: Vec<SampleRef>,
    batches: Option<EpochBatches>,
    ranks: Ranks,
    /// The forward pass's precision.
    precision: crate::train::precision::Precision,
}

impl Task for Retrain<'_> {
    fn checkpoint_files(&self) -> Vec<(&'static str, Vec<(String, Tensor)>)> {
        let optim =
            self.sgd.optimiser().state().into_iter().map(|(n, t)| (n, t.detach().to_device(Device::Cpu))).collect();
        vec![("weights", store_tensors(&self.vs)), ("optim", optim)]
    }

    fn state(&self) -> serde_json::Value {
        match self.sgd.scaler() {
            Some(scaler) => serde_json::json!({ "loss_scale": scaler }),
            None => serde_json::Value::Null,
        }
    }

    fn restore(&mut self, checkpoint: &Path, state: &serde_json::Value) -> Result<()> {
        load_store(&mut self.vs, &checkpoint.join("weights.safetensors"))?;
        self.sgd.optimiser_mut().load_state(&read_tensors(&checkpoint.join("optim.safetensors"))?);
        if let Some(saved) = state.get("loss_scale").filter(|_| self.sgd.scaler().is_some()) {
            self.sgd.set_scaler(serde_json::from_value(saved.clone()).context("the checkpoint's `loss_scale` state")?);
        }
        Ok(())
    }

    fn begin_epoch(&mut self, epoch: usize, batch: usize) -> Result<()> {
        self.batches = Some(self.loader.epoch_from(self.config.seed, epoch as u64, batch));
        Ok(())
    }

    fn step(&mut self, at: Position) -> Result<StepRecord> {
        let c = self.config;
        let iteration = at.global_step;
        let waiting = std::time::Instant::now();
        let batch = self.batches.as_mut().expect("begun").next().context("the training split ended early")??;
        let data_seconds = waiting.elapsed().as_secs_f64();
        let (images, labels) = batch.to_tensors(self.device);
        let lr = poly_lr(c.lr, iteration, c.iterations, c.lr_power);
        let progress = iteration as f64 / c.iterations as f64;
        self.ranks.record_progress(iteration as u64 + 1);
        self.ranks.broadcast_buffers(&[&self.vs])?;
        let loss_value = if has_labels(&labels) {
            let logits = self.precision.run(|| self.model.logits(&images, true, progress));
            let loss = segmentation_loss(&logits, &labels);
            let value = f64::try_from(&loss)?;
            let grads = if value.is_finite() {
                let params: Vec<&Tensor> = self.sgd.params().tensors().iter().collect();
                defined(Tensor::run_backward(&[loss * self.sgd.loss_factor()], &params, false, false))
            } else {
                self.sgd.params().tensors().iter().map(|_| None).collect()
            };
            // The mean across the ranks: one non-finite loss stops every rank alike.
            let applied = self.sgd.apply(grads, value, lr)?;
            if !applied.loss.is_finite() {
                bail!("non-finite loss {} at iteration {iteration}; the last good checkpoint is kept", applied.loss);
            }
            applied.loss
        } else {
            warn!(iteration, "batch has only ignored pixels: this rank adds no gradient");
            self.sgd.apply_empty(lr)?.map_or(f64::NAN, |a| a.loss)
        };
        self.ranks.check_same_every(&[&self.vs], iteration)?;
        let fields = serde_json::json!({"lr": lr});
        let images = batch.len() * self.ranks.size();
        Ok(StepRecord::new(loss_value, images, fields, data_seconds, self.sgd.scaler()))
    }

    fn end_epoch(&mut self, _epoch: usize) -> Result<serde_json::Map<String, serde_json::Value>> {
        Ok(serde_json::Map::new())
    }

    fn evaluate(&mut self) -> Result<seg::Scores> {
        self.ranks.broadcast_buffers(&[&self.vs])?;
        let forward = |x: &Tensor| self.model.logits(x, false, 1.0);
        crate::deploy::evaluate::val_scores(&self.val, &self.config.data, self.device, &forward, &self.ranks)
    }

    fn pictures(&mut self, n: usize) -> Result<Vec<crate::observe::tensorboard::Picture>> {
        let forward = |x: &Tensor| self.model.logits(x, false, 1.0);
        crate::deploy::evaluate::prediction_pictures(&self.val, &self.config.data, self.device, n, &forward)
    }
}

/// Runs (or resumes) a retraining.
pub fn train(options: RetrainOptions) -> Result<RetrainOutcome> {
    let config = &options.config;
    check_architecture(config, &options.model)?;
    let (model_choice, holdout) = (&options.model, options.holdout);
    let options = &options.run;
    let device = options.device;
    let data = &config.data;
    let autocast = (config.autocast, config.autocast_dtype);
    let prepared = session::prepare(Compute::of(device, options.ranks.clone(), config.seed, autocast))?;
    let dataset = data.dataset().map_err(|e| anyhow::anyhow!("{}: {}", e.key, e.message))?;
    let samples = dataset
        .list_samples(&data.train_split)
        .with_context(|| format!("listing the training split of {} ({})", data.root.display(), data.format))?;
    check_data(data, &samples)?;
    let (samples, val) = match holdout {
        Some(h) => {
            if samples.len() < 2 {
                bail!(
                    "the training split of {} has {} image(s): scoring on held-out data needs at least 2 to cut into halves",
                    data.root.display(),
                    samples.len()
                );
            }
            let (a, b) = seg::data::split_halves(samples.len(), h.seed);
            let (train, eval) = if h.swapped { (b, a) } else { (a, b) };
            (seg::data::pick(&samples, &train), seg::data::pick(&samples, &eval))
        }
        None => {
            let val = dataset.list_samples(&data.val_split).context("listing the val split")?;
            (samples, val)
        }
    };
    // Each rank its own deterministic share; the global batch is the per-rank batch times the
    // world size.
    let val = prepared.share(&val);
    let loader = Loader::new(prepared.share_even(&samples), data.transform.clone(), data.loader.clone(), Mode::Train)
        .context("the training split")?;
    let flags = (config.sync_bn, config.tensorboard);
    let folder = options.folder(flags, data.loader.batch, config.checkpoint.keep_last);
    let session = prepared.open(folder, config)?;
    let dir = &session.dir;
    if let Some(h) = holdout {
        let (train, eval) = h.names();
        info!(
            seed = h.seed,
            train = samples.len(),
            eval = val.len(),
            "train on {train}, evaluate on {eval} (not the val split)"
        );
    }
    if let (ModelChoice::Deployed(architecture), false, true) = (model_choice, options.resume, dir.is_writer()) {
        architecture.save(&dir.path("arch.json"))?;
    }
    let vs = nn::VarStore::new(device);
    let model = build_model(model_choice, config, &vs);
    let sgd = Optimised::new(Sgd::new(Params::of(&vs), config.sgd()), session.ranks.clone(), config.grad_clip)
        .with_scaler(LossScaler::for_run(session.precision));
    let parameters: usize = Params::of(&vs).tensors().iter().map(|t| t.numel()).sum();
    let steps_per_epoch = loader.batches_per_epoch();
    info!(parameters, iterations = config.iterations, batches_per_epoch = steps_per_epoch, "train");
    session.start(&[&vs])?;
    let (ranks, precision) = (session.ranks.clone(), session.precision);
    let mut task = Retrain { config, device, vs, model, sgd, loader, val, batches: None, ranks, precision };
    let loop_config = LoopConfig {
        seed: config.seed,
        total_steps: config.iterations,
        steps_per_epoch,
        log_every_steps: config.log_every_steps,
        eval: EvalSchedule::EverySteps(config.eval_every),
        eval_at_end: true,
        checkpoint: config.checkpoint.clone(),
        checkpoint_every_epoch: false,
        stop_after_steps: options.stop_after_steps,
        device,
        run_config: serde_json::to_value(config).context("recording the config")?,
    };
    let val_miou = match session.run(&loop_config, &mut task)? {
        LoopOutcome::Stopped(path) => return Ok(RetrainOutcome::Stopped(path)),
        LoopOutcome::Finished { val_miou } => val_miou.expect("the loop evaluates at the end"),
    };
    let checkpoints = &session.checkpoints;
    let weights = dir.path("weights.safetensors");
    if !dir.is_writer() {
        // Rank 0 writes the final weights and their metrics.
        return Ok(RetrainOutcome::Finished { val_miou, weights });
    }
    // The final weights: the last ones, or those of the best evaluation, as the config says.
    let (mut val_miou, mut from) = (val_miou, checkpoints.latest()?);
    if config.checkpoint.final_weights == FinalWeights::Best {
        if let Some(best) = checkpoints.best() {
            load_store(&mut task.vs, &best.join("weights.safetensors"))?;
            let state: serde_json::Value = read_state(&best)?;
            val_miou = state["best_val_miou"].as_f64().unwrap_or(val_miou);
            from = Some(best);
        }
    }
    match model_choice {
        // The decoded network's weights carry what it is (docs/deploy.md).
        ModelChoice::Deployed(architecture) => {
            let card = crate::deploy::model_card::ModelCard::for_retraining(config, architecture, Some(val_miou))?;
            crate::deploy::model_card::write_with_metadata(&weights, &store_tensors(&task.vs), &card.to_metadata())?
        }
        ModelChoice::PixelBaseline => write_tensors(&weights, &store_tensors(&task.vs))?,
    }
    let step = from.as_ref().and_then(|p| p.file_name()?.to_str()?.strip_prefix("step_")?.parse::<u64>().ok());
    let choice = match config.checkpoint.final_weights {
        FinalWeights::Last => "last",
        FinalWeights::Best => "best",
    };
    dir.metric(&serde_json::json!({"kind": "final", "step": config.iterations, "weights": choice,
                                   "from_step": step, "val_miou": val_miou}))?;
    info!(
        "training finished: final weights are the {choice} ones (step {}), val mIoU {val_miou:.4}, in {}",
        step.map_or("?".into(), |s| s.to_string()),
        weights.display()
    );
    Ok(RetrainOutcome::Finished { val_miou, weights })
}
