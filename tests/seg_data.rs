//! seg data: the Cityscapes reader and its errors, the synthetic data set, transforms and the
//! loader (seg issue).

use std::path::{Path, PathBuf};

use seg::data::read_sample;
use seg::data::synthetic::DRAWN_LABEL_IDS;
use seg::data::transform::{eval_example, train_example};
use seg::data::{
    generate, list_samples, Annotation, DataError, Loader, LoaderConfig, LoaderError, Mode, SynthConfig, SynthTask,
    TransformConfig,
};
use seg::labels::{IGNORE, LABEL_TO_TRAIN};
use seg::png::write_png;

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("adl-seg-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Writes one image (grey, value `shade`) and, unless `label` is None, its label-id PNG.
fn write_pair(root: &Path, split: &str, city: &str, stem: &str, size: (u32, u32), label: Option<&[u8]>) -> PathBuf {
    let (w, h) = size;
    let image_dir = root.join("leftImg8bit").join(split).join(city);
    std::fs::create_dir_all(&image_dir).unwrap();
    let image = image_dir.join(format!("{stem}_leftImg8bit.png"));
    write_png(&image, w, h, image::ColorType::Rgb8, &vec![100u8; (3 * w * h) as usize]).unwrap();
    if let Some(label) = label {
        let label_dir = root.join("gtFine").join(split).join(city);
        std::fs::create_dir_all(&label_dir).unwrap();
        write_png(&label_dir.join(format!("{stem}_gtFine_labelIds.png")), w, h, image::ColorType::L8, label).unwrap();
    }
    image
}

#[test]
fn listing_is_sorted_and_labels_map_to_train_ids() {
    let root = temp_dir("list");
    let label: Vec<u8> = (0..=33).chain([0, 0]).collect(); // 6 x 6: every label id once
    for (city, stem) in
        [("zurich", "zurich_000001_000019"), ("aachen", "aachen_000002_000019"), ("aachen", "aachen_000000_000019")]
    {
        write_pair(&root, "train", city, stem, (6, 6), Some(&label));
    }
    let samples = list_samples(&root, "train", Annotation::Fine).unwrap();
    let ids: Vec<&str> = samples.iter().map(|s| s.id.as_str()).collect();
    assert_eq!(ids, ["aachen_000000_000019", "aachen_000002_000019", "zurich_000001_000019"]);
    let sample = read_sample(&samples[0]).unwrap();
    let expected: Vec<u8> = label.iter().map(|&l| LABEL_TO_TRAIN[l as usize]).collect();
    assert_eq!(sample.label, expected);
    assert_eq!(sample.label[7], 0, "label id 7 (road) is train id 0");
    assert_eq!(sample.label[33], 18, "label id 33 (bicycle) is train id 18");
    assert_eq!(sample.label[0], IGNORE);
    assert_eq!((sample.width, sample.height, sample.image.len()), (6, 6, 108));
}

#[test]
fn train_ids_files_and_coarse_annotations_are_read() {
    let root = temp_dir("trainids");
    write_pair(&root, "val", "bonn", "bonn_000000_000019", (4, 1), None);
    let dir = root.join("gtFine/val/bonn");
    std::fs::create_dir_all(&dir).unwrap();
    write_png(&dir.join("bonn_000000_000019_gtFine_labelTrainIds.png"), 4, 1, image::ColorType::L8, &[0, 18, 255, 5])
        .unwrap();
    let samples = list_samples(&root, "val", Annotation::Fine).unwrap();
    assert_eq!(samples[0].label.as_ref().unwrap().decoder.value_name, "train id");
    assert_eq!(read_sample(&samples[0]).unwrap().label, [0, 18, 255, 5]);
    write_png(&dir.join("bonn_000000_000019_gtFine_labelTrainIds.png"), 4, 1, image::ColorType::L8, &[0, 19, 255, 5])
        .unwrap();
    let err = read_sample(&samples[0]).unwrap_err().to_string();
    assert!(err.contains("labelTrainIds.png") && err.contains("train id 19"), "{err}");

    let coarse = root.join("gtCoarse/val/bonn");
    std::fs::create_dir_all(&coarse).unwrap();
    write_png(&coarse.join("bonn_000000_000019_gtCoarse_labelIds.png"), 4, 1, image::ColorType::L8, &[7, 8, 0, 26])
        .unwrap();
    let samples = list_samples(&root, "val", Annotation::Coarse).unwrap();
    assert_eq!(read_sample(&samples[0]).unwrap().label, [0, 1, 255, 13]);
}

#[test]
fn bad_inputs_give_errors_that_name_the_file() {
    let root = temp_dir("errors");
    let err = list_samples(&root.join("nope"), "train", Annotation::Fine).unwrap_err();
    assert!(matches!(err, DataError::RootMissing { .. }) && err.to_string().contains("nope"), "{err}");
    let err = list_samples(&root, "train", Annotation::Fine).unwrap_err();
    assert!(matches!(err, DataError::SplitMissing { .. }) && err.to_string().contains("leftImg8bit/train"), "{err}");
    std::fs::create_dir_all(root.join("leftImg8bit/train/empty")).unwrap();
    let err = list_samples(&root, "train", Annotation::Fine).unwrap_err();
    assert!(matches!(err, DataError::EmptySplit { .. }), "{err}");

    let image = write_pair(&root, "train", "a", "a_000000_000001", (4, 4), None);
    let err = list_samples(&root, "train", Annotation::Fine).unwrap_err();
    assert!(matches!(err, DataError::MissingLabel { .. }), "{err}");
    assert!(
        err.to_string().contains("a_000000_000001_leftImg8bit.png")
            && err.to_string().contains("a_000000_000001_gtFine_labelIds.png"),
        "{err}"
    );

    // Label of a different size.
    write_pair(&root, "train", "a", "a_000000_000001", (4, 4), Some(&[7; 16]));
    let label_dir = root.join("gtFine/train/a");
    write_png(&label_dir.join("a_000000_000001_gtFine_labelIds.png"), 4, 3, image::ColorType::L8, &[7; 12]).unwrap();
    let samples = list_samples(&root, "train", Annotation::Fine).unwrap();
    let err = read_sample(&samples[0]).unwrap_err();
    assert!(matches!(err, DataError::SizeMismatch { .. }) && err.to_string().contains("(4, 3)"), "{err}");

    // A label id outside the table, named with its pixel.
    let mut bad = vec![7u8; 16];
    bad[6] = 40;
    write_png(&label_dir.join("a_000000_000001_gtFine_labelIds.png"), 4, 4, image::ColorType::L8, &bad).unwrap();
    let err = read_sample(&samples[0]).unwrap_err().to_string();
    assert!(
        err.contains("gtFine_labelIds.png")
            && err.contains("pixel (2, 1)")
            && err.contains("value 40")
            && err.contains("cityscapes class table (0..=33)"),
        "{err}"
    );

    // An RGB label is read as colours, and this colour is not in the palette.
    write_png(&label_dir.join("a_000000_000001_gtFine_labelIds.png"), 4, 4, image::ColorType::Rgb8, &[7; 48]).unwrap();
    let err = read_sample(&samples[0]).unwrap_err();
    assert!(matches!(err, DataError::BadColor { .. }) && err.to_string().contains("[7, 7, 7]"), "{err}");
    // A 16-bit grey label.
    write_png(&label_dir.join("a_000000_000001_gtFine_labelIds.png"), 4, 4, image::ColorType::L16, &[0; 32]).unwrap();
    let err = read_sample(&samples[0]).unwrap_err();
    assert!(matches!(err, DataError::LabelChannels { .. }), "{err}");

    // A truncated image.
    let bytes = std::fs::read(&image).unwrap();
    std::fs::write(&image, &bytes[..bytes.len() / 2]).unwrap();
    let err = read_sample(&samples[0]).unwrap_err();
    assert!(
        matches!(err, DataError::Decode { .. }) && err.to_string().contains("a_000000_000001_leftImg8bit.png"),
        "{err}"
    );
}

fn all_files(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                out.push((path.strip_prefix(dir).unwrap().to_owned(), std::fs::read(&path).unwrap()));
            }
        }
    }
    out.sort();
    out
}

#[test]
fn synthetic_data_is_deterministic_and_a_real_segmentation_problem() {
    let config = SynthConfig { seed: 3, train: 6, val: 2, width: 160, height: 80, task: SynthTask::Street };
    let (a, b, c) = (temp_dir("synth-a"), temp_dir("synth-b"), temp_dir("synth-c"));
    generate(&a, &config).unwrap();
    generate(&b, &config).unwrap();
    generate(&c, &SynthConfig { seed: 4, ..config.clone() }).unwrap();
    let files = all_files(&a);
    assert_eq!(files.len(), 8 * 3, "image, label ids and colour per scene");
    assert!(files == all_files(&b), "same seed, same bytes");
    assert!(files != all_files(&c), "another seed, other scenes");

    // Read back through the Cityscapes reader (label ids, not train ids, on disk).
    let samples = list_samples(&a, "train", Annotation::Fine).unwrap();
    assert_eq!(samples.len(), 6);
    assert_eq!(list_samples(&a, "val", Annotation::Fine).unwrap().len(), 2);
    let mut present = std::collections::BTreeSet::new();
    // Best per-pixel colour classifier on this very data: majority class per colour bin.
    let mut votes = std::collections::HashMap::<(u8, u8, u8), [u32; 19]>::new();
    let mut pixels = 0u64;
    for sample in &samples {
        let s = read_sample(sample).unwrap();
        for (px, &label) in s.image.chunks_exact(3).zip(&s.label) {
            if label == IGNORE {
                continue;
            }
            present.insert(label);
            pixels += 1;
            votes.entry((px[0] / 16, px[1] / 16, px[2] / 16)).or_insert([0; 19])[label as usize] += 1;
        }
    }
    assert!(present.len() >= 8, "only {} classes drawn: {present:?}", present.len());
    assert!(DRAWN_LABEL_IDS.iter().all(|&l| LABEL_TO_TRAIN[l as usize] != IGNORE));
    let best: u64 = votes.values().map(|v| *v.iter().max().unwrap() as u64).sum();
    let colour_accuracy = best as f64 / pixels as f64;
    eprintln!("per-pixel colour lookup accuracy on its own training data: {colour_accuracy:.3}");
    assert!(colour_accuracy < 0.9, "a per-pixel colour lookup reaches {colour_accuracy:.3} on its own training data");
}

/// A sample whose image encodes its label: R = 10 * train id, G = x, B = y.
fn coded_sample(width: u32, height: u32) -> seg::data::Sample {
    let mut image = Vec::new();
    let mut label = Vec::new();
    for y in 0..height {
        for x in 0..width {
            let class = ((3 * x + y) % 19) as u8; // asymmetric: a flip changes it
            label.push(class);
            image.extend_from_slice(&[10 * class, x as u8, y as u8]);
        }
    }
    seg::data::Sample { id: "coded".into(), width, height, image, label }
}

fn decode_red(example: &seg::data::transform::Example, config: &TransformConfig, i: usize) -> f32 {
    example.image[i] * config.std[0] + config.mean[0]
}

#[test]
fn transforms_keep_image_and_label_aligned() {
    use rand::SeedableRng;
    let config = TransformConfig {
        base_scale: 1.0,
        scale_range: [1.0, 1.0],
        crop: [24, 40],
        flip: true,
        mean: [127.5; 3],
        std: [127.5; 3],
    };
    let mut flipped = 0;
    for seed in 0..16 {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        // 30 x 20 image, crop 40 x 24: padded in width and height, then cropped.
        let example = train_example(coded_sample(30, 20), &config, &mut rng);
        assert_eq!((example.width, example.height), (40, 24));
        assert_eq!(example.image.len(), 3 * 40 * 24);
        let mut any = false;
        for i in 0..example.label.len() {
            let red = decode_red(&example, &config, i);
            if example.label[i] == IGNORE {
                assert!((red - 128.0).abs() < 0.6, "padding must be the mean colour, got {red}");
            } else {
                any = true;
                assert!(
                    (red - 10.0 * example.label[i] as f32).abs() < 0.01,
                    "pixel {i}: label {} but image says {}",
                    example.label[i],
                    red / 10.0
                );
            }
        }
        assert!(any, "the crop keeps some of the image");
        // Detect a flip: along a row of real pixels, the image's x coordinate decreases.
        let plane = (40 * 24) as usize;
        let row: Vec<(u8, f32)> = (0..40)
            .map(|x| (example.label[x], example.image[plane + x] * 127.5 + 127.5))
            .filter(|(l, _)| *l != IGNORE)
            .collect();
        if row.len() > 1 && row[0].1 > row[1].1 {
            flipped += 1;
        }
    }
    assert!(flipped > 0 && flipped < 16, "flips happen about half the time, got {flipped}/16");

    // With rescaling, labels still sit on their colours away from region borders.
    let scaled = TransformConfig { base_scale: 0.5, scale_range: [1.5, 2.0], crop: [16, 16], ..config.clone() };
    let mut sample = coded_sample(64, 64);
    for (i, l) in sample.label.iter_mut().enumerate() {
        *l = if i % 64 < 32 { 2 } else { 13 };
        sample.image[3 * i] = 10 * *l;
    }
    let mut rng = <rand_chacha::ChaCha8Rng as rand::SeedableRng>::seed_from_u64(5);
    let example = train_example(sample, &scaled, &mut rng);
    for i in 0..example.label.len() {
        let red = decode_red(&example, &scaled, i);
        let label = example.label[i] as f32;
        assert!((red - 10.0 * label).abs() < 110.0 / 2.0 + 1.0, "label {label} on red {red}");
    }

    let eval = eval_example(coded_sample(30, 20), &TransformConfig { base_scale: 1.0, ..config });
    assert_eq!((eval.width, eval.height), (30, 20));
    assert_eq!(eval.label, coded_sample(30, 20).label);
}

#[test]
fn loader_batches_depend_on_the_seed_not_on_the_worker_count() {
    let root = temp_dir("loader");
    generate(&root, &SynthConfig { seed: 9, train: 7, val: 3, width: 96, height: 48, task: SynthTask::Street })
        .unwrap();
    let samples = list_samples(&root, "train", Annotation::Fine).unwrap();
    let transform =
        TransformConfig { base_scale: 1.0, scale_range: [0.75, 1.25], crop: [33, 33], ..TransformConfig::default() };
    let run = |workers, epoch| -> Vec<seg::data::Batch> {
        let loader = Loader::new(
            samples.clone(),
            transform.clone(),
            LoaderConfig { batch: 2, workers, prefetch: 2 },
            Mode::Train,
        )
        .unwrap();
        assert_eq!(loader.batches_per_epoch(), 3, "7 samples make 3 full batches of 2");
        loader.epoch(11, epoch).map(|b| b.unwrap()).collect()
    };
    let one = run(1, 0);
    assert_eq!(one.len(), 3);
    assert_eq!(one, run(3, 0), "1 and 3 workers give the same batches");
    assert_ne!(one, run(1, 1), "another epoch, another order and augmentation");
    let (images, labels) = one[0].to_tensors(tch::Device::Cpu);
    assert_eq!(images.size(), [2, 3, 33, 33]);
    assert_eq!(labels.size(), [2, 33, 33]);
    assert_eq!(labels.kind(), tch::Kind::Int64);

    // Evaluation: every sample once, in order, the last batch partial.
    let val = list_samples(&root, "val", Annotation::Fine).unwrap();
    let loader = Loader::new(
        val.clone(),
        TransformConfig { base_scale: 1.0, ..transform.clone() },
        LoaderConfig { batch: 2, workers: 2, prefetch: 1 },
        Mode::Eval,
    )
    .unwrap();
    let batches: Vec<_> = loader.epoch(0, 0).map(|b| b.unwrap()).collect();
    let ids: Vec<String> = batches.iter().flat_map(|b| b.ids.clone()).collect();
    assert_eq!(ids, val.iter().map(|s| s.id.clone()).collect::<Vec<_>>());
    assert_eq!((batches[1].len(), batches[1].width, batches[1].height), (1, 96, 48));

    let err = Loader::new(
        samples[..1].to_vec(),
        transform.clone(),
        LoaderConfig { batch: 2, workers: 1, prefetch: 1 },
        Mode::Train,
    )
    .err()
    .unwrap();
    assert!(matches!(err, LoaderError::TooSmall { samples: 1, batch: 2 }), "{err}");
    let err = Loader::new(
        samples.clone(),
        TransformConfig { crop: [0, 5], ..transform },
        LoaderConfig::default(),
        Mode::Train,
    )
    .err()
    .unwrap();
    assert!(err.to_string().contains("`crop`"), "{err}");
}

/// The context task: the same seed writes the same bytes; it draws terrain, three region
/// classes (car, building, wall) and two thin classes (pole, traffic sign); region insides carry
/// no class information (the three classes' inner pixels have the same colour statistics), so
/// that telling them apart takes the context of their frames; poles and sign wires are one
/// pixel wide.
#[test]
fn context_task_needs_context_and_fine_resolution() {
    let config = SynthConfig { seed: 5, train: 24, val: 2, width: 160, height: 80, task: SynthTask::Context };
    let (a, b) = (temp_dir("context-a"), temp_dir("context-b"));
    generate(&a, &config).unwrap();
    generate(&b, &config).unwrap();
    assert!(all_files(&a) == all_files(&b), "same seed, same bytes");
    let mut present = std::collections::BTreeSet::new();
    // Per region class: mean grey of pixels at least 3 pixels inside the region (no frame).
    let mut inner: std::collections::BTreeMap<u8, (f64, u64)> = Default::default();
    let mut thin_columns = 0;
    for sample in list_samples(&a, "train", Annotation::Fine).unwrap() {
        let s = read_sample(&sample).unwrap();
        let (w, h) = (s.width as usize, s.height as usize);
        let at = |x: usize, y: usize| s.label[y * w + x];
        for y in 3..h - 3 {
            for x in 3..w - 3 {
                let l = at(x, y);
                present.insert(l);
                let deep = (x - 3..=x + 3).all(|u| (y - 3..=y + 3).all(|v| at(u, v) == l));
                if [2, 3, 13].contains(&l) && deep {
                    let px = &s.image[(y * w + x) * 3..(y * w + x) * 3 + 3];
                    let e = inner.entry(l).or_default();
                    e.0 += px.iter().map(|&c| c as f64).sum::<f64>() / 3.0;
                    e.1 += 1;
                }
                // A pole pixel whose left and right neighbours are not poles: one pixel wide.
                if l == 5 && at(x - 1, y) != 5 && at(x + 1, y) != 5 {
                    thin_columns += 1;
                }
            }
        }
    }
    // Train ids: building, wall, pole, traffic sign, terrain, car.
    assert_eq!(present.into_iter().collect::<Vec<_>>(), [2, 3, 5, 7, 9, 13], "terrain, regions and thin classes");
    let means: Vec<f64> = inner.values().map(|(sum, n)| sum / *n as f64).collect();
    assert_eq!(means.len(), 3);
    let spread = means.iter().cloned().fold(f64::MIN, f64::max) - means.iter().cloned().fold(f64::MAX, f64::min);
    assert!(spread < 12.0, "region insides look alike whatever the class: mean greys {means:?}");
    assert!(thin_columns > 100, "poles are one pixel wide ({thin_columns} such pixels)");
}
