//! The `search` pipeline end to end on tiny configs on the CPU: run folder contents, exact
//! resume, guard rails, Ctrl-C, and train / eval / predict round trips (search issue).

mod common;

use std::path::Path;
use std::process::Command;

use common::{data, err, ok, predict, repo, search, temp, tensors, tiny_search, tiny_train};

#[test]
fn a_search_writes_its_run_folder() {
    let root = data("files", 8, (64, 48));
    let run = temp("files-run");
    let printed = ok(&tiny_search(&root, &run, &[]));
    for file in [
        "config.toml",
        "env/000.json",
        "log.txt",
        "metrics.jsonl",
        "arch/epoch_000.json",
        "arch/epoch_001.json",
        "arch/final.json",
        "arch/history.jsonl",
        "arch/cell.dot",
        "arch/cell.svg",
        "arch/path.svg",
        "arch/alpha.svg",
        "arch/entropy.svg",
        "arch/cell.png",
        "arch/alpha.png",
        "arch/entropy.png",
        "arch/beta.svg",
    ] {
        assert!(run.join(file).is_file(), "{file} missing");
    }
    // Provenance: one record per invocation, with the commit built in and RFC 3339 times.
    let env: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("env/000.json")).unwrap()).unwrap();
    assert_eq!(env["device"], "Cpu");
    assert!(env["libtorch_version"].as_str().unwrap().starts_with("2.13"));
    assert_eq!(env["git_commit"].as_str().unwrap().len(), 40, "{env}");
    assert!(env["started"].as_str().unwrap().ends_with('Z') && env["command"][1] == "--threads", "{env}");
    let metrics: Vec<serde_json::Value> = std::fs::read_to_string(run.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let steps: Vec<_> = metrics.iter().filter(|m| m["kind"] == "step").collect();
    let epochs: Vec<_> = metrics.iter().filter(|m| m["kind"] == "epoch").collect();
    assert_eq!(epochs.len(), 2);
    // The schema (docs/pipeline.md): every row has its time and step; step rows report the
    // interval; epoch rows with an evaluation carry the per-class IoU.
    for m in &metrics {
        let time = m["time"].as_str().unwrap_or_default();
        assert!(time.len() == 20 && time.ends_with('Z') && m["step"].as_u64().is_some(), "{m}");
    }
    let step_numbers: Vec<u64> = steps.iter().map(|m| m["step"].as_u64().unwrap()).collect();
    assert_eq!(step_numbers, [1, 2, 3, 4], "log_every_steps = 1");
    for key in ["seconds_per_step", "data_share", "eta_seconds", "elapsed_seconds", "lr_weights"] {
        assert!(steps.iter().all(|m| m[key].as_f64().is_some_and(f64::is_finite)), "{key}");
    }
    for m in &epochs {
        let ious = m["val_iou"].as_object().unwrap();
        assert_eq!(ious.len(), 19, "every class, by name");
        assert!(ious.values().any(|v| v.is_f64()), "classes present in the val split have an IoU: {m}");
        assert!(ious.values().all(|v| v.is_f64() || v.is_null()));
    }
    // The log lines read without a terminal.
    let log = std::fs::read_to_string(run.join("log.txt")).unwrap();
    assert!(log.contains("step 4/4 (epoch 2/2) loss ") && log.contains("s/step") && log.contains("ETA"), "{log}");
    assert!(!log.contains("Some(") && !log.contains("None"), "no Debug formatting in the log");
    assert!(steps
        .iter()
        .all(|m| m["loss_weights"].as_f64().unwrap().is_finite() && m["images_per_second"].as_f64().unwrap() > 0.0));
    assert!(steps.iter().any(|m| m["loss_arch"].is_f64()), "epoch 1 updates α and β");
    assert!(steps.iter().any(|m| m["loss_arch"].is_null()), "epoch 0 does not");
    assert!(epochs.iter().all(|m| m["val_miou"].as_f64().is_some() && m["peak_rss_mib"].as_f64().unwrap() > 0.0));
    // How far α and β are from uniform, per epoch: normalised entropies in (0, 1], one per edge
    // of the B = 2 cell (5 edges) and per node of the L = 3 trellis.
    for m in &epochs {
        let (a, b) = (m["alpha_entropy"].as_f64().unwrap(), m["beta_entropy"].as_f64().unwrap());
        assert!(a > 0.0 && a <= 1.0 + 1e-9 && b > 0.0 && b <= 1.0 + 1e-9, "{m}");
        assert_eq!(m["alpha_entropy_per_edge"].as_array().unwrap().len(), 5);
        assert_eq!(m["beta_entropy_per_node"].as_array().unwrap().len(), 3);
    }
    // The final architecture is printed, written, and decodable from the last checkpoint.
    let final_arch = trellis::Architecture::load(&run.join("arch/final.json")).unwrap();
    assert_eq!(trellis::Architecture::from_json(&printed, "stdout").unwrap(), final_arch);
    let latest = std::fs::read_dir(run.join("checkpoints"))
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .max()
        .unwrap();
    for file in ["weights.safetensors", "arch.safetensors", "optim.safetensors", "state.json"] {
        assert!(latest.join(file).is_file(), "{file} missing in {}", latest.display());
    }
    // The decoded choice and how close it was to another (the tiny search's α is near uniform).
    assert!(final_arch.extra["decision_margin"].as_f64().unwrap() >= 0.0);
    assert_eq!(final_arch.extra["near_tie"], true);
    // The path's closest call: the smallest of the decoded path's Viterbi margins, and its layer.
    let path_margins: Vec<f64> = serde_json::from_value(final_arch.extra["margins"]["path"].clone()).unwrap();
    assert_eq!(path_margins.len(), final_arch.path.levels().len());
    assert!(path_margins.iter().all(|m| (0.0..=1.0).contains(m)), "{path_margins:?}");
    let closest = &final_arch.extra["path_closest"];
    let smallest = path_margins.iter().copied().fold(f64::INFINITY, f64::min);
    assert_eq!(closest["margin"].as_f64(), Some(smallest), "{closest}");
    assert_eq!(path_margins[closest["layer"].as_u64().unwrap() as usize], smallest);
    let same = |a: &trellis::Architecture| (&a.cell, &a.path) == (&final_arch.cell, &final_arch.path);
    let decoded = ok(&search(&["decode", "--params", latest.to_str().unwrap()]));
    assert!(same(&trellis::Architecture::from_json(&decoded, "decode").unwrap()));
    // The run folder itself decodes its latest checkpoint.
    let decoded = ok(&search(&["decode", "--params", run.to_str().unwrap()]));
    assert!(same(&trellis::Architecture::from_json(&decoded, "decode").unwrap()));
    // A search run is not a trained network: the error says what to do.
    let e = err(&search(&["eval", "--weights", run.to_str().unwrap(), "--data", root.to_str().unwrap()]));
    assert!(e.contains("is a search run") && e.contains("search train --arch"), "{e}");
    assert!(run.join("checkpoints/best").is_file());
    let cell = std::fs::read_to_string(run.join("arch/cell.dot")).unwrap();
    assert_eq!(cell.matches("-> \"block").count(), 2 * final_arch.cell.num_blocks());
}

/// `search --threads 1 train --arch paper` with the tiny retraining config on `root` into `out`.
#[test]
fn a_resumed_search_ends_exactly_where_an_uninterrupted_one_does() {
    let root = data("resume", 8, (64, 48));
    // First-order DARTS and the second-order (unrolled) architecture gradient alike.
    for order in ["1", "2"] {
        resumes_exactly(&root, order, &[]);
    }
    // Progressive decisions (one at the end of epochs 1 and 2, whatever their margins) and an
    // annealed temperature: the decisions taken before the interruption are kept, the later ones
    // taken as without it.
    let levers = [
        "--set",
        "arch.progressive.every_epochs=1",
        "--set",
        "arch.progressive.min_margin=0",
        "--set",
        "arch.progressive.path=true",
        "--set",
        "arch.temperature.end=0.5",
    ];
    let run = resumes_exactly(&root, "1", &levers);
    let final_arch: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("arch/final.json")).unwrap()).unwrap();
    let decisions = final_arch["decisions"].as_array().expect("the decisions are recorded");
    assert_eq!(decisions.len(), 2, "{final_arch}");
    // The path's first two layers were decided (end of epochs 1 and 2), from the stem on, and
    // the decoded path keeps them.
    let path_decisions = final_arch["path_decisions"].as_array().expect("the path decisions are recorded");
    let path: Vec<u64> = serde_json::from_value(final_arch["path"].clone()).unwrap();
    assert_eq!(path_decisions.len(), 2, "{final_arch}");
    for (k, d) in path_decisions.iter().enumerate() {
        assert_eq!((d["layer"].as_u64(), d["level"].as_u64()), (Some(k as u64), Some(path[k])), "{final_arch}");
    }
    assert_eq!(final_arch["margins"]["alpha_mean"].as_f64().map(|m| m > 0.99), Some(true), "{final_arch}");
    // A decided cell decodes one-hot; the margins each block was fixed at are recorded beside.
    let when: Vec<f64> = decisions.iter().map(|d| d["margin"].as_f64().unwrap()).collect();
    let decided = &final_arch["decided_margins"];
    let smallest = when.iter().copied().fold(f64::INFINITY, f64::min);
    assert_eq!(decided["smallest"].as_f64(), Some(smallest), "{final_arch}");
    assert_eq!(decided["largest"].as_f64(), Some(when.iter().copied().fold(f64::NEG_INFINITY, f64::max)));
    assert_eq!(decided["near_tie"].as_bool(), Some(smallest < 0.01), "{final_arch}");
    // `arch/history.jsonl` (and the pictures drawn from it) shows β at τ = 1, as decoding and
    // the margins read it, not the annealed mixture (τ = 0.625 at the last step): its last line's
    // node margins on the decoded path are final.json's.
    let history = std::fs::read_to_string(run.join("arch/history.jsonl")).unwrap();
    let last: serde_json::Value = serde_json::from_str(history.lines().last().unwrap()).unwrap();
    let levels: Vec<usize> = serde_json::from_value(final_arch["path"].clone()).unwrap();
    let recorded: Vec<f64> = serde_json::from_value(final_arch["margins"]["beta_path"].clone()).unwrap();
    for (l, want) in recorded.iter().enumerate() {
        let from = if l == 0 { 0 } else { levels[l - 1] };
        let mut node: Vec<f64> = serde_json::from_value(last["beta"][l][from].clone()).unwrap();
        node.sort_by(|a, b| b.total_cmp(a));
        assert!((node[0] - node[1] - want).abs() < 1e-6, "layer {l}: {node:?} against the margin {want}");
    }
    let metrics = std::fs::read_to_string(run.join("metrics.jsonl")).unwrap();
    // `path_stable`: the decoded path has stood since the first architecture epoch of its last
    // unbroken run, as the epoch rows show it (and across the resume, checked above).
    let rows: Vec<serde_json::Value> = metrics.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let arch_epochs: Vec<(u64, &serde_json::Value)> = rows
        .iter()
        .filter(|r| r["kind"] == "epoch" && r["arch_active"] == true)
        .map(|r| (r["epoch"].as_u64().unwrap(), &r["path"]))
        .collect();
    let (last_epoch, last_path) = *arch_epochs.last().expect("architecture epochs");
    let since = arch_epochs.iter().rev().take_while(|(_, p)| *p == last_path).last().unwrap().0;
    let stable = &final_arch["path_stable"];
    assert_eq!(stable["since_epoch"].as_u64(), Some(since), "{final_arch}");
    assert_eq!(stable["epochs"].as_u64(), Some(last_epoch + 1 - since), "{final_arch}");
    assert_eq!(stable["of_arch_epochs"].as_u64(), Some(arch_epochs.len() as u64), "{final_arch}");
    // Arch steps at global steps 2..=5 of 6: τ = 0.5 + 0.5 (1 − t), t = 0, ¼, ½, ¾.
    for tau in ["1.0", "0.875", "0.75", "0.625"] {
        assert!(metrics.contains(&format!("\"temperature\":{tau}")), "τ = {tau} is logged");
    }
    let _ = std::fs::remove_dir_all(run);
    // With the default min_margin (0.01) the same search's first decision is a near tie: it is
    // deferred, not taken, and a block never certain enough is decoded by its argmax and named.
    assert!(smallest < 0.01, "this tiny search decides by near ties: {final_arch}");
    let firm = temp("resume-firm");
    let out = tiny_search(&root, &firm, &["--set", "epochs=3", "--set", "arch.progressive.every_epochs=1"]);
    ok(&out);
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(log.contains("progressive decision deferred"), "{log}");
    let firm_arch: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(firm.join("arch/final.json")).unwrap()).unwrap();
    let taken = firm_arch["decisions"].as_array().map_or(0, |d| d.len());
    let undecided = firm_arch["undecided_blocks"].as_array().expect("undecided blocks are named").len();
    assert!(undecided >= 1 && taken + undecided == 2, "{firm_arch}");
    assert!(firm_arch["decisions"].as_array().into_iter().flatten().all(|d| d["margin"].as_f64().unwrap() >= 0.01));
    assert!(log.contains("never certain enough"), "{log}");
    let _ = std::fs::remove_dir_all(firm);
}

/// Runs the check; returns the uninterrupted run's folder, kept when `extra` is given.
fn resumes_exactly(root: &Path, order: &str, extra: &[&str]) -> std::path::PathBuf {
    let label = if extra.is_empty() { order.to_owned() } else { format!("{order}-levers") };
    let (straight, split) = (temp(&format!("resume-straight-{label}")), temp(&format!("resume-split-{label}")));
    let order_key = format!("arch.order={order}");
    let three_epochs = [&["--set", "epochs=3", "--set", order_key.as_str()][..], extra].concat();
    ok(&tiny_search(root, &straight, &three_epochs));
    // Interrupted in the middle of epoch 1 (α and β already training), then resumed twice.
    let stopped = ok(&tiny_search(root, &split, &[&three_epochs[..], &["--stop-after-steps", "3"]].concat()));
    assert!(stopped.contains("stopped at checkpoint"), "{stopped}");
    let out = search(&[
        "--threads",
        "1",
        "run",
        "--resume",
        split.to_str().unwrap(),
        "--device",
        "cpu",
        "--stop-after-steps",
        "5",
    ]);
    ok(&out);
    ok(&search(&["--threads", "1", "run", "--resume", split.to_str().unwrap(), "--device", "cpu"]));
    for file in ["weights", "arch", "optim"] {
        let a = tensors(&straight.join(format!("checkpoints/step_00000006/{file}.safetensors")));
        let b = tensors(&split.join(format!("checkpoints/step_00000006/{file}.safetensors")));
        assert_eq!(a.len(), b.len());
        for ((na, ta), (nb, tb)) in a.iter().zip(&b) {
            assert_eq!(na, nb);
            assert!(ta.equal(tb), "order {order}: {file}: {na} differs after resume");
        }
    }
    assert_eq!(
        std::fs::read_to_string(straight.join("arch/final.json")).unwrap(),
        std::fs::read_to_string(split.join("arch/final.json")).unwrap()
    );
    // Resuming takes the run's own config.
    assert!(
        err(&search(&["run", "--resume", split.to_str().unwrap(), "--set", "epochs=9"])).contains("--resume continues")
    );
    if order == "2" {
        let config = std::fs::read_to_string(split.join("config.toml")).unwrap();
        assert!(config.contains("order = 2"), "the run records its order: {config}");
    }
    if extra.is_empty() {
        let _ = std::fs::remove_dir_all(&straight);
    }
    let _ = std::fs::remove_dir_all(split);
    straight
}

/// Execution settings never change a variable or its name: a search written with one-call-
/// per-transition cells and no recompute resumes with batched transitions and every layer
/// recomputed, and ends where an uninterrupted run ends (to float tolerance: the two execution
/// paths add in different orders). One documented difference is left out: one cell call per
/// transition updates the running statistics of the H^(l-2) edges once per transition, the
/// batched path once per step (`batched_transitions_equal_the_plain_path`).
#[test]
fn a_search_resumes_under_other_execution_settings() {
    let root = data("execution", 8, (64, 48));
    let (straight, split) = (temp("execution-straight"), temp("execution-split"));
    let plain = ["--set", "execution.batched_transitions=false", "--set", "execution.recompute=never"];
    ok(&tiny_search(&root, &straight, &plain));
    // Two epochs of two steps: stopped in the middle of epoch 1, with α and β training.
    let stopped = ok(&tiny_search(&root, &split, &[&plain[..], &["--stop-after-steps", "3"]].concat()));
    assert!(stopped.contains("stopped at checkpoint"), "{stopped}");
    let split_arg = split.to_str().unwrap();
    let other = ["--set", "execution.batched_transitions=true", "--set", "execution.recompute=always"];
    ok(&search(&[&["--threads", "1", "run", "--resume", split_arg, "--device", "cpu"][..], &other[..]].concat()));
    for file in ["weights", "arch"] {
        let a = tensors(&straight.join(format!("checkpoints/step_00000004/{file}.safetensors")));
        let b = tensors(&split.join(format!("checkpoints/step_00000004/{file}.safetensors")));
        assert_eq!(a.len(), b.len());
        for ((na, ta), (nb, tb)) in a.iter().zip(&b) {
            assert_eq!(na, nb, "the same variables under the same names");
            if na.contains("running_") && (na.contains("preprocess0") || na.contains(".state0.")) {
                continue;
            }
            let scale = f64::try_from(ta.abs().max()).unwrap();
            let diff = f64::try_from((ta - tb).abs().max()).unwrap();
            assert!(diff <= 1e-3 * scale + 1e-6, "{file}: {na} differs by {diff} (scale {scale})");
        }
    }
    // Only execution keys may change on resume.
    let e = err(&search(&["run", "--resume", split_arg, "--set", "model.layers=2"]));
    assert!(e.contains("--resume continues") && e.contains("execution"), "{e}");
}

/// A search too short to decide is refused before its run folder exists, with its plan in
/// words and what to change (issue 24: a 24-step folder search decided nothing).
#[test]
fn a_search_too_short_to_decide_is_refused() {
    let root = data("budget", 16, (96, 80));
    let run = temp("budget-run");
    let config = repo("configs/demo-search.toml");
    let (r, o) = (root.to_str().unwrap(), run.to_str().unwrap());
    let out = search(&["run", "--config", &config, "--device", "cpu", "--data", r, "--out", o, "--set", "epochs=5"]);
    let e = err(&out);
    assert!(e.contains("too short to decide") && e.contains("16 training images"), "{e}");
    assert!(e.contains("arch.min_steps = 40") && e.contains("budget_steps"), "{e}");
    assert!(!run.exists(), "refused before the run folder exists");
    let _ = std::fs::remove_dir_all(root);
}

#[test]
fn guard_rails_stop_before_training() {
    let small = data("guard-small", 3, (64, 48));
    let e = err(&tiny_search(&small, &temp("guard-small-run"), &[]));
    assert!(e.contains("trainB") && e.contains("fewer than one batch"), "{e}");
    assert!(!temp("guard-small-run").exists(), "no run folder is left behind by a rejected run");

    let root = data("guard", 8, (64, 48));
    let e = err(&tiny_search(&root, &temp("guard-crop"), &["--set", "data.transform.crop=65x65"]));
    assert!(e.contains("data.transform.crop") && e.contains("larger than the images"), "{e}");
    let e = err(&tiny_search(&root, &temp("guard-epochs"), &["--set", "arch_start_epoch=2"]));
    assert!(e.contains("arch_start_epoch") && e.contains("epochs"), "{e}");
    let e = err(&tiny_search(&root, &temp("guard-partial"), &["--set", "model.partial_channels=3"]));
    assert!(e.contains("model.partial_channels") && e.contains("filter_multiplier"), "{e}");
    let e = err(&tiny_search(&root, &temp("guard-key"), &["--set", "model.layer=3"]));
    assert!(e.contains("model.layer"), "{e}");
    assert!(!temp("guard-epochs").join("checkpoints").exists(), "nothing is written before the checks pass");

    // Values out of range are rejected on load, naming the key, before libtorch sees them.
    let e = err(&tiny_train(&root, &temp("guard-width"), &["--set", "model.filter_multiplier=0"]));
    assert!(e.contains("model.filter_multiplier") && e.contains("at least 1"), "{e}");
    let e = err(&tiny_search(&root, &temp("guard-batch"), &["--set", "data.loader.batch=0"]));
    assert!(e.contains("data.loader.batch"), "{e}");
    assert!(!temp("guard-width").exists() && !temp("guard-batch").exists());

    // An architecture that does not match the configured L.
    let e = err(&tiny_train(&root, &temp("guard-arch"), &["--set", "model.layers=5"]));
    assert!(e.contains("12 layers, the network expects 5"), "{e}");

    // A diverging run stops with the step named, keeping its earlier checkpoints.
    let run = temp("guard-nan");
    let e = err(&tiny_search(
        &root,
        &run,
        &[
            "--set",
            "weights.lr_max=1e30",
            "--set",
            "weights.grad_clip=0",
            "--set",
            "checkpoint.every_steps=1",
            "--set",
            "epochs=6",
        ],
    ));
    assert!(e.contains("non-finite") && e.contains("step"), "{e}");
}

#[test]
fn ctrl_c_saves_a_checkpoint_and_exits_cleanly() {
    let root = data("ctrlc", 8, (64, 48));
    let run = temp("ctrlc-run");
    let config = repo("configs/tiny-search.toml");
    let child = Command::new(env!("CARGO_BIN_EXE_search"))
        .args([
            "--threads",
            "1",
            "run",
            "--config",
            &config,
            "--device",
            "cpu",
            "--set",
            "epochs=1000",
            "--set",
            "arch_start_epoch=0",
        ])
        .args(["--data", root.to_str().unwrap(), "--out", run.to_str().unwrap()])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let metrics = run.join("metrics.jsonl");
    let start = std::time::Instant::now();
    while std::fs::read_to_string(&metrics).map_or(0, |t| t.lines().count()) < 2 {
        assert!(start.elapsed().as_secs() < 120, "the run did not start");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap().success());
    let out = child.wait_with_output().unwrap();
    // An interrupted stop exits with 130, so that `search run … && search train …` stops too.
    assert_eq!(out.status.code(), Some(130), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("stopped at checkpoint"), "{stdout}");
    let checkpoint = stdout.trim().rsplit(' ').next().unwrap();
    assert!(Path::new(checkpoint).join("weights.safetensors").is_file());
}

#[test]
fn train_eval_and_predict_agree() {
    let root = data("train", 6, (64, 48));
    let run = temp("train-run");
    let (root_s, run_s) = (root.to_str().unwrap(), run.to_str().unwrap());
    let printed = ok(&tiny_train(&root, &run, &[]));
    assert!(printed.contains("val mIoU"), "{printed}");
    for file in ["config.toml", "env/000.json", "log.txt", "metrics.jsonl", "arch.json", "weights.safetensors"] {
        assert!(run.join(file).is_file(), "{file} missing");
    }
    let final_miou = std::fs::read_to_string(run.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|m| m["final"] == true)
        .map(|m| m["val_miou"].as_f64().unwrap())
        .next()
        .unwrap();

    let json = temp("train-eval.json");
    ok(&search(&[
        "eval",
        "--weights",
        run_s,
        "--data",
        root_s,
        "--split",
        "val",
        "--json",
        json.to_str().unwrap(),
        "--device",
        "cpu",
    ]));
    let eval: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let eval_miou = eval["scores"]["miou"].as_f64().unwrap();
    assert!((eval_miou - final_miou).abs() < 1e-9, "eval {eval_miou} vs end of training {final_miou}");

    // The evaluation protocol: `--scales 1` is the single-scale default exactly; several scales
    // with flips run through and give another valid mIoU.
    let scores = |extra: &[&str]| -> f64 {
        let out = temp("train-eval-protocol.json");
        let mut args = vec!["eval", "--weights", run_s, "--data", root_s, "--json", out.to_str().unwrap()];
        args.extend(extra);
        ok(&search(&args));
        let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
        v["scores"]["miou"].as_f64().unwrap()
    };
    assert_eq!(scores(&["--scales", "1"]), eval_miou);
    let multi = scores(&["--scales", "0.75,1,1.25", "--flip"]);
    assert!((0.0..=1.0).contains(&multi), "{multi}");
    assert!(err(&search(&["eval", "--weights", run_s, "--data", root_s, "--scales", "0"])).contains("--scales"));

    // Label-id predictions, read back by `search eval --pred`, give the same mIoU.
    let preds = temp("train-preds");
    let images = root.join("leftImg8bit/val");
    ok(&predict(&run, &images, &preds, "labelids"));
    let json2 = temp("train-eval-pred.json");
    ok(&search(&[
        "eval",
        "--pred",
        preds.to_str().unwrap(),
        "--data",
        root_s,
        "--split",
        "val",
        "--json",
        json2.to_str().unwrap(),
    ]));
    let pred: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json2).unwrap()).unwrap();
    assert_eq!(pred["scores"]["miou"].as_f64().unwrap(), eval_miou);
    assert_eq!(pred["confusion"], eval["confusion"]);
    let confusion = &eval["confusion"];
    let n = confusion["classes"].as_array().unwrap().len();
    assert_eq!(n, 19);
    let rows = confusion["counts"].as_array().unwrap();
    assert!(rows.len() == n && rows.iter().all(|r| r.as_array().unwrap().len() == n + 1), "n x (n + 1)");

    // Colour and overlay formats, from a bare weights file with --arch.
    for format in ["color", "overlay"] {
        let out = temp(&format!("train-{format}"));
        let weights = run.join("weights.safetensors");
        ok(&search(&[
            "predict",
            "--weights",
            weights.to_str().unwrap(),
            "--arch",
            "paper",
            "--filter-multiplier",
            "2",
            "--input",
            images.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--output-format",
            format,
            "--device",
            "cpu",
        ]));
        let written: Vec<_> = std::fs::read_dir(out.join("synthberg")).unwrap().collect();
        assert_eq!(written.len(), 1);
        // A legend of the colours beside the pictures: every class the predictions show, with
        // its colour, and no other; overlays carry it drawn to their right.
        let legend = std::fs::read_to_string(out.join("legend.svg")).unwrap();
        assert!(out.join("legend.png").is_file());
        let picture = written[0].as_ref().unwrap().path();
        let (w, h) = image::image_dimensions(&picture).unwrap();
        if format == "overlay" {
            assert!(w > 64 && h >= 48, "the legend is drawn beside the overlay: {w}x{h}");
        } else {
            assert_eq!((w, h), (64, 48));
            let colours: std::collections::BTreeSet<[u8; 3]> =
                image::open(&picture).unwrap().to_rgb8().pixels().map(|p| p.0).collect();
            assert_eq!(legend.matches("<rect").count(), colours.len(), "{legend}");
            for [r, g, b] in colours {
                assert!(legend.contains(&format!("rgb({r},{g},{b})")), "{legend}");
            }
        }
    }
    // The wrong width does not load.
    let e = err(&search(&[
        "eval",
        "--weights",
        run.join("weights.safetensors").to_str().unwrap(),
        "--arch",
        "paper",
        "--filter-multiplier",
        "3",
        "--data",
        root_s,
        "--device",
        "cpu",
    ]));
    assert!(e.contains("do not fit"), "{e}");

    // Resume of a training continues to the same end.
    let split = temp("train-split");
    ok(&tiny_train(&root, &split, &["--stop-after-steps", "3"]));
    ok(&search(&["--threads", "1", "train", "--resume", split.to_str().unwrap(), "--device", "cpu"]));
    // `checkpoint.final = "best"`: the run ends with the weights of its best evaluation and says so.
    let best_run = temp("train-final-best");
    ok(&tiny_train(&root, &best_run, &["--set", "checkpoint.final=best"]));
    let best = std::fs::read_to_string(best_run.join("checkpoints/best")).unwrap();
    let (a, b) = (
        tensors(&best_run.join("weights.safetensors")),
        tensors(&best_run.join("checkpoints").join(best.trim()).join("weights.safetensors")),
    );
    assert!(a.iter().zip(&b).all(|((_, x), (_, y))| x.equal(y)), "the final weights are the best checkpoint's");
    let last_row = std::fs::read_to_string(best_run.join("metrics.jsonl")).unwrap().lines().last().unwrap().to_owned();
    assert!(last_row.contains("\"kind\":\"final\"") && last_row.contains("\"weights\":\"best\""), "{last_row}");
    for ((na, a), (nb, b)) in
        tensors(&run.join("weights.safetensors")).iter().zip(&tensors(&split.join("weights.safetensors")))
    {
        assert_eq!(na, nb);
        assert!(a.equal(b), "{na} differs after resuming the training");
    }
}

#[test]
fn every_shipped_config_loads() {
    // The folder configs read the data set's own classes.toml.
    let folder = temp("shipped-folder");
    let f = folder.to_str().unwrap();
    ok(&search(&["synth", "--format", "folder", "--train", "2", "--val", "1", "--size", "64x48", "--out", f]));
    for entry in std::fs::read_dir(repo("configs")).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_str().unwrap().to_owned();
        let text = std::fs::read_to_string(&path).unwrap();
        let overrides: Vec<String> =
            if text.contains("format = \"folder\"") { vec![format!("data.root=\"{f}\"")] } else { vec![] };
        if name.contains("search") {
            search::config::load::<search::run_config::SearchRunConfig>(Some(&path), &overrides).unwrap();
        } else if name.contains("retrain") || name.starts_with("model-") {
            // model-{s,m,l}.toml: the widths the retraining configs list among their bases.
            search::config::load::<search::run_config::RetrainConfig>(Some(&path), &overrides).unwrap();
        } else {
            search::config::load::<search::smoke::SmokeConfig>(Some(&path), &overrides).unwrap();
        }
    }
}

/// A class table in the config that disagrees with the data set's own classes.toml is refused
/// before anything is written, naming both; `config show` says which table a run uses and from
/// where; the folder flow of datasets/README.md needs no `--set`.
#[test]
fn class_tables_are_never_ambiguous() {
    let folder = temp("tables-folder");
    let f = folder.to_str().unwrap();
    ok(&search(&["synth", "--format", "folder", "--train", "8", "--val", "2", "--size", "64x48", "--out", f]));
    let config = temp("tables-config.toml");
    std::fs::write(
        &config,
        format!(
            "base = \"{}\"\n[data]\nformat = \"folder\"\n[data.classes]\nname = \"coast\"\n\
             [[data.classes.class]]\nname = \"sea\"\ncolor = [0, 64, 160]\n\
             [[data.classes.class]]\nname = \"land\"\ncolor = [60, 140, 40]\n",
            repo("configs/tiny-search.toml")
        ),
    )
    .unwrap();
    let out = temp("tables-run");
    let e = err(&search(&["run", "--config", config.to_str().unwrap(), "--data", f, "--out", out.to_str().unwrap()]));
    assert!(e.contains("`coast`") && e.contains("classes.toml") && e.contains("disagrees"), "{e}");
    assert!(!out.exists(), "nothing written");
    let shown = ok(&search(&[
        "config",
        "show",
        "--config",
        &repo("configs/folder-search.toml"),
        "--set",
        &format!("data.root=\"{f}\""),
    ]));
    assert!(shown.lines().next().unwrap().contains(&format!("from the data set's own {f}/classes.toml")), "{shown}");
    // The folder flow as datasets/README.md types it (shortened to the tiny budget for the test).
    let run = temp("tables-folder-run");
    ok(&search(&[
        "--threads",
        "1",
        "run",
        "--config",
        &repo("configs/folder-search.toml"),
        "--data",
        f,
        "--out",
        run.to_str().unwrap(),
        "--set",
        "epochs=2",
        "--set",
        "arch_start_epoch=1",
        "--set",
        "steps_per_epoch=1",
        "--set",
        "arch.min_steps=0",
        "--set",
        "model.layers=2",
        "--set",
        "model.filter_multiplier=2",
        "--set",
        "data.transform.crop=33x33",
    ]));
    // ... then retraining, evaluation, prediction and the evaluation of the predictions, each
    // without a --set of the layout or the table.
    let trained = temp("tables-folder-train");
    let t = trained.to_str().unwrap();
    let arch = run.join("arch/final.json");
    ok(&search(&[
        "--threads",
        "1",
        "train",
        "--arch",
        arch.to_str().unwrap(),
        "--config",
        &repo("configs/folder-retrain.toml"),
        "--data",
        f,
        "--out",
        t,
        "--set",
        "iterations=2",
        "--set",
        "model.filter_multiplier=2",
        "--set",
        "data.transform.crop=33x33",
    ]));
    let printed = ok(&search(&["eval", "--weights", t, "--device", "cpu"]));
    assert!(printed.contains("2 images"), "{printed}");
    let predictions = temp("tables-folder-predictions");
    let p = predictions.to_str().unwrap();
    let val = folder.join("images/val");
    ok(&predict(&trained, &val, &predictions, "labelids"));
    let printed = ok(&search(&["eval", "--pred", p, "--data", f, "--format", "folder", "--split", "val"]));
    assert!(printed.contains("2 images"), "{printed}");
    for dir in [folder, run, trained, predictions] {
        let _ = std::fs::remove_dir_all(dir);
    }
}

/// With `tensorboard = true` the run's metrics are also TensorBoard scalars, which the
/// `tensorboard` Python package (installed by scripts/setup.sh) reads back with the values of
/// `metrics.jsonl`.
#[test]
fn tensorboard_events_read_back() {
    let root = data("tensorboard", 8, (64, 48));
    let run = temp("tensorboard-run");
    ok(&tiny_search(&root, &run, &["--set", "tensorboard=true"]));
    let tools = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.libtorch/tools");
    assert!(tools.join("tensorboard").is_dir(), "{} lacks tensorboard: run scripts/setup.sh", tools.display());
    let script = r#"
import json, sys
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
acc = EventAccumulator(sys.argv[1], size_guidance={"scalars": 0, "images": 0})
acc.Reload()
out = {tag: [[e.step, e.value] for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}
out["images"] = {tag: [[e.step, e.width, e.height, e.encoded_image_string[:8].hex()] for e in acc.Images(tag)]
                 for tag in acc.Tags()["images"]}
print(json.dumps(out))
"#;
    let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".into());
    let out = Command::new(python)
        .args(["-c", script, run.join("tensorboard").to_str().unwrap()])
        .env("PYTHONPATH", &tools)
        .output()
        .unwrap();
    let scalars: serde_json::Value = serde_json::from_str(&ok(&out)).unwrap();
    for tag in ["step/loss", "step/loss_weights", "step/lr_weights", "epoch/val_miou", "epoch/alpha_entropy"] {
        assert!(scalars[tag].is_array(), "{tag} missing from {:?}", scalars.as_object().unwrap().keys());
    }
    assert!(scalars["epoch/alpha_entropy_per_edge/4"].is_array(), "per-edge entropies");
    let tags: Vec<&String> = scalars.as_object().unwrap().keys().collect();
    assert!(!tags.iter().any(|t| t.starts_with("epoch/cell") || t.starts_with("epoch/path")), "index-valued: {tags:?}");
    // A few val predictions at every evaluation (two epochs), as PNG panels image | ground truth
    // | prediction, each of the val size, 4 white pixels apart.
    let images = scalars["images"].as_object().unwrap();
    assert_eq!(images.len(), 2, "the two val images: {images:?}");
    for pictures in images.values() {
        let pictures = pictures.as_array().unwrap();
        assert_eq!(pictures.len(), 2, "one per evaluation");
        assert_eq!((pictures[0][1].as_u64(), pictures[0][2].as_u64()), (Some(3 * 64 + 2 * 4), Some(48)));
        assert_eq!(pictures[0][3], "89504e470d0a1a0a", "PNG");
    }
    assert!(scalars["epoch/val_iou/road"].is_array() || scalars["epoch/val_iou/building"].is_array());
    // The values are the metrics rows' (as f32).
    let rows: Vec<serde_json::Value> = std::fs::read_to_string(run.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .filter(|m: &serde_json::Value| m["kind"] == "step")
        .collect();
    let logged: Vec<(u64, f64)> = scalars["step/loss"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p[0].as_u64().unwrap(), p[1].as_f64().unwrap()))
        .collect();
    assert_eq!(logged.len(), rows.len());
    for ((step, value), row) in logged.iter().zip(&rows) {
        assert_eq!(*step, row["step"].as_u64().unwrap());
        assert!((value - row["loss"].as_f64().unwrap()).abs() < 1e-5, "{value} vs {row}");
    }
}

/// `summary`, `cost` and `eval` read the run they are given: its F, classes and image size
/// (and for eval its data), unless a flag says otherwise.
#[test]
fn commands_read_the_run() {
    let folder = temp("reads-folder");
    let f = folder.to_str().unwrap();
    ok(&search(&["synth", "--format", "folder", "--train", "8", "--val", "2", "--size", "64x48", "--out", f]));
    let classes = std::fs::read_to_string(folder.join("classes.toml")).unwrap().matches("[[class]]").count() as u64;
    let train = temp("reads-train");
    let t = train.to_str().unwrap();
    ok(&tiny_train(&folder, &train, &["--set", "data.format=\"folder\""]));
    let summary: serde_json::Value = serde_json::from_str(&ok(&search(&["summary", "--arch", t, "--json"]))).unwrap();
    assert_eq!(
        (&summary["classes"], &summary["filter_multiplier"], &summary["width"], &summary["height"]),
        (&serde_json::json!(classes), &serde_json::json!(2), &serde_json::json!(64), &serde_json::json!(48)),
        "{summary}"
    );
    let flagged: serde_json::Value =
        serde_json::from_str(&ok(&search(&["summary", "--arch", t, "--json", "--filter-multiplier", "4"]))).unwrap();
    assert_eq!(flagged["filter_multiplier"], 4, "a flag wins");
    // A file inside the run reads the run too (its F and classes, not the paper's 20 and 19).
    let inside = train.join("arch.json");
    let from_file: serde_json::Value =
        serde_json::from_str(&ok(&search(&["summary", "--arch", inside.to_str().unwrap(), "--json"]))).unwrap();
    assert_eq!(
        (&from_file["filter_multiplier"], &from_file["classes"]),
        (&serde_json::json!(2), &serde_json::json!(classes))
    );
    let run = temp("reads-search");
    ok(&tiny_search(&folder, &run, &["--set", "data.format=\"folder\""]));
    let cost: serde_json::Value =
        serde_json::from_str(&ok(&search(&["cost", "--params", run.to_str().unwrap(), "--kind", "params", "--json"])))
            .unwrap();
    assert_eq!(
        (cost["width"].as_i64(), cost["height"].as_i64(), cost["filter_multiplier"].as_i64()),
        (Some(64), Some(48), Some(2))
    );
    // eval of the run without --data or --format: the run's data and table.
    let printed = ok(&search(&["eval", "--weights", t, "--device", "cpu"]));
    assert!(printed.contains("2 images"), "{printed}");
    // --json: the scores, and beside them the confusion matrix and the per-class IoU as pictures.
    let json = train.join("eval/scores.json");
    ok(&search(&["eval", "--weights", t, "--device", "cpu", "--json", json.to_str().unwrap()]));
    let scores: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(scores["confusion"]["counts"].as_array().unwrap().len() as u64, classes);
    for picture in ["scores.confusion.svg", "scores.confusion.png", "scores.iou.svg", "scores.iou.png"] {
        let bytes = std::fs::read(train.join("eval").join(picture)).unwrap();
        assert!(bytes.len() > 1000, "{picture}: {} bytes", bytes.len());
    }
}
