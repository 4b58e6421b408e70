//! The batch loader: samples decoded and transformed in parallel on a rayon pool into plain
//! buffers, batches assembled ahead of the training loop on a bounded queue.
//!
//! Every sample draws its augmentation from its own ChaCha8 stream, seeded from (seed, epoch,
//! position in the epoch), and the epoch's order from (seed, epoch): a seed gives the same
//! batches whatever the worker count. Tensors are built on the consuming thread
//! ([`Batch::to_tensors`]) because `Tensor` is not `Sync`.

use std::any::Any;
use std::sync::mpsc::{channel, sync_channel, Receiver, Sender};
use std::sync::{Arc, Mutex};

use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use tch::{Device, Kind, Tensor};

use super::error::DataError;
use super::files::{read_sample, SampleRef};
use super::seed::mix_seed;
use super::transform::{eval_example, train_example, Example, TransformConfig};

/// How batches are drawn and how many workers prepare them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LoaderConfig {
    /// Examples per batch.
    pub batch: usize,
    /// Threads decoding and transforming samples.
    pub workers: usize,
    /// Batches prepared ahead of the consumer (the queue's bound).
    pub prefetch: usize,
}

impl Default for LoaderConfig {
    fn default() -> Self {
        // Workers follow the cores (up to 8: decoding and augmenting a batch is cheap next to a
        // GPU step beyond that), never more than the machine has.
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        LoaderConfig { batch: 2, workers: cores.clamp(1, 8), prefetch: 4 }
    }
}

/// Training (shuffled, random transforms, incomplete last batch dropped) or evaluation (in
/// order, fixed transforms, every sample).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Train,
    Eval,
}

/// Why a loader cannot be built.
#[derive(Debug, thiserror::Error)]
pub enum LoaderError {
    /// Fewer training samples than one batch.
    #[error("the data set has {samples} samples, fewer than one batch of {batch}")]
    TooSmall { samples: usize, batch: usize },
    /// A loader setting out of range.
    #[error("loader key `{key}`: must be at least 1, got 0")]
    Zero { key: &'static str },
    /// The transform configuration is invalid.
    #[error(transparent)]
    Transform(#[from] super::transform::TransformError),
    /// The worker pool could not be started.
    #[error("cannot start the loader's worker threads: {0}")]
    Pool(String),
}

/// A batch as plain buffers.
#[derive(Debug, Clone, PartialEq)]
pub struct Batch {
    pub ids: Vec<String>,
    pub height: u32,
    pub width: u32,
    /// `[N, 3, H, W]` normalised floats.
    pub images: Vec<f32>,
    /// `[N, H, W]` train ids.
    pub labels: Vec<u8>,
}

impl Batch {
    /// Number of examples.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// Whether the batch is empty (never, for batches a loader yields).
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// Images `[N, 3, H, W]` float and labels `[N, H, W]` int64 on `device`.
    pub fn to_tensors(&self, device: Device) -> (Tensor, Tensor) {
        let (n, h, w) = (self.len() as i64, self.height as i64, self.width as i64);
        let images = Tensor::from_slice(&self.images).view([n, 3, h, w]).to_device(device);
        let labels = Tensor::from_slice(&self.labels).view([n, h, w]).to_device(device).to_kind(Kind::Int64);
        (images, labels)
    }

    fn collate(examples: Vec<Example>) -> Result<Batch, DataError> {
        let (height, width) = (examples[0].height, examples[0].width);
        if let Some(odd) = examples.iter().find(|e| (e.height, e.width) != (height, width)) {
            return Err(DataError::BatchSizes {
                id: odd.id.clone(),
                size: (odd.width, odd.height),
                batch: (width, height),
            });
        }
        let mut batch = Batch { ids: Vec::new(), height, width, images: Vec::new(), labels: Vec::new() };
        for e in examples {
            batch.ids.push(e.id);
            batch.images.extend_from_slice(&e.image);
            batch.labels.extend_from_slice(&e.label);
        }
        Ok(batch)
    }
}

/// A loader over a fixed list of samples.
pub struct Loader {
    samples: Arc<Vec<SampleRef>>,
    transform: Arc<TransformConfig>,
    config: LoaderConfig,
    mode: Mode,
    pool: Arc<rayon::ThreadPool>,
}

/// One epoch's production, run on a producer thread; it calls its argument, which makes the
/// thread idle again, before its consumer can see the epoch's end.
type Job = Box<dyn FnOnce(&dyn Fn()) + Send>;

/// Threads are shared by every loader of the process and never end: the worker pools (one per
/// worker count) and the producer threads that assemble the epochs (an idle one takes the next
/// epoch; a new one starts only when every one is busy, so there are as many as loaders in use
/// at once). A thread that ends leaves its allocator heap behind with what it allocated, held
/// to the end of the process (docs/performance.md, "Loader threads that never end"): with a
/// thread per epoch, about 10 MB an epoch, and a comparison of five searches and 14 retrainings
/// passed 8 GiB; with threads per loader, 63 MB a retraining.
struct Threads {
    pools: Vec<(usize, Arc<rayon::ThreadPool>)>,
    idle: Vec<Sender<Job>>,
}

static THREADS: Mutex<Threads> = Mutex::new(Threads { pools: Vec::new(), idle: Vec::new() });

fn threads() -> std::sync::MutexGuard<'static, Threads> {
    // The lists stay valid whatever panicked while they were held.
    THREADS.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The process's worker pool of `workers` threads, started on first use.
fn worker_pool(workers: usize) -> Result<Arc<rayon::ThreadPool>, LoaderError> {
    let mut threads = threads();
    if let Some((_, pool)) = threads.pools.iter().find(|(w, _)| *w == workers) {
        return Ok(Arc::clone(pool));
    }
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(workers)
        .thread_name(|i| format!("loader-{i}"))
        .build()
        .map_err(|e| LoaderError::Pool(e.to_string()))?;
    let pool = Arc::new(pool);
    threads.pools.push((workers, Arc::clone(&pool)));
    Ok(pool)
}

/// Runs `job` on an idle producer thread, or on a new one when every one is busy.
fn produce_on_a_thread(job: Job) {
    let job = match threads().idle.pop() {
        Some(thread) => match thread.send(job) {
            Ok(()) => return,
            Err(returned) => returned.0, // cannot happen: producer threads never end
        },
        None => job,
    };
    let (tx, jobs) = channel::<Job>();
    tx.send(job).expect("the channel was just made");
    std::thread::Builder::new()
        .name("loader".into())
        .spawn(move || {
            for job in jobs {
                // An epoch's panic is caught inside and goes to its consumer.
                job(&|| threads().idle.push(tx.clone()));
            }
        })
        .expect("starting a loader thread");
}

/// A panic's payload, carried from the producer thread to the consumer.
type Panic = Box<dyn Any + Send>;

impl Loader {
    /// Checks the settings; the worker pool is the process's pool of that many workers.
    pub fn new(
        samples: Vec<SampleRef>,
        transform: TransformConfig,
        config: LoaderConfig,
        mode: Mode,
    ) -> Result<Loader, LoaderError> {
        for (key, value) in [("batch", config.batch), ("workers", config.workers), ("prefetch", config.prefetch)] {
            if value == 0 {
                return Err(LoaderError::Zero { key });
            }
        }
        transform.validate()?;
        if mode == Mode::Train && samples.len() < config.batch {
            return Err(LoaderError::TooSmall { samples: samples.len(), batch: config.batch });
        }
        let pool = worker_pool(config.workers)?;
        Ok(Loader { samples: Arc::new(samples), transform: Arc::new(transform), config, mode, pool })
    }

    /// Number of batches per epoch.
    pub fn batches_per_epoch(&self) -> usize {
        match self.mode {
            Mode::Train => self.samples.len() / self.config.batch,
            Mode::Eval => self.samples.len().div_ceil(self.config.batch),
        }
    }

    /// Starts preparing epoch `epoch` on a producer thread; iterate to receive its batches.
    pub fn epoch(&self, seed: u64, epoch: u64) -> EpochBatches {
        self.epoch_from(seed, epoch, 0)
    }

    /// Like [`Loader::epoch`], starting at batch `first_batch` of the epoch (the batches before
    /// it are neither read nor yielded): how a resumed run continues mid-epoch.
    pub fn epoch_from(&self, seed: u64, epoch: u64, first_batch: usize) -> EpochBatches {
        let (tx, rx) = sync_channel(self.config.prefetch);
        let samples = Arc::clone(&self.samples);
        let transform = Arc::clone(&self.transform);
        let pool = Arc::clone(&self.pool);
        let (mode, batch, workers) = (self.mode, self.config.batch, self.config.workers);
        let batches = self.batches_per_epoch();
        let (panic_tx, panic_rx) = channel::<Panic>();
        let produce = move || {
            let mut order: Vec<usize> = (0..samples.len()).collect();
            if mode == Mode::Train {
                order.shuffle(&mut ChaCha8Rng::seed_from_u64(mix_seed(seed, epoch, u64::MAX)));
            }
            // Enough batches at once to keep every worker busy.
            let group = workers.div_ceil(batch).max(1);
            for first in (first_batch.min(batches)..batches).step_by(group) {
                let last = (first + group).min(batches);
                let positions: Vec<usize> = (first * batch..(last * batch).min(order.len())).collect();
                let examples: Vec<Result<Example, DataError>> = pool.install(|| {
                    positions
                        .par_iter()
                        .map(|&pos| {
                            let sample = read_sample(&samples[order[pos]])?;
                            Ok(match mode {
                                Mode::Train => {
                                    let mut rng = ChaCha8Rng::seed_from_u64(mix_seed(seed, epoch, pos as u64));
                                    train_example(sample, &transform, &mut rng)
                                }
                                Mode::Eval => eval_example(sample, &transform),
                            })
                        })
                        .collect()
                });
                let mut examples = examples.into_iter();
                for _ in first..last {
                    let chunk: Result<Vec<Example>, DataError> = examples.by_ref().take(batch).collect();
                    let message = chunk.and_then(Batch::collate);
                    let failed = message.is_err();
                    if tx.send(message).is_err() || failed {
                        return; // consumer gone, or an error delivered: stop
                    }
                }
            }
        };
        let job: Job = Box::new(move |idle: &dyn Fn()| {
            let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(produce));
            // Idle before the consumer's `next` returns the end: it waits for `panic_tx`.
            idle();
            if let Err(panic) = result {
                let _ = panic_tx.send(panic);
            }
        });
        produce_on_a_thread(job);
        EpochBatches { rx, panic: Some(panic_rx) }
    }
}

/// The batches of one epoch, in order; an error ends the epoch.
pub struct EpochBatches {
    rx: Receiver<Result<Batch, DataError>>,
    /// A panic of the epoch's production, re-raised on the consumer when the batches end.
    panic: Option<Receiver<Panic>>,
}

impl Iterator for EpochBatches {
    type Item = Result<Batch, DataError>;

    fn next(&mut self) -> Option<Self::Item> {
        match self.rx.recv() {
            Ok(item) => Some(item),
            Err(_) => {
                // The production has ended (its sender is gone): it either returned, closing
                // this channel too, or panicked and sends the payload; either way its thread
                // is idle by then.
                if let Some(Ok(panic)) = self.panic.take().map(|p| p.recv()) {
                    std::panic::resume_unwind(panic);
                }
                None
            }
        }
    }
}
