//! Every data set format end to end on synthetic data written in its layout (`search synth
//! --format`): search, decode, retrain, eval, predict in the data set's stored values, colours
//! and overlays, and the metric of `search eval --pred` checked against an independent
//! computation in Python (scripts/miou_check.py) on the same PNGs.

mod common;

use std::path::{Path, PathBuf};

use common::{err, ok, predict, repo, search, temp, tiny_search, tiny_train_arch};
use seg::data::DataFormat;
use seg::ClassTable;

/// `search synth --format FORMAT` into a fresh folder: 6 train and 2 val images of 64x48.
fn synth(format: &str, name: &str) -> PathBuf {
    let root = temp(&format!("ds-{format}-{name}"));
    ok(&search(&[
        "synth",
        "--format",
        format,
        "--out",
        root.to_str().unwrap(),
        "--train",
        "6",
        "--val",
        "2",
        "--size",
        "64x48",
        "--seed",
        "1",
    ]));
    root
}

fn read_json(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// The mIoU of `search eval` written to JSON.
fn eval_miou(args: &[&str]) -> (f64, serde_json::Value) {
    let json = temp(&format!("ds-eval-{}.json", args.join("-").replace('/', "_").len()));
    let mut all = vec!["eval", "--json", json.to_str().unwrap(), "--device", "cpu"];
    all.extend(args);
    ok(&search(&all));
    let v = read_json(&json);
    (v["scores"]["miou"].as_f64().unwrap(), v)
}

/// The whole chain on one format. `splits` are the train and val split names, `val_images` the
/// folder of the val images, `table` the class table the format reads with.
fn chain(format: &str, splits: (&str, &str), val_images: &str, table: &ClassTable) {
    let root = synth(format, "chain");
    let root_s = root.to_str().unwrap();
    let sets = [
        format!("data.format={format}"),
        format!("data.train_split={}", splits.0),
        format!("data.val_split={}", splits.1),
    ];
    let mut set_args = Vec::new();
    for s in &sets {
        set_args.extend(["--set", s.as_str()]);
    }

    // Search: the model's classes follow the table, which the run records.
    let run = temp(&format!("ds-{format}-search"));
    ok(&tiny_search(&root, &run, &set_args));
    let config: toml::Table = toml::from_str(&std::fs::read_to_string(run.join("config.toml")).unwrap()).unwrap();
    assert_eq!(config["model"]["classes"].as_integer(), Some(table.len() as i64), "{format}");
    assert_eq!(config["data"]["format"].as_str(), Some(format));

    // Decode (written by the search) and retrain that architecture.
    let arch = run.join("arch/final.json");
    let trained = temp(&format!("ds-{format}-train"));
    ok(&tiny_train_arch(arch.to_str().unwrap(), &root, &trained, &set_args));

    // Eval with the run's format and table; the report names the table's classes.
    let trained_s = trained.to_str().unwrap();
    let (miou, report) = eval_miou(&["--weights", trained_s, "--data", root_s, "--split", splits.1]);
    let names: Vec<&str> =
        report["scores"]["classes"].as_array().unwrap().iter().map(|c| c["name"].as_str().unwrap()).collect();
    assert_eq!(names, table.names(), "{format}");

    // Stored-value predictions read back by eval --pred give the same mIoU, and the
    // independent computation agrees.
    let preds = temp(&format!("ds-{format}-preds"));
    let images = root.join(val_images);
    let predict = |out: &Path, kind: &str| ok(&predict(&trained, &images, out, kind));
    predict(&preds, "labelids");
    let (pred_miou, _) =
        eval_miou(&["--pred", preds.to_str().unwrap(), "--data", root_s, "--format", format, "--split", splits.1]);
    assert!((pred_miou - miou).abs() < 1e-9, "{format}: eval --pred {pred_miou} vs eval --weights {miou}");
    let table_json = temp(&format!("ds-{format}-table.json"));
    std::fs::write(&table_json, serde_json::to_string(table).unwrap()).unwrap();
    let tools = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.libtorch/tools");
    let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".into());
    let out = std::process::Command::new(python)
        .arg(repo("scripts/miou_check.py"))
        .args([format, root_s, splits.1, preds.to_str().unwrap(), table_json.to_str().unwrap()])
        .env("PYTHONPATH", &tools)
        .output()
        .unwrap();
    assert!(out.status.success(), "{format}: miou_check.py failed: {}", String::from_utf8_lossy(&out.stderr));
    let independent: serde_json::Value =
        serde_json::from_str(String::from_utf8_lossy(&out.stdout).lines().last().unwrap()).unwrap();
    assert_eq!(independent["images"].as_u64(), Some(2), "{format}");
    let theirs = independent["miou"].as_f64().unwrap();
    assert!((theirs - pred_miou).abs() < 1e-12, "{format}: ours {pred_miou}, independent {theirs}");

    // Colour predictions are in the table's colours, with its legend.
    let colours = temp(&format!("ds-{format}-colours"));
    predict(&colours, "color");
    let legend = std::fs::read_to_string(colours.join("legend.svg")).unwrap();
    // Each entry is a class the predictions show, numbered by its train id, in the table's names.
    let entries: Vec<&str> = legend.lines().filter_map(|l| l.split_once("\">")?.1.strip_suffix("</text>")).collect();
    assert!(!entries.is_empty(), "{format}: {legend}");
    for entry in entries {
        let (id, name) = entry.split_once(' ').unwrap();
        assert_eq!(table.classes[id.parse::<usize>().unwrap()].name, name, "{format}: {legend}");
    }
    let first =
        seg::walk::files(&colours, None, |p| p.extension().is_some_and(|e| e == "png") && !p.ends_with("legend.png"))
            .unwrap()
            .into_iter()
            .next()
            .unwrap();
    let rgb = image::open(&first).unwrap().into_rgb8();
    let palette: Vec<[u8; 3]> = table.classes.iter().map(|c| c.color).collect();
    assert!(
        rgb.pixels().all(|p| palette.contains(&p.0)),
        "{format}: a colour outside the table in {}",
        first.display()
    );
    for dir in [root, run, trained, preds, colours] {
        std::fs::remove_dir_all(dir).unwrap();
    }
}

#[test]
fn cityscapes_chain() {
    chain("cityscapes", ("train", "val"), "leftImg8bit/val", &ClassTable::cityscapes());
}

#[test]
fn folder_chain() {
    chain("folder", ("train", "val"), "images/val", &seg::data::synth_layout::folder_table());
}

#[test]
fn voc_chain() {
    // train_aug: the augmented list (DeepLab pairs) and SegmentationClassAug labels.
    chain("voc", ("train_aug", "val"), "JPEGImages", &ClassTable::voc());
}

#[test]
fn ade20k_chain() {
    chain("ade20k", ("training", "validation"), "images/validation", &ClassTable::ade20k());
}

#[test]
fn a_config_whose_class_count_disagrees_with_the_table_is_refused() {
    let root = synth("folder", "mismatch");
    let out = temp("ds-classes-mismatch");
    let folder = ["--set", "data.format=folder"];
    let message = err(&tiny_search(&root, &out, &[&folder[..], &["--set", "model.classes=19"]].concat()));
    assert!(
        message.contains("model.classes") && message.contains("is 19") && message.contains("12 classes"),
        "{message}"
    );
    assert!(!out.exists(), "nothing is written");
    // A folder data set without a table names both ways to give one.
    std::fs::remove_file(root.join("classes.toml")).unwrap();
    let message = err(&tiny_search(&root, &out, &folder));
    assert!(message.contains("classes.toml") && message.contains("data.classes"), "{message}");
    std::fs::remove_dir_all(root).unwrap();
}

#[test]
fn every_format_lists_its_layout() {
    // The synthetic sets of every layout list the same number of samples per split.
    for (format, train, val) in [
        (DataFormat::Cityscapes, "train", "val"),
        (DataFormat::Folder, "train", "val"),
        (DataFormat::Voc, "train", "val"),
        (DataFormat::Ade20k, "train", "val"),
    ] {
        let root = temp(&format!("ds-list-{format}"));
        let config =
            seg::data::SynthConfig { seed: 2, train: 4, val: 2, width: 24, height: 16, task: Default::default() };
        seg::data::synth_layout::generate_as(&root, &config, format).unwrap();
        let table = format.built_in_table().unwrap_or_else(seg::data::synth_layout::folder_table);
        let dataset = seg::data::Dataset::new(format, &root, table);
        let expected_train = if format == DataFormat::Voc { 2 } else { 4 };
        assert_eq!(dataset.list_samples(train).unwrap().len(), expected_train, "{format}");
        assert_eq!(dataset.list_samples(val).unwrap().len(), 2, "{format}");
        for sample in dataset.list_samples(val).unwrap() {
            let s = seg::data::read_sample(&sample).unwrap();
            assert!(s.label.iter().any(|&t| t != 255), "{format}: {} has labels", sample.id);
        }
        std::fs::remove_dir_all(root).unwrap();
    }
}

/// The error of reading every sample of `split`, as text.
fn read_error(dataset: &seg::data::Dataset, split: &str) -> String {
    let samples = match dataset.list_samples(split) {
        Ok(samples) => samples,
        Err(e) => return e.to_string(),
    };
    for sample in samples {
        if let Err(e) = seg::data::read_sample(&sample) {
            return e.to_string();
        }
    }
    panic!("every sample of {split} read")
}

#[test]
fn bad_data_is_an_error_that_names_the_file_and_the_pixel() {
    use seg::png::{write_jpeg, write_palette_png, write_png};
    let config = seg::data::SynthConfig { seed: 3, train: 2, val: 2, width: 8, height: 6, task: Default::default() };

    // Folder: the synthetic set reads; then one fault at a time.
    let root = temp("ds-bad-folder");
    seg::data::synth_layout::generate_as(&root, &config, DataFormat::Folder).unwrap();
    let folder = seg::data::Dataset::new(DataFormat::Folder, &root, seg::data::synth_layout::folder_table());
    let label = root.join("labels/train/synthberg/scene0000.png");
    let good = std::fs::read(&label).unwrap();
    let mut values = vec![0u8; 48];
    values[8 + 3] = 40;
    write_png(&label, 8, 6, image::ColorType::L8, &values).unwrap();
    let message = read_error(&folder, "train");
    assert!(
        message.contains("scene0000.png") && message.contains("pixel (3, 1)") && message.contains("value 40"),
        "{message}"
    );
    assert!(message.contains("synthetic class table (0..=11, 255)"), "{message}");
    let mut colours = vec![128u8; 144];
    colours[..3].copy_from_slice(&[1, 2, 3]);
    write_png(&label, 8, 6, image::ColorType::Rgb8, &colours).unwrap();
    let message = read_error(&folder, "train");
    assert!(
        message.contains("pixel (0, 0)") && message.contains("[1, 2, 3]") && message.contains("palette"),
        "{message}"
    );
    write_png(&label, 7, 6, image::ColorType::L8, &[0; 42]).unwrap();
    let message = read_error(&folder, "train");
    assert!(message.contains("scene0000.png") && message.contains("(7, 6)") && message.contains("(8, 6)"), "{message}");
    std::fs::write(&label, &good).unwrap();
    // An image without its label, and a label without its image.
    write_jpeg(&root.join("images/train/extra.jpg"), 8, 6, &[90; 144]).unwrap();
    let message = read_error(&folder, "train");
    assert!(message.contains("extra.jpg") && message.contains("labels/train/extra.png"), "{message}");
    std::fs::remove_file(root.join("images/train/extra.jpg")).unwrap();
    write_png(&root.join("labels/train/lonely.png"), 8, 6, image::ColorType::L8, &[0; 48]).unwrap();
    let message = read_error(&folder, "train");
    assert!(message.contains("lonely.png has no image") && message.contains("images/train/lonely"), "{message}");
    std::fs::remove_file(root.join("labels/train/lonely.png")).unwrap();
    // An unreadable JPEG.
    let jpeg = root.join("images/val/synthberg/scene0000.jpg");
    let bytes = std::fs::read(&jpeg).unwrap();
    std::fs::write(&jpeg, &bytes[..bytes.len() / 3]).unwrap();
    let message = read_error(&folder, "val");
    assert!(message.contains("scene0000.jpg") && message.contains("cannot decode"), "{message}");
    // A JPEG label is refused: compression changes values.
    std::fs::write(&jpeg, &bytes).unwrap();
    std::fs::copy(&jpeg, root.join("labels/val/synthberg/scene0000.png")).unwrap();
    let message = read_error(&folder, "val");
    assert!(message.contains("labels must be PNG"), "{message}");
    std::fs::remove_dir_all(&root).unwrap();

    // VOC: a palette index outside the table; a list naming a missing image.
    let root = temp("ds-bad-voc");
    seg::data::synth_layout::generate_as(&root, &config, DataFormat::Voc).unwrap();
    let voc = seg::data::Dataset::new(DataFormat::Voc, &root, ClassTable::voc());
    let palette: Vec<[u8; 3]> = (0..=255).map(seg::classes::voc_color).collect();
    let mut indices = vec![0u8; 48];
    indices[47] = 21;
    write_palette_png(&root.join("SegmentationClass/2008_000001.png"), 8, 6, &indices, &palette).unwrap();
    let message = read_error(&voc, "val");
    assert!(
        message.contains("2008_000001.png") && message.contains("pixel (7, 5)") && message.contains("value 21"),
        "{message}"
    );
    assert!(message.contains("voc class table (0..=20, 255)"), "{message}");
    std::fs::write(root.join("ImageSets/Segmentation/val.txt"), "2008_000001\n2009_000404\n").unwrap();
    let message = read_error(&voc, "val");
    assert!(message.contains("val.txt: line 2") && message.contains("2009_000404.jpg does not exist"), "{message}");
    std::fs::remove_dir_all(&root).unwrap();

    // ADE20K: 151 is no class.
    let root = temp("ds-bad-ade");
    seg::data::synth_layout::generate_as(&root, &config, DataFormat::Ade20k).unwrap();
    let ade = seg::data::Dataset::new(DataFormat::Ade20k, &root, ClassTable::ade20k());
    let mut values = vec![1u8; 48];
    values[0] = 151;
    write_png(&root.join("annotations/validation/ADE_val_00000001.png"), 8, 6, image::ColorType::L8, &values).unwrap();
    let message = read_error(&ade, "val");
    assert!(
        message.contains("ADE_val_00000001.png") && message.contains("value 151") && message.contains("(0..=150)"),
        "{message}"
    );
    std::fs::remove_dir_all(&root).unwrap();
}

#[test]
fn a_run_over_a_bad_label_stops_with_its_name_and_eval_names_a_bad_prediction() {
    let root = synth("folder", "bad-run");
    // Every training label damaged, so that whichever the loader reads first is named.
    for label in seg::walk::files(&root.join("labels/train"), None, |_| true).unwrap() {
        std::fs::write(&label, b"not a png").unwrap();
    }
    let out = temp("ds-bad-run");
    let message = err(&tiny_search(&root, &out, &["--set", "data.format=folder"]));
    assert!(message.contains("labels/train/synth") && message.contains("cannot decode"), "{message}");
    // Evaluating predictions with a value the table does not store names the pixel.
    let preds = temp("ds-bad-preds");
    for (name, value) in [("synthberg/scene0000", 12u8), ("synthdorf/scene0001", 0)] {
        let path = preds.join(format!("{name}.png"));
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        seg::png::write_png(&path, 64, 48, image::ColorType::L8, &vec![value; 64 * 48]).unwrap();
    }
    let message = err(&search(&[
        "eval",
        "--pred",
        preds.to_str().unwrap(),
        "--data",
        root.to_str().unwrap(),
        "--format",
        "folder",
    ]));
    assert!(message.contains("scene0000.png") && message.contains("pixel (0, 0) holds 12"), "{message}");
    std::fs::remove_dir_all(root).unwrap();
    std::fs::remove_dir_all(preds).unwrap();
    let _ = std::fs::remove_dir_all(out);
}
