//! `search export` on a tiny trained network: TorchScript and ONNX checked outside the tool
//! (TorchScript in Python and in Rust, ONNX in onnxruntime) against `search predict --output-format
//! logits`, with and without batch-norm folding; the metadata in the weights and the exported
//! files; docs/deploy.md's example; and the refusals.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{data, err, ok, predict, repo, search, temp, tiny_search, tiny_train};

/// `.libtorch/site` (torch) and `.libtorch/tools` (onnx, onnxruntime, numpy, pillow).
fn python(script: &str, args: &[&str]) -> String {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let path = format!("{}:{}", root.join(".libtorch/site").display(), root.join(".libtorch/tools").display());
    let exe = std::env::var("PYTHON").unwrap_or_else(|_| "python3".into());
    let out = Command::new(exe).arg("-c").arg(script).args(args).env("PYTHONPATH", path).output().unwrap();
    assert!(out.status.success(), "python failed:\n{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

const CHECK: &str = r#"
import json, sys
import numpy as np, onnx, onnxruntime, torch
from PIL import Image
export, image, logits = sys.argv[1:4]
x = np.asarray(Image.open(image).convert("RGB"), dtype=np.float32).transpose(2, 0, 1)[None]
ours = np.load(logits)[None]
ts = torch.jit.load(export + "/model.pt").eval()
with torch.no_grad():
    ts_out = ts(torch.from_numpy(x)).numpy()
session = onnxruntime.InferenceSession(export + "/model.onnx", providers=["CPUExecutionProvider"])
(onnx_out,) = session.run(None, {"image": x})
(onnx_two,) = session.run(None, {"image": np.concatenate([x, x])})
model = onnx.load(export + "/model.onnx")
props = {p.key: p.value for p in model.metadata_props}
batch = model.graph.input[0].type.tensor_type.shape.dim[0]
dims = lambda v: [d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim]
# Another size: resized inside both files, logits at the input's size.
other = np.random.default_rng(0).uniform(0, 255, (1, 3, 72, 96)).astype(np.float32)
(onnx_other,) = session.run(None, {"image": other})
with torch.no_grad():
    ts_other = ts(torch.from_numpy(other)).numpy()
extra = {"metadata.json": ""}
torch.jit.load(export + "/model.pt", _extra_files=extra)
ts_meta = json.loads(extra["metadata.json"])
# Fine-tuning the TorchScript file: one SGD step on its parameters lowers the loss.
params = list(ts.parameters())
sgd = {"parameters": sum(p.numel() for p in params)}
if params:
    xt = torch.from_numpy(x)
    logits = ts(xt)
    labels = logits.detach().argmax(1).flip(-1)
    loss = torch.nn.functional.cross_entropy(logits, labels)
    optimiser = torch.optim.SGD(params, lr=0.01)
    loss.backward()
    optimiser.step()
    with torch.no_grad():
        after = torch.nn.functional.cross_entropy(ts(xt), labels)
    sgd.update({"loss_before": float(loss), "loss_after": float(after),
                "without_gradient": sum(1 for p in params if p.grad is None)})
print(json.dumps({
    "onnx_input_dims": dims(model.graph.input[0]),
    "onnx_output_dims": dims(model.graph.output[0]),
    "onnx_other_shape": list(onnx_other.shape),
    "ts_other_shape": list(ts_other.shape),
    "other_onnx_vs_ts": float(abs(onnx_other - ts_other).max()),
    "ts_metadata_keys": sorted(ts_meta),
    "state_dict_keys": sorted(ts.state_dict()),
    "sgd": sgd,
    "torchscript": float(abs(ts_out - ours).max()),
    "onnx": float(abs(onnx_out - ours).max()),
    "onnx_batch_2": float(abs(onnx_two[1:] - ours).max()),
    "opset": [o.version for o in model.opset_import if o.domain in ("", "ai.onnx")][0],
    "batch_dim": batch.dim_param,
    "keys": sorted(props),
    "classes": len(json.loads(props["class_table"])["class"]),
    "batch_norms": sum(1 for n in model.graph.node if n.op_type == "BatchNormalization"),
    "ts_batch_norms": sum(1 for n in ts.inlined_graph.nodes() if n.kind() == "aten::batch_norm"),
}))
"#;

/// The val image the checks run on and the logits `search predict` gives for it.
fn predicted_logits(run: &Path, root: &Path) -> (PathBuf, PathBuf) {
    let image = seg::walk::files(&root.join("leftImg8bit/val"), None, |p| p.extension().is_some_and(|e| e == "png"))
        .unwrap()
        .remove(0);
    let out = temp("export-logits");
    ok(&predict(run, &image, &out, "logits"));
    let logits = out.join(image.with_extension("npy").file_name().unwrap());
    let (shape, _) = search::deploy::npy::read_f32(&logits).unwrap();
    assert_eq!(shape, [19, 48, 64], "predict --output-format logits writes [classes, H, W]");
    (image, logits)
}

fn export(run: &Path, out: &Path, extra: &[&str]) -> serde_json::Value {
    // No --size: the data's image size (64x48).
    let mut args = vec!["export", "--weights", run.to_str().unwrap(), "--out", out.to_str().unwrap()];
    args.extend(extra);
    let printed = ok(&search(&args));
    serde_json::from_str(printed.lines().next().unwrap()).unwrap()
}

#[test]
fn exported_files_match_predict_outside_the_tool() {
    let root = data("export", 6, (64, 48));
    let run = temp("export-run");
    ok(&tiny_train(&root, &run, &[]));

    // The weights carry what they are.
    let meta = search::deploy::model_card::read_metadata(&run.join("weights.safetensors")).unwrap();
    for key in [
        "architecture",
        "filter_multiplier",
        "class_table",
        "mean",
        "std",
        "input",
        "training_data",
        "val_miou",
        "commit",
    ] {
        assert!(meta.contains_key(key), "weights.safetensors lacks metadata `{key}`: {meta:?}");
    }
    let card = search::deploy::model_card::ModelCard::from_metadata(&meta).unwrap().unwrap();
    assert_eq!((card.filter_multiplier, card.class_table.len()), (2, 19));
    // A bare copy of the weights evaluates without --arch: the metadata says which network.
    let bare = temp("export-bare.safetensors");
    std::fs::copy(run.join("weights.safetensors"), &bare).unwrap();
    let printed = ok(&search(&["eval", "--weights", bare.to_str().unwrap(), "--data", root.to_str().unwrap()]));
    assert!(printed.contains("mIoU"), "{printed}");

    let (image, logits) = predicted_logits(&run, &root);
    let mut exported = Vec::new();
    for (name, extra) in [("plain", vec![]), ("folded", vec!["--fold-bn"])] {
        let out = temp(&format!("export-{name}"));
        exported.push(out.clone());
        let report = export(&run, &out, &extra);
        for file in ["model.pt", "model.onnx", "model.json"] {
            assert!(out.join(file).is_file(), "{name}: {file} missing");
        }
        let json: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(out.join("model.json")).unwrap()).unwrap();
        assert_eq!(json["model"]["filter_multiplier"], 2);
        assert_eq!(json["export"]["height"], 48);
        let checks: serde_json::Value = serde_json::from_str(
            python(CHECK, &[out.to_str().unwrap(), image.to_str().unwrap(), logits.to_str().unwrap()]).trim(),
        )
        .unwrap();
        eprintln!("{name}: export {report}\nchecks {checks}");
        for key in ["torchscript", "onnx", "onnx_batch_2"] {
            let diff = checks[key].as_f64().unwrap();
            assert!(diff < 1e-4, "{name}: {key} differs from predict by {diff}");
        }
        assert!(checks["opset"].as_i64().unwrap() >= 17);
        assert_eq!(checks["batch_dim"], "batch", "dynamic batch");
        assert_eq!(checks["classes"], 19);
        assert_eq!(checks["batch_norms"], 0, "{name}: the ONNX exporter folds batch norm in eval mode");
        let keys: Vec<&str> = checks["keys"].as_array().unwrap().iter().map(|k| k.as_str().unwrap()).collect();
        for key in ["architecture", "class_table", "commit", "input_size", "mean", "std", "val_miou"] {
            assert!(keys.contains(&key), "{name}: ONNX metadata lacks {key}: {keys:?}");
        }
        // Any height and width: resized inside, logits at the input's size; named dimensions.
        assert_eq!(checks["onnx_input_dims"], serde_json::json!(["batch", 3, "height", "width"]));
        assert_eq!(checks["onnx_output_dims"], serde_json::json!(["batch", 19, "height", "width"]));
        assert_eq!(checks["onnx_other_shape"], serde_json::json!([1, 19, 72, 96]));
        assert_eq!(checks["ts_other_shape"], serde_json::json!([1, 19, 72, 96]));
        assert!(checks["other_onnx_vs_ts"].as_f64().unwrap() < 1e-4);
        // The TorchScript file carries the ONNX file's metadata.
        let ts_keys: Vec<&str> =
            checks["ts_metadata_keys"].as_array().unwrap().iter().map(|k| k.as_str().unwrap()).collect();
        assert_eq!(ts_keys, keys, "{name}: TorchScript metadata.json and ONNX metadata_props differ");
        let sgd = &checks["sgd"];
        if name == "folded" {
            assert_eq!(checks["ts_batch_norms"], 0, "every batch norm folded");
            assert_eq!(report["fold_bn"]["batch_norm_nodes_folded"], 0);
            assert_eq!(sgd["parameters"], 0, "a folded file is frozen: {sgd}");
        } else {
            assert!(checks["ts_batch_norms"].as_i64().unwrap() > 0);
            // Trainable: the weights are parameters and buffers under their safetensors names,
            // every parameter gets a gradient and one SGD step lowers the loss.
            let stored: Vec<String> = tch::Tensor::read_safetensors(run.join("weights.safetensors"))
                .unwrap()
                .into_iter()
                .map(|(n, _)| n)
                .collect();
            let mut stored = stored;
            stored.sort();
            let state: Vec<String> = serde_json::from_value(checks["state_dict_keys"].clone()).unwrap();
            assert_eq!(state, stored, "state_dict() keys are the weights' names");
            assert!(sgd["parameters"].as_i64().unwrap() > 100_000, "{sgd}");
            assert_eq!(sgd["without_gradient"], 0, "{sgd}");
            assert!(sgd["loss_after"].as_f64().unwrap() < sgd["loss_before"].as_f64().unwrap(), "{sgd}");
            assert_eq!(report["module"]["file_parameters"], sgd["parameters"]);
        }

        // TorchScript in Rust.
        let module = tch::CModule::load(out.join("model.pt")).unwrap();
        let (w, h, rgb) = seg::data::read_rgb(&image).unwrap();
        let x = tch::Tensor::from_slice(&rgb)
            .view([h as i64, w as i64, 3])
            .permute([2, 0, 1])
            .unsqueeze(0)
            .to_kind(tch::Kind::Float);
        let y = tch::no_grad(|| module.forward_ts(&[x]).unwrap());
        let (_, values) = search::deploy::npy::read_f32(&logits).unwrap();
        let ours = tch::Tensor::from_slice(&values).view([1, 19, h as i64, w as i64]);
        let diff = f64::try_from((y - ours).abs().max()).unwrap();
        assert!(diff < 1e-4, "{name}: TorchScript in Rust differs from predict by {diff}");
    }

    // docs/deploy.md's example, as written there.
    let doc = std::fs::read_to_string(repo("docs/deploy.md")).unwrap();
    let example = doc.split("```python\n").nth(1).unwrap().split("```").next().unwrap();
    let colour = temp("export-example.png");
    let out = exported[0].clone();
    let printed =
        python(example, &[out.join("model.onnx").to_str().unwrap(), image.to_str().unwrap(), colour.to_str().unwrap()]);
    assert!(printed.contains("19 classes"), "{printed}");
    let theirs = image::open(&colour).unwrap().into_rgb8();
    assert_eq!(theirs.dimensions(), (64, 48));
    let predicted = temp("export-colour");
    ok(&predict(&run, &image, &predicted, "color"));
    let ours = image::open(predicted.join(image.file_name().unwrap())).unwrap().into_rgb8();
    let same = ours.pixels().zip(theirs.pixels()).filter(|(a, b)| a == b).count();
    assert!(same as f64 >= 0.99 * (64.0 * 48.0), "the example agrees with predict on {same} of 3072 pixels");
    for dir in [root, run, predicted, out, exported[1].clone(), temp("export-logits")] {
        let _ = std::fs::remove_dir_all(dir);
    }
}

#[test]
fn bad_exports_are_refused_and_leave_nothing() {
    let root = data("export-bad", 6, (64, 48));
    let run = temp("export-bad-run");
    ok(&tiny_train(&root, &run, &[]));
    let parent = temp("export-bad-out");
    std::fs::create_dir_all(&parent).unwrap();
    let run_s = run.to_str().unwrap();

    let out = parent.join("tiny");
    let message = err(&search(&["export", "--weights", run_s, "--out", out.to_str().unwrap(), "--size", "16x16"]));
    assert!(message.contains("not accepted") && message.contains("16"), "{message}");
    let message = err(&search(&["export", "--weights", run_s, "--out", out.to_str().unwrap(), "--size", "9000x64"]));
    assert!(message.contains("9000"), "{message}");

    let existing = parent.join("existing");
    std::fs::create_dir_all(&existing).unwrap();
    std::fs::write(existing.join("keep.txt"), "mine").unwrap();
    let message = err(&search(&["export", "--weights", run_s, "--out", existing.to_str().unwrap()]));
    assert!(message.contains("exists"), "{message}");
    assert_eq!(std::fs::read_to_string(existing.join("keep.txt")).unwrap(), "mine");

    // Formats come from the exporters' registry: an unknown one is named with the known ones;
    // one format writes its file and model.json alone.
    let message =
        err(&search(&["export", "--weights", run_s, "--out", out.to_str().unwrap(), "--output-format", "pdf"]));
    assert!(message.contains("--output-format pdf") && message.contains("torchscript, onnx"), "{message}");
    let only = parent.join("only-torchscript");
    let report = export(&run, &only, &["--output-format", "torchscript"]);
    assert_eq!(report["files"], serde_json::json!(["model.pt", "model.json"]));
    assert!(report["formats"]["torchscript"]["max_abs_diff"].as_f64().unwrap() < 1e-4, "{report}");
    let mut written: Vec<String> =
        std::fs::read_dir(&only).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    written.sort();
    assert_eq!(written, ["model.json", "model.pt"], "no staging or traced file left");
    std::fs::remove_dir_all(&only).unwrap();

    let searched = temp("export-bad-search");
    ok(&tiny_search(&root, &searched, &[]));
    let message = err(&search(&["export", "--weights", searched.to_str().unwrap(), "--out", out.to_str().unwrap()]));
    assert!(message.contains("search run, not a trained network"), "{message}");

    let left: Vec<String> =
        std::fs::read_dir(&parent).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    assert_eq!(left, ["existing"], "nothing half-written beside --out");
    for dir in [root, run, parent, searched] {
        let _ = std::fs::remove_dir_all(dir);
    }
}
