//! `search run`: the bilevel architecture search (paper §4.2; DARTS first-order).
//!
//! The training list is cut into trainA (weights) and trainB (α, β) by a seeded split. Each step
//! updates the weights by SGD on a trainA batch with α and β held as constants (no gradient is
//! computed for them); from `arch_start_epoch` on it then updates α and β by Adam on a trainB
//! batch with the weights frozen (no gradient is computed for the weights). The weights'
//! learning rate follows a cosine schedule per epoch. After every epoch the run decodes the
//! architecture (`arch/epoch_NNN.json`); at the end it writes `arch/final.json` and pictures.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use seg::data::loader::EpochBatches;
use seg::data::{split_halves, Batch, Loader, Mode, SampleRef};
use serde::{Deserialize, Serialize};
use tch::{nn, Device, Tensor};
use tracing::{info, warn};
use trellis::{ArchParams, Architecture, SearchNetwork};

use crate::dist::Ranks;
use crate::run_config::{DataConfig, SearchRunConfig};
use crate::store::checkpoint::{load_store, read_tensors, store_tensors};
use crate::store::rundir::RunDir;
use crate::store::session::{self, Compute, RunRequest};
use crate::tasks::search_budget::Budget;
use crate::train::arch_loss::ArchLoss;
use crate::train::architect::{Architect, Unrolled};
use crate::train::loss_scale::LossScaler;
use crate::train::optim::{cosine_lr, Adam, Optimiser, Params, Sgd};
use crate::train::optimised::Optimised;
use crate::train::step::{weight_step, Labelled};
use crate::train::train_loop::{EvalSchedule, LoopConfig, LoopOutcome, Position, StepRecord, Task};

/// How `search run` was asked to run.
pub struct SearchOptions {
    pub config: SearchRunConfig,
    pub run: RunRequest,
}

/// How a search ended.
#[derive(Debug)]
pub enum SearchOutcome {
    /// All epochs done; the decoded architecture.
    Finished(Architecture),
    /// Stopped early; the checkpoint to resume from.
    Stopped(PathBuf),
}

/// The search's own part of a checkpoint's state.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct SearchState {
    arch_steps: i64,
    /// Indices of the training list in trainA and trainB (stable across resumes).
    train_a: Vec<usize>,
    train_b: Vec<usize>,
    /// `[arch.cost]`'s weight as the adaptive rule has left it (absent in runs without a cost
    /// term and in checkpoints written before it existed).
    #[serde(default)]
    cost_weight: Option<f64>,
    /// The fp16 loss scaler of the weight step (runs with autocast on CUDA only).
    #[serde(default)]
    loss_scale: Option<crate::train::loss_scale::LossScaler>,
    /// The blocks fixed so far by `[arch.progressive]`, in the order they were decided.
    #[serde(default)]
    decisions: Vec<trellis::progressive::Decision>,
    /// The path's layers fixed so far by `[arch.progressive] path`, from layer 0 on.
    #[serde(default)]
    path_decisions: Vec<trellis::progressive::PathDecision>,
    /// The decoded path at the last epoch's end and the first architecture epoch of its
    /// unbroken run (absent before the first architecture epoch, and in older checkpoints).
    #[serde(default)]
    path_since: Option<PathSince>,
}

/// How long the decoded path has stood: `path` decoded at the end of every epoch from `epoch`
/// on (architecture epochs only: before them β is uniform).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct PathSince {
    path: Vec<u8>,
    epoch: usize,
}

impl PathSince {
    /// Follows the decoded `path` at the end of `epoch`: the same path keeps its start, another
    /// starts anew.
    fn follow(previous: Option<PathSince>, path: &[u8], epoch: usize) -> PathSince {
        match previous {
            Some(p) if p.path == path => p,
            _ => PathSince { path: path.to_vec(), epoch },
        }
    }
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
            "config data.transform.crop = \"{cw}x{ch}\" is larger than the images after resizing: \
             {} is {w}x{h}, {sw}x{sh} at base_scale {} x scale {}; use a smaller crop or a larger base_scale",
            first.image.display(),
            t.base_scale,
            t.scale_range[1]
        );
    }
    Ok(())
}

/// The bilevel search as a [`Task`] of the training loop.
struct Search<'a> {
    config: &'a SearchRunConfig,
    device: Device,
    /// The weights' forward pass's precision.
    precision: crate::train::precision::Precision,
    dir: &'a RunDir,
    net: SearchNetwork,
    weights: nn::VarStore,
    arch_store: nn::VarStore,
    arch: ArchParams,
    /// The weights' SGD (with the loss scaler under float16 autocast, the ranks and clipping).
    sgd: Optimised<Sgd>,
    /// α, β (and the edge weights): Adam and the architecture gradient.
    architect: Architect,
    state: SearchState,
    loader_a: Loader,
    loader_b: Loader,
    val: Option<Vec<SampleRef>>,
    batches_a: Option<EpochBatches>,
    /// trainB is read in step with trainA (step s uses its batch s, cycling through trainB
    /// when it is shorter): the cycle and its stream.
    batches_b: Option<(usize, EpochBatches)>,
    lr: f64,
    ranks: Ranks,
    /// The architecture loss's extra terms and the stabilisers.
    arch_loss: ArchLoss,
    total_steps: usize,
    /// The global step of the first architecture step.
    arch_start_step: usize,
}

impl Search<'_> {
    /// The decoded architecture of the current α, β (and edge weights).
    fn decode(&self) -> Result<Architecture> {
        let edges = self.arch.edges.as_ref();
        Ok(tch::no_grad(|| {
            trellis::decode_with_edges(self.arch.alpha.logits(), &self.arch.beta, edges, &self.dir.path("arch"))
        })?)
    }

    fn seed_b(&self) -> u64 {
        self.config.seed ^ 0xB0B0_B0B0
    }
}

impl Task for Search<'_> {
    fn checkpoint_files(&self) -> Vec<(&'static str, Vec<(String, Tensor)>)> {
        let mut optim = self.sgd.optimiser().state();
        optim.extend(self.architect.adam().state());
        let optim = optim.into_iter().map(|(n, t)| (n, t.detach().to_device(Device::Cpu))).collect();
        vec![("weights", store_tensors(&self.weights)), ("arch", store_tensors(&self.arch_store)), ("optim", optim)]
    }

    fn state(&self) -> serde_json::Value {
        let state = SearchState { loss_scale: self.sgd.scaler().cloned(), ..self.state.clone() };
        serde_json::to_value(&state).expect("the search state serialises")
    }

    fn restore(&mut self, checkpoint: &Path, state: &serde_json::Value) -> Result<()> {
        load_store(&mut self.weights, &checkpoint.join("weights.safetensors"))?;
        load_store(&mut self.arch_store, &checkpoint.join("arch.safetensors"))?;
        let state: SearchState = serde_json::from_value(state.clone()).context("the search's state")?;
        let optim = read_tensors(&checkpoint.join("optim.safetensors"))?;
        self.sgd.optimiser_mut().load_state(&optim);
        self.architect.adam_mut().load_state(&optim, state.arch_steps);
        if (&state.train_a, &state.train_b) != (&self.state.train_a, &self.state.train_b) {
            bail!("the trainA/trainB split differs from this data set's; was the data changed?");
        }
        // The checkpoint's scaler where this run scales (a run resumed on another device, or
        // from a checkpoint older than the scaler, starts or drops it).
        if let Some(saved) = state.loss_scale.clone() {
            self.sgd.set_scaler(saved);
        }
        self.state = SearchState { loss_scale: None, ..state };
        Ok(())
    }

    fn begin_epoch(&mut self, epoch: usize, batch: usize) -> Result<()> {
        let c = self.config;
        self.lr = cosine_lr(c.weights.lr_max, c.weights.lr_min, epoch, c.epochs);
        self.batches_a = Some(self.loader_a.epoch_from(c.seed, epoch as u64, batch));
        self.batches_b = None;
        Ok(())
    }

    fn step(&mut self, at: Position) -> Result<StepRecord> {
        let c = self.config;
        let (epoch, step) = (at.epoch, at.batch);
        let waiting = std::time::Instant::now();
        let batch_a: Batch = self.batches_a.as_mut().expect("begun").next().context("trainA ended early")??;
        let mut data_seconds = waiting.elapsed().as_secs_f64();
        let (images, labels) = batch_a.to_tensors(self.device);
        let train_a = Labelled { images: &images, labels: &labels };
        let progress = at.global_step as f64 / self.total_steps.max(1) as f64;
        self.arch.aux_skip.set(self.arch_loss.aux_skip(progress));
        if let Some(t) = &c.arch.temperature {
            let arch_steps = self.total_steps.saturating_sub(self.arch_start_step).max(1);
            let t_arch = at.global_step.saturating_sub(self.arch_start_step) as f64 / arch_steps as f64;
            self.arch.temperature.set(t.at(t_arch));
        }
        self.ranks.record_progress(at.global_step as u64 + 1);
        self.ranks.broadcast_buffers(&[&self.weights])?;
        let timing = weight_step(&self.net, &self.arch, &mut self.sgd, train_a, self.lr, self.precision)?;
        let loss_weights = timing.loss;
        if !timing.labelled {
            warn!(epoch, step, "trainA batch has only ignored pixels: this rank adds no gradient");
        } else if !loss_weights.is_finite() {
            bail!("non-finite weight loss {loss_weights} at epoch {epoch}, step {step} (global step {}); the last good checkpoint is kept", at.global_step);
        }
        let arch_active = epoch >= c.arch_start_epoch;
        let mut loss_arch = None;
        let terms_seen = std::cell::Cell::new(None::<crate::train::arch_loss::Terms>);
        if arch_active {
            let b_per_epoch = self.loader_b.batches_per_epoch();
            let cycle = step / b_per_epoch;
            if self.batches_b.as_ref().map(|(c, _)| *c) != Some(cycle) {
                let stream = self.loader_b.epoch_from(self.seed_b(), (epoch * 1000 + cycle) as u64, step % b_per_epoch);
                self.batches_b = Some((cycle, stream));
            }
            let (_, stream) = self.batches_b.as_mut().expect("the trainB stream was just set");
            let waiting = std::time::Instant::now();
            let batch_b = stream.next().context("trainB ended early")??;
            data_seconds += waiting.elapsed().as_secs_f64();
            let (images_b, labels_b) = batch_b.to_tensors(self.device);
            let cost_weight = self.state.cost_weight.unwrap_or(0.0);
            let (arch_loss, arch) = (&self.arch_loss, &self.arch);
            let penalty_fn = || {
                let (penalty, terms) = arch_loss.penalty(arch, cost_weight, progress).expect("active");
                terms_seen.set(Some(terms));
                penalty
            };
            let penalty: Option<&dyn Fn() -> Tensor> = arch_loss.is_active().then_some(&penalty_fn);
            let unrolled = Unrolled { weights: &self.sgd, train_a, weight_lr: self.lr };
            let train_b = Labelled { images: &images_b, labels: &labels_b };
            let timing = self.architect.step(&self.net, arch, train_b, unrolled, penalty)?;
            if let Some(penalty) = timing.penalty.filter(|p| !p.is_finite()) {
                bail!("non-finite architecture penalty {penalty} ([arch.cost] / [arch.beta_decay]) at epoch {epoch}, step {step} (global step {}); the last good checkpoint is kept", at.global_step);
            }
            if timing.labelled && !timing.loss.is_finite() {
                bail!("non-finite architecture loss {} at epoch {epoch}, step {step} (global step {}); the last good checkpoint is kept", timing.loss, at.global_step);
            }
            loss_arch = timing.loss.is_finite().then_some(timing.loss);
            if !self.state.decisions.is_empty() {
                trellis::progressive::project(&self.arch, &self.state.decisions);
            }
            if !self.state.path_decisions.is_empty() {
                trellis::progressive::project_path(&self.arch, &self.state.path_decisions);
            }
        }
        self.ranks.check_same_every(&[&self.weights, &self.arch_store], at.global_step)?;
        self.state.arch_steps = self.architect.adam().steps();
        let mut fields = serde_json::json!({
            "loss_weights": loss_weights, "loss_arch": loss_arch, "lr_weights": self.lr,
            "lr_arch": if arch_active { Some(c.arch.lr) } else { None },
        });
        if let Some(terms) = terms_seen.get() {
            if let Some(cost) = terms.expected_cost {
                fields["cost_expected"] = serde_json::json!(cost);
            }
            if let Some(decay) = terms.beta_decay {
                fields["beta_decay"] = serde_json::json!(decay);
            }
        }
        if c.arch.aux_skip.is_some() {
            fields["aux_skip"] = serde_json::json!(self.arch.aux_skip.get());
        }
        if c.arch.temperature.is_some() {
            fields["temperature"] = serde_json::json!(self.arch.temperature.get());
        }
        let images = batch_a.len() * self.ranks.size();
        Ok(StepRecord::new(loss_weights, images, fields, data_seconds, self.sgd.scaler()))
    }

    fn end_epoch(&mut self, epoch: usize) -> Result<serde_json::Map<String, serde_json::Value>> {
        let c = self.config;
        let mut decided = Vec::new();
        let mut decided_layers: Vec<usize> = Vec::new();
        if let Some(p) = &c.arch.progressive {
            let due = p.due_after(epoch, c.arch_start_epoch, c.model.blocks);
            let taken = trellis::progressive::decide_due(
                &self.arch,
                c.model.blocks,
                &mut self.state.decisions,
                due,
                p.min_margin,
                epoch,
            );
            for d in &taken.decided {
                info!(epoch, block = d.block, edges = ?d.edges, margin = %format!("{:.3}", d.margin), every_epochs = p.every_epochs, "progressive decision");
            }
            if let Some(d) = &taken.deferred {
                info!(
                    epoch,
                    block = d.block,
                    margin = %format!("{:.4}", d.margin),
                    min_margin = p.min_margin,
                    due = due - self.state.decisions.len(),
                    "progressive decision deferred: the most certain undecided block is below \
                     arch.progressive.min_margin; tried again at the end of the next epoch"
                );
            }
            decided = taken.decided;
            if p.path {
                let due = p.due_after(epoch, c.arch_start_epoch, c.model.layers);
                let taken = trellis::progressive::decide_path_due(
                    &self.arch,
                    &mut self.state.path_decisions,
                    due,
                    p.min_margin,
                    epoch,
                );
                for d in &taken.decided {
                    info!(epoch, layer = d.layer, level = d.level, margin = %format!("{:.3}", d.margin), "progressive path decision");
                }
                if let Some(d) = &taken.deferred {
                    info!(
                        epoch,
                        layer = d.layer,
                        margin = %format!("{:.4}", d.margin),
                        min_margin = p.min_margin,
                        "progressive path decision deferred: the path's margin at the next layer is below \
                         arch.progressive.min_margin; tried again at the end of the next epoch"
                    );
                }
                decided_layers = taken.decided.iter().map(|d| d.layer).collect();
            }
        }
        let decoded = self.decode()?;
        if epoch >= self.config.arch_start_epoch {
            self.state.path_since = Some(PathSince::follow(self.state.path_since.take(), decoded.path.levels(), epoch));
        }
        let mut record = decoded.clone();
        record.extra.insert("epoch".into(), serde_json::json!(epoch));
        let weights = tch::no_grad(|| self.arch.decision_weights());
        if self.dir.is_writer() {
            record.save(&self.dir.path(&format!("arch/epoch_{epoch:03}.json")))?;
            crate::observe::arch_history::append(self.dir, epoch, &weights)?;
        }
        let entropies = weights.entropies();
        let margins = trellis::Margins::of(&weights, &decoded);
        let (alpha_entropy, beta_entropy) = (entropies.alpha_mean(), entropies.beta_mean());
        let (alpha_margin, beta_margin) = (margins.alpha_mean, margins.beta_mean);
        info!(
            epoch,
            path = ?decoded.path.levels(),
            alpha_entropy = %format!("{alpha_entropy:.3}"),
            beta_entropy = %format!("{beta_entropy:.3}"),
            alpha_margin = %format!("{alpha_margin:.3}"),
            beta_margin = %format!("{beta_margin:.3}"),
            "decoded"
        );
        let fields = serde_json::json!({
            "lr_weights": self.lr, "arch_active": epoch >= self.config.arch_start_epoch,
            "cell": decoded.cell, "path": decoded.path,
            "alpha_entropy": alpha_entropy, "beta_entropy": beta_entropy,
            "alpha_entropy_per_edge": entropies.alpha, "beta_entropy_per_node": entropies.beta,
            "alpha_margin": alpha_margin, "beta_margin": beta_margin,
            "beta_path_margin": margins.beta_path_mean, "decision_margin": margins.closest,
            "decided_blocks": decided,
        });
        let mut fields = fields.as_object().expect("an object").clone();
        if c.arch.progressive.as_ref().is_some_and(|p| p.path) {
            fields.insert("decided_layers".into(), serde_json::json!(decided_layers));
        }
        if let (Some(cost), Some(weight)) = (self.arch_loss.cost_config(), self.state.cost_weight) {
            let expected = f64::try_from(
                tch::no_grad(|| self.arch_loss.expected_cost(&self.arch)).expect("a cost is configured"),
            )?;
            let decoded_cost = self.arch_loss.decoded_cost(&decoded).expect("a cost is configured");
            // The adaptive rule acts on epochs that moved α and β.
            let next =
                if epoch >= self.config.arch_start_epoch { self.arch_loss.adapt(weight, decoded_cost) } else { weight };
            info!(epoch, kind = cost.kind.name(), expected, decoded = decoded_cost, weight, next_weight = next, "cost");
            fields.insert("cost_kind".into(), serde_json::json!(cost.kind.name()));
            fields.insert("cost_target".into(), serde_json::json!(cost.target));
            fields.insert("cost_expected".into(), serde_json::json!(expected));
            fields.insert("cost_decoded".into(), serde_json::json!(decoded_cost));
            fields.insert("cost_weight".into(), serde_json::json!(weight));
            self.state.cost_weight = Some(next);
        }
        Ok(fields)
    }

    fn evaluate(&mut self) -> Result<seg::Scores> {
        self.ranks.broadcast_buffers(&[&self.weights])?;
        let val = self.val.as_ref().context("no val split was listed")?;
        let weights = tch::no_grad(|| self.arch.weights());
        let forward = |x: &Tensor| self.net.forward_t(x, &weights, false);
        crate::deploy::evaluate::val_scores(val, &self.config.data, self.device, &forward, &self.ranks)
    }

    fn pictures(&mut self, n: usize) -> Result<Vec<crate::observe::tensorboard::Picture>> {
        let val = self.val.as_ref().context("no val split was listed")?;
        let weights = tch::no_grad(|| self.arch.weights());
        let forward = |x: &Tensor| self.net.forward_t(x, &weights, false);
        crate::deploy::evaluate::prediction_pictures(val, &self.config.data, self.device, n, &forward)
    }
}

/// Runs (or resumes) a search.
pub fn run(options: SearchOptions) -> Result<SearchOutcome> {
    let config = &options.config;
    let options = &options.run;
    let device = options.device;
    let data = &config.data;
    let dataset = data.dataset().map_err(|e| anyhow::anyhow!("{}: {}", e.key, e.message))?;
    let samples = dataset
        .list_samples(&data.train_split)
        .with_context(|| format!("listing the training split of {} ({})", data.root.display(), data.format))?;
    check_data(data, &samples)?;
    let autocast = (config.autocast, config.autocast_dtype);
    let prepared = session::prepare(Compute::of(device, options.ranks.clone(), config.seed, autocast))?;
    let precision = prepared.precision();
    let weights = nn::VarStore::new(device);
    let arch_store = nn::VarStore::new(device);
    let mut net = config.model.build(&weights.root());
    let execution = crate::observe::gpu::sized_for(&config.execution, device);
    info!(activation_budget_mib = execution.budget_mib(), recompute = ?execution.recompute, "execution");
    net.set_execution(execution);
    let arch = ArchParams::for_search(
        &arch_store.root(),
        config.model.blocks,
        config.model.layers,
        config.model.edge_normalization,
    );
    let ranks = prepared.ranks().clone();
    let sgd =
        Optimised::new(Sgd::new(Params::of(&weights), config.weights.sgd()), ranks.clone(), config.weights.grad_clip)
            .with_scaler(LossScaler::for_run(precision));
    let adam = Adam::new(Params::of(&arch_store), config.arch.adam());
    let architect = Architect::new(adam, ranks.clone(), config.arch.order)
        .unrolled(config.arch.unrolled_lr, config.arch.hessian_step);
    let arch_loss = ArchLoss::new(&config.arch, &config.model)?;

    let (train_a, train_b) = split_halves(samples.len(), config.seed);
    // Each rank reads its own deterministic share of trainA and of trainB.
    let pick = |indices: &[usize]| -> Vec<SampleRef> { prepared.share_even(&seg::data::pick(&samples, indices)) };
    let loader_a = Loader::new(pick(&train_a), data.transform.clone(), data.loader.clone(), Mode::Train)
        .context("trainA (the half of the training split that trains the weights)")?;
    let loader_b = Loader::new(pick(&train_b), data.transform.clone(), data.loader.clone(), Mode::Train)
        .context("trainB (the half of the training split that trains α and β)")?;
    if config.budget_steps.is_none() && config.steps_per_epoch.is_some_and(|s| s > loader_a.batches_per_epoch()) {
        warn!(
            "config key `steps_per_epoch` = {} is more than trainA holds ({} batches of {}): an epoch is {} steps",
            config.steps_per_epoch.unwrap_or_default(),
            loader_a.batches_per_epoch(),
            data.loader.batch,
            loader_a.batches_per_epoch()
        );
    }
    // The schedule, from the data's size when `budget_steps` asks; refused before the run folder
    // exists when too short to decide.
    let batch = data.loader.batch * prepared.ranks().size();
    let budget = Budget::plan(config, train_a.len(), train_b.len(), loader_a.batches_per_epoch(), batch);
    info!("{}", budget.describe());
    budget.check(config.arch.min_steps)?;
    let sized = SearchRunConfig {
        epochs: budget.epochs,
        arch_start_epoch: budget.arch_start_epoch,
        steps_per_epoch: Some(budget.steps_per_epoch),
        ..config.clone()
    };
    let config = &sized;
    let steps_per_epoch = budget.steps_per_epoch;
    let val = if config.eval_every_epochs > 0 {
        let val = dataset.list_samples(&data.val_split).context("listing the val split")?;
        Some(prepared.share(&val))
    } else {
        None
    };
    // The run folder is created only once the data and the loaders are known to be usable;
    // in a distributed run rank 0 alone writes it.
    let flags = (config.sync_bn, config.tensorboard);
    let folder = options.folder(flags, data.loader.batch, config.checkpoint.keep_last);
    let session = prepared.open(folder, config)?;
    let dir = &session.dir;
    // Every rank starts from rank 0's weights, α and β.
    session.start(&[&weights, &arch_store])?;
    info!(
        train_a = train_a.len(),
        train_b = train_b.len(),
        steps_per_epoch,
        epochs = config.epochs,
        weights = Params::of(&weights).tensors().iter().map(|t| t.numel()).sum::<usize>(),
        "search"
    );
    let mut task = Search {
        config,
        device,
        precision,
        dir,
        net,
        weights,
        arch_store,
        arch,
        sgd,
        architect,
        state: SearchState {
            arch_steps: 0,
            train_a,
            train_b,
            cost_weight: config.arch.cost.as_ref().map(|c| c.weight),
            loss_scale: None,
            decisions: Vec::new(),
            path_decisions: Vec::new(),
            path_since: None,
        },
        loader_a,
        loader_b,
        val,
        batches_a: None,
        batches_b: None,
        lr: config.weights.lr_max,
        ranks: ranks.clone(),
        arch_loss,
        total_steps: config.epochs * steps_per_epoch,
        arch_start_step: config.arch_start_epoch * steps_per_epoch,
    };
    let loop_config = LoopConfig {
        seed: config.seed,
        total_steps: config.epochs * steps_per_epoch,
        steps_per_epoch,
        log_every_steps: config.log_every_steps,
        eval: EvalSchedule::EveryEpochs(config.eval_every_epochs),
        eval_at_end: false,
        checkpoint: config.checkpoint.clone(),
        checkpoint_every_epoch: true,
        stop_after_steps: options.stop_after_steps,
        device,
        run_config: serde_json::to_value(config).context("recording the config")?,
    };
    match session.run(&loop_config, &mut task)? {
        LoopOutcome::Stopped(path) => return Ok(SearchOutcome::Stopped(path)),
        LoopOutcome::Finished { .. } => {}
    }
    let mut decoded = task.decode()?;
    // How firmly the search decided (`trellis::margins`), in the file and, if the cell is a near
    // tie, the log (op weights scaled by the edge weights when those are searched, as decoding
    // scales them).
    let margins = trellis::Margins::of(&tch::no_grad(|| task.arch.decision_weights()), &decoded);
    let near_tie = margins.closest < cell::genotype::NEAR_TIE_MARGIN;
    decoded.extra.insert("decision_margin".into(), serde_json::json!(margins.closest));
    decoded.extra.insert("near_tie".into(), serde_json::json!(near_tie));
    decoded.extra.insert("margins".into(), serde_json::to_value(&margins)?);
    if !task.state.decisions.is_empty() {
        decoded.extra.insert("decisions".into(), serde_json::to_value(&task.state.decisions)?);
    }
    if let Some(p) = config.arch.progressive.as_ref().filter(|p| p.path) {
        decoded.extra.insert("path_decisions".into(), serde_json::to_value(&task.state.path_decisions)?);
        let fixed = task.state.path_decisions.len();
        if fixed < config.model.layers {
            warn!(
                fixed,
                layers = config.model.layers,
                min_margin = p.min_margin,
                "the first {fixed} of the path's {} layers were fixed: layer {fixed}'s path margin never reached \
                 arch.progressive.min_margin = {}, so the layers from it on are decoded by Viterbi",
                config.model.layers,
                p.min_margin
            );
        }
    }
    if let Some(p) = &config.arch.progressive {
        // Blocks never certain enough to be fixed are decoded by their argmax, as without
        // progressive decisions; the margins below (and the near-tie warning) speak for them.
        let undecided: Vec<usize> =
            (0..config.model.blocks).filter(|b| task.state.decisions.iter().all(|d| d.block != *b)).collect();
        if !undecided.is_empty() {
            warn!(
                ?undecided,
                min_margin = p.min_margin,
                "{} of {} blocks were never certain enough to be fixed (arch.progressive.min_margin = {}) and are \
                 decoded by their argmax; their margins follow",
                undecided.len(),
                config.model.blocks,
                p.min_margin
            );
            decoded.extra.insert("undecided_blocks".into(), serde_json::json!(undecided));
        }
    }
    // A progressively decided cell decodes one-hot (closest call 1), whatever margin each block
    // was fixed at: the margins when decided say how firmly the search chose, and a block fixed
    // below the near-tie margin was a near tie when it was decided.
    let decided = trellis::progressive::DecidedMargins::of(&task.state.decisions);
    if let Some(d) = &decided {
        decoded.extra.insert("decided_margins".into(), serde_json::to_value(d)?);
        info!(
            blocks = task.state.decisions.len(),
            smallest = %format!("{:.4}", d.smallest),
            largest = %format!("{:.4}", d.largest),
            "progressive decisions: block margins when each block was fixed"
        );
        if d.near_tie {
            warn!(
                block = d.block,
                epoch = d.epoch,
                margin = d.smallest,
                "block {} was fixed at the end of epoch {} by a margin of {:.4}, below {}: a near tie when it was \
                 decided (α had barely separated), so that block's choice is close to a coin toss; a longer search \
                 (budget_steps) gives the decisions more evidence",
                d.block,
                d.epoch,
                d.smallest,
                cell::genotype::NEAR_TIE_MARGIN
            );
        }
    }
    info!(
        alpha_margin = %format!("{:.3}", margins.alpha_mean),
        beta_margin = %format!("{:.3}", margins.beta_mean),
        beta_path_margin = %format!("{:.3}", margins.beta_path_mean),
        closest = %format!("{:.3}", margins.closest),
        "decision margins (chosen weight minus runner-up, means per kept edge and per node)"
    );
    // The path's closest call, by Viterbi's margins (`trellis::viterbi::path_margins`): the
    // means per node hide a path that another path through a different node nearly matches.
    if let Some((layer, margin)) = margins.path_closest() {
        decoded.extra.insert("path_closest".into(), serde_json::json!({ "layer": layer, "margin": margin }));
        info!(
            layer,
            margin = %format!("{margin:.4}"),
            "closest call on the decoded path: layer {layer}, path margin {margin:.4} (1 − the best path through another node there / the best path){}",
            if margin < cell::genotype::NEAR_TIE_MARGIN {
                " — a near tie: that part of the path is close to a coin toss"
            } else {
                ""
            }
        );
    }
    // Whether the path had settled: β can still be moving when the search stops, and then the
    // decoded path is one epoch's snapshot (docs/pipeline.md, "Had the path settled?").
    if let Some(since) = &task.state.path_since {
        let epochs = config.epochs - since.epoch;
        let arch_epochs = config.epochs - config.arch_start_epoch;
        decoded.extra.insert(
            "path_stable".into(),
            serde_json::json!({ "since_epoch": since.epoch, "epochs": epochs, "of_arch_epochs": arch_epochs }),
        );
        if epochs <= 1 && arch_epochs > 1 {
            warn!(
                epoch = since.epoch,
                "the decoded path changed at the end of the last epoch (epoch {}): β was still moving when the \
                 search stopped, so the path is one epoch's snapshot; a longer search (budget_steps), or several \
                 searches with one picked on held-out data (search compare --searches N --select), gives a path \
                 that does not hang on when the search stopped",
                since.epoch
            );
        } else {
            info!(
                epochs,
                of = arch_epochs,
                since = since.epoch,
                "the decoded path has stood for the last {epochs} of {arch_epochs} architecture epochs"
            );
        }
    }
    if near_tie {
        warn!(
            margin = margins.closest,
            "the decoded cell is a near tie: a choice won by less than {} of softmax weight; α barely moved \
             (a longer search, a higher arch.lr or [arch.progressive] decides it)",
            cell::genotype::NEAR_TIE_MARGIN
        );
    }
    if dir.is_writer() {
        decoded.save(&dir.path("arch/final.json"))?;
        crate::observe::plots::write_search_pictures(dir, &decoded)?;
    }
    info!(run = %dir.root().display(), cell = %serde_json::to_string(&decoded.cell)?, path = ?decoded.path.levels(), "search finished");
    Ok(SearchOutcome::Finished(decoded))
}

#[cfg(test)]
mod tests {
    use super::PathSince;

    #[test]
    fn a_path_stands_from_the_epoch_it_was_first_decoded() {
        let a = PathSince::follow(None, &[0, 0, 1], 4);
        assert_eq!(a, PathSince { path: vec![0, 0, 1], epoch: 4 });
        let kept = PathSince::follow(Some(a), &[0, 0, 1], 5);
        assert_eq!(kept.epoch, 4, "the same path keeps its start");
        let moved = PathSince::follow(Some(kept), &[0, 1, 1], 6);
        assert_eq!(moved, PathSince { path: vec![0, 1, 1], epoch: 6 });
    }
}
