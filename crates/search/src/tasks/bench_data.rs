//! `search bench-data`: the loader's throughput in images/s on Cityscapes-sized images (PNG, or
//! JPEG in the VOC and ADE20K layouts), for several worker counts (docs/data.md).

use std::time::Instant;

use anyhow::{Context, Result};
use seg::data::{Dataset, Loader, LoaderConfig, Mode, TransformConfig};
use serde::Serialize;

/// One measurement.
#[derive(Debug, Clone, Serialize)]
pub struct LoaderThroughput {
    /// The data set's layout (`cityscapes` and `folder` train images are PNG, `voc` and
    /// `ade20k` JPEG).
    pub format: String,
    pub workers: usize,
    pub batch: usize,
    pub prefetch: usize,
    pub images: usize,
    pub seconds: f64,
    pub images_per_second: f64,
    pub crop: [u32; 2],
    pub base_scale: f32,
}

/// Runs `epochs` training epochs over the `train` split of `dataset` with each worker count,
/// consuming batches as fast as they come (no model), and reports images/s.
pub fn measure(
    dataset: &Dataset,
    transform: &TransformConfig,
    batch: usize,
    prefetch: usize,
    workers: &[usize],
    epochs: u64,
) -> Result<Vec<LoaderThroughput>> {
    let samples = dataset.list_samples("train").context("listing the benchmark images")?;
    workers
        .iter()
        .map(|&workers| {
            let config = LoaderConfig { batch, workers, prefetch };
            let loader = Loader::new(samples.clone(), transform.clone(), config, Mode::Train)?;
            let start = Instant::now();
            let mut images = 0;
            for epoch in 0..epochs {
                for batch in loader.epoch(0, epoch) {
                    images += batch?.len();
                }
            }
            let seconds = start.elapsed().as_secs_f64();
            Ok(LoaderThroughput {
                format: dataset.format.to_string(),
                workers,
                batch,
                prefetch,
                images,
                seconds,
                images_per_second: images as f64 / seconds,
                crop: transform.crop,
                base_scale: transform.base_scale,
            })
        })
        .collect()
}
