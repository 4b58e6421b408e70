//! Loaders share threads that never end (the memory growth found in issue 24's long
//! comparisons): a thread that ends leaves its allocator heap behind. With a thread per epoch a
//! search's RSS grew from 0.74 to 1.27 GiB over 320 steps and a comparison of five searches and
//! 14 retrainings passed 8 GiB; with threads per loader it grew 63 MB a retraining. Its own test
//! binary, so that no other test's loader threads are counted.

use std::collections::BTreeSet;

use seg::data::{
    generate, list_samples, Annotation, Loader, LoaderConfig, Mode, SynthConfig, SynthTask, TransformConfig,
};

/// The ids of this process's threads named `name` (Linux: /proc/self/task/<tid>/comm).
fn threads_named(name: &str) -> BTreeSet<u64> {
    std::fs::read_dir("/proc/self/task")
        .expect("/proc/self/task")
        .filter_map(|e| {
            let e = e.ok()?;
            let comm = std::fs::read_to_string(e.path().join("comm")).ok()?;
            (comm.trim() == name).then(|| e.file_name().to_string_lossy().parse().ok()).flatten()
        })
        .collect()
}

#[test]
fn every_epoch_is_made_on_the_same_producer_thread() {
    let root = std::env::temp_dir().join(format!("adl-loader-threads-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    generate(&root, &SynthConfig { seed: 3, train: 6, val: 2, width: 48, height: 32, task: SynthTask::Street })
        .unwrap();
    let samples = list_samples(&root, "train", Annotation::Fine).unwrap();
    let transform = TransformConfig { base_scale: 1.0, crop: [16, 16], ..TransformConfig::default() };
    let config = LoaderConfig { batch: 2, workers: 2, prefetch: 1 };
    let new_loader = || Loader::new(samples.clone(), transform.clone(), config.clone(), Mode::Train).unwrap();
    let loader = new_loader();
    let mut seen = BTreeSet::new();
    for epoch in 0..6 {
        let mut batches = loader.epoch(0, epoch);
        // Mid-epoch, while the producer is alive: which thread makes this epoch.
        assert!(batches.next().unwrap().is_ok());
        seen.extend(threads_named("loader"));
        assert_eq!(batches.count(), 2, "three batches of two per epoch");
    }
    assert_eq!(seen.len(), 1, "one producer thread for every epoch, not one per epoch: {seen:?}");
    // An epoch dropped mid-way stops its production, and the next epoch still comes (on a
    // second thread if the first has not yet seen that its consumer is gone).
    let mut partial = loader.epoch(0, 6);
    assert!(partial.next().unwrap().is_ok());
    drop(partial);
    assert_eq!(loader.epoch(0, 7).count(), 3);
    let seen = threads_named("loader");
    assert!(seen.len() <= 2, "{seen:?}");
    let workers = threads_named("loader-0").union(&threads_named("loader-1")).count();
    assert_eq!(workers, 2);
    drop(loader);
    // A later loader (the next retraining of a comparison) reuses the threads: none is started.
    let again = new_loader();
    assert_eq!(again.epoch(0, 0).count(), 3);
    assert_eq!(threads_named("loader"), seen, "the same producer thread");
    assert_eq!(threads_named("loader-0").union(&threads_named("loader-1")).count(), workers);
    // Two loaders in use at once (the search's trainA and trainB) get a producer each.
    let mut first = again.epoch(0, 2);
    assert!(first.next().unwrap().is_ok());
    let second = new_loader();
    assert_eq!(second.epoch(0, 1).count(), 3, "not blocked by the unfinished epoch");
    assert_eq!(first.count(), 2);
    assert!(threads_named("loader").len() <= 2, "two loaders in use at once: two producers");
    // A panic while an epoch is made (here: a sample without a label, which the loader's
    // callers never pass) reaches the consumer with its message, and the producer thread lives
    // on for the next epoch.
    let producers = threads_named("loader");
    let mut unlabelled = samples.clone();
    unlabelled[0].label = None;
    let broken = Loader::new(unlabelled, transform.clone(), config.clone(), Mode::Eval).unwrap();
    let panic = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| broken.epoch(0, 0).count()))
        .expect_err("the epoch's panic is re-raised on the consumer");
    let message =
        panic.downcast_ref::<&str>().map(|s| s.to_string()).or_else(|| panic.downcast_ref::<String>().cloned());
    assert_eq!(message.as_deref(), Some("read_sample needs a labelled sample"));
    assert_eq!(again.epoch(0, 3).count(), 3);
    assert_eq!(threads_named("loader"), producers, "no producer ended or was added");
    std::fs::remove_dir_all(&root).unwrap();
}
