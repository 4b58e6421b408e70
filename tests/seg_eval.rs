//! `search eval --pred`: the Cityscapes pixel metric on a folder of label-id PNGs.

use std::path::{Path, PathBuf};
use std::process::Command;

use seg::data::{generate, list_samples, read_sample, Annotation, SynthConfig, SynthTask};
use seg::eval::{evaluate_folder, EvalError};
use seg::palette::to_stored_values;
use seg::png::write_png;

fn cityscapes(root: &std::path::Path) -> seg::data::Dataset {
    seg::data::Dataset::new(seg::data::DataFormat::Cityscapes, root, seg::ClassTable::cityscapes())
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("adl-eval-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Writes a prediction per val image: the ground truth's train ids passed through `change`.
fn write_predictions(root: &Path, out: &Path, change: impl Fn(&mut Vec<u8>)) -> usize {
    let samples = list_samples(root, "val", Annotation::Fine).unwrap();
    for sample in &samples {
        let s = read_sample(sample).unwrap();
        let mut train_ids = s.label.clone();
        change(&mut train_ids);
        let sub = out.join("nested");
        std::fs::create_dir_all(&sub).unwrap();
        write_png(
            &sub.join(format!("{}_pred.png", s.id)),
            s.width,
            s.height,
            image::ColorType::L8,
            &to_stored_values(&seg::ClassTable::cityscapes(), &train_ids),
        )
        .unwrap();
    }
    samples.len()
}

#[test]
fn perfect_and_damaged_predictions() {
    let root = temp_dir("data");
    generate(&root, &SynthConfig { seed: 2, train: 1, val: 3, width: 64, height: 32, task: SynthTask::Street })
        .unwrap();

    let perfect = temp_dir("perfect");
    write_predictions(&root, &perfect, |_| {});
    // Links back to the folder itself and to a folder inside it must not make the listing spin
    // or count an image twice.
    std::os::unix::fs::symlink(&perfect, perfect.join("loop")).unwrap();
    std::os::unix::fs::symlink(perfect.join("nested"), perfect.join("again")).unwrap();
    let result = evaluate_folder(&perfect, &cityscapes(&root), "val").unwrap();
    assert_eq!(result.images, 3);
    assert_eq!(result.scores.miou, 1.0);
    assert_eq!(result.scores.pixel_accuracy, 1.0);
    // Classes absent from the images have no IoU rather than 0.
    assert!(result.scores.classes.iter().any(|c| c.iou.is_none()));

    // Every road pixel predicted as sidewalk: road IoU 0; sidewalk IoU = S / (S + R).
    let damaged = temp_dir("damaged");
    write_predictions(&root, &damaged, |ids| ids.iter_mut().filter(|t| **t == 0).for_each(|t| *t = 1));
    let result = evaluate_folder(&damaged, &cityscapes(&root), "val").unwrap();
    let road = &result.scores.classes[0];
    let sidewalk = &result.scores.classes[1];
    assert_eq!(road.iou, Some(0.0));
    let (s, r) = (sidewalk.true_positives as f64, road.false_negatives as f64);
    assert!(r > 0.0);
    assert!((sidewalk.iou.unwrap() - s / (s + r)).abs() < 1e-12);
    assert_eq!(sidewalk.false_positives as f64, r);
}

#[test]
fn bad_prediction_folders_are_named() {
    let root = temp_dir("bad-data");
    generate(&root, &SynthConfig { seed: 2, train: 1, val: 2, width: 32, height: 16, task: SynthTask::Street })
        .unwrap();
    let preds = temp_dir("bad-preds");
    write_predictions(&root, &preds, |_| {});
    let files: Vec<PathBuf> = std::fs::read_dir(preds.join("nested")).unwrap().map(|e| e.unwrap().path()).collect();

    // Missing.
    std::fs::rename(&files[0], preds.join("elsewhere.bin")).unwrap();
    let err = evaluate_folder(&preds, &cityscapes(&root), "val").unwrap_err();
    assert!(matches!(err, EvalError::Missing { .. }), "{err}");
    std::fs::rename(preds.join("elsewhere.bin"), &files[0]).unwrap();

    // Ambiguous.
    std::fs::copy(
        &files[0],
        preds.join("copy_").with_file_name(format!("copy_{}", files[0].file_name().unwrap().to_str().unwrap())),
    )
    .unwrap();
    let err = evaluate_folder(&preds, &cityscapes(&root), "val").unwrap_err();
    assert!(matches!(err, EvalError::Ambiguous { .. }), "{err}");
    std::fs::remove_file(preds.join(format!("copy_{}", files[0].file_name().unwrap().to_str().unwrap()))).unwrap();

    // Wrong size, then a value that is no label id.
    write_png(&files[1], 16, 16, image::ColorType::L8, &[7; 256]).unwrap();
    let err = evaluate_folder(&preds, &cityscapes(&root), "val").unwrap_err();
    assert!(matches!(err, EvalError::Size { .. }) && err.to_string().contains("(16, 16)"), "{err}");
    let mut values = vec![7u8; 32 * 16];
    values[40] = 200;
    write_png(&files[1], 32, 16, image::ColorType::L8, &values).unwrap();
    let err = evaluate_folder(&preds, &cityscapes(&root), "val").unwrap_err();
    assert!(err.to_string().contains("pixel (8, 1) holds 200"), "{err}");

    let err = evaluate_folder(&root.join("none"), &cityscapes(&root), "val").unwrap_err();
    assert!(matches!(err, EvalError::NoFolder(_)));
}

#[test]
fn the_cli_prints_the_table_and_writes_json() {
    let root = temp_dir("cli-data");
    let status = Command::new(env!("CARGO_BIN_EXE_search"))
        .args([
            "synth",
            "--out",
            root.to_str().unwrap(),
            "--seed",
            "5",
            "--train",
            "1",
            "--val",
            "2",
            "--size",
            "48x24",
        ])
        .status()
        .unwrap();
    assert!(status.success());
    let preds = temp_dir("cli-preds");
    write_predictions(&root, &preds, |ids| ids.iter_mut().filter(|t| **t == 10).for_each(|t| *t = 2));
    let json = preds.join("scores.json");
    let out = Command::new(env!("CARGO_BIN_EXE_search"))
        .args([
            "eval",
            "--pred",
            preds.to_str().unwrap(),
            "--data",
            root.to_str().unwrap(),
            "--split",
            "val",
            "--json",
            json.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("| sky") && text.contains("mIoU"), "{text}");
    let scores: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(scores["images"], 2);
    assert_eq!(scores["scores"]["classes"][10]["iou"], 0.0, "sky predicted as building everywhere");
    let bad = Command::new(env!("CARGO_BIN_EXE_search"))
        .args(["synth", "--out", "/tmp/x", "--size", "0x10"])
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("0x10"));
}
