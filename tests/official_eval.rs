//! `search eval --pred` against the official Cityscapes evaluation (`cityscapesscripts`,
//! installed by scripts/setup.sh into .libtorch/tools) on the same files: per-class IoU and
//! mIoU must agree.

use std::path::{Path, PathBuf};
use std::process::Command;

use rand::{Rng, SeedableRng};
use seg::data::{generate, list_samples, read_sample, Annotation, SynthConfig, SynthTask};
use seg::eval::evaluate_folder;
use seg::palette::to_stored_values;
use seg::png::write_png;

fn cityscapes(root: &Path) -> seg::data::Dataset {
    seg::data::Dataset::new(seg::data::DataFormat::Cityscapes, root, seg::ClassTable::cityscapes())
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

#[test]
fn agrees_with_the_official_cityscapes_evaluation() {
    let dir = std::env::temp_dir().join(format!("adl-official-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let (root, preds) = (dir.join("data"), dir.join("preds"));
    generate(&root, &SynthConfig { seed: 7, train: 1, val: 4, width: 128, height: 64, task: SynthTask::Street })
        .unwrap();
    std::fs::create_dir_all(&preds).unwrap();
    // Predictions with structured and random errors, including label ids that are not
    // evaluated (they count as false negatives only).
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
    for sample in list_samples(&root, "val", Annotation::Fine).unwrap() {
        let s = read_sample(&sample).unwrap();
        let mut ids = to_stored_values(&seg::ClassTable::cityscapes(), &s.label);
        let w = s.width as usize;
        for (i, id) in ids.iter_mut().enumerate() {
            if rng.random_bool(0.25) {
                *id = rng.random_range(0..=33);
            } else if (i % w) < 20 {
                *id = 26; // a band predicted as car
            }
        }
        write_png(&preds.join(format!("{}_leftImg8bit.png", s.id)), s.width, s.height, image::ColorType::L8, &ids)
            .unwrap();
    }
    let ours = evaluate_folder(&preds, &cityscapes(&root), "val").unwrap().scores;

    let tools = repo().join(".libtorch/tools");
    assert!(tools.join("cityscapesscripts").is_dir(), "{} is missing: run scripts/setup.sh", tools.display());
    let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".into());
    let out = Command::new(python)
        .arg(repo().join("scripts/official_eval.py"))
        .args([root.to_str().unwrap(), preds.to_str().unwrap(), "val"])
        .env("PYTHONPATH", &tools)
        .output()
        .unwrap();
    assert!(out.status.success(), "official evaluation failed: {}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let official: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();

    for class in &ours.classes {
        let theirs = official["classes"][class.name.as_str()].as_f64();
        match (class.iou, theirs) {
            (Some(a), Some(b)) => assert!((a - b).abs() < 1e-12, "{}: ours {a}, official {b}", class.name),
            (None, None) => {}
            (a, b) => panic!("{}: ours {a:?}, official {b:?}", class.name),
        }
    }
    let official_miou = official["miou"].as_f64().unwrap();
    assert!((ours.miou - official_miou).abs() < 1e-12, "mIoU ours {}, official {official_miou}", ours.miou);
    assert!(ours.miou > 0.05 && ours.miou < 0.95, "a test case with errors, mIoU {}", ours.miou);
    std::fs::remove_dir_all(&dir).unwrap();
}
