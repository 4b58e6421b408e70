//! The fault suite (docs/reliability.md): bad configs and flags, damaged checkpoints, a run
//! folder in use, kills at several points followed by exact resumes, a full disk, huge files,
//! errors without backtraces. Each test keeps one promise of the tool.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};

use common::{data, err, ok, repo, search, temp, tensors, tiny_search, tiny_train};

/// Every bad value exits non-zero, names its key, and leaves no run folder behind.
#[test]
fn bad_configs_and_flags_are_refused_before_anything_is_written() {
    let root = data("faults-bad", 8, (64, 48));
    type Run = fn(&Path, &Path, &[&str]) -> std::process::Output;
    let (search_run, train_run): (Run, Run) = (tiny_search, tiny_train);
    let cases: [(&str, Run, &str, &str); 19] = [
        ("search", search_run, "weights.lr_max=-0.1", "weights.lr_max"),
        ("search", search_run, "weights.lr_max=nan", "weights.lr_max"),
        ("search", search_run, "weights.momentum=1.5", "weights.momentum"),
        ("search", search_run, "weights.grad_clip=-1", "weights.grad_clip"),
        ("search", search_run, "arch.lr=inf", "arch.lr"),
        ("search", search_run, "arch.betas=[0.9, 1.0]", "arch.betas"),
        ("search", search_run, "model.stem_channels=[0, 0, 0]", "model.stem_channels"),
        ("search", search_run, "model.classes=0", "model.classes"),
        ("search", search_run, "data.eval_window=0x0", "data.eval_window"),
        ("search", search_run, "execution.threads=0", "execution.threads"),
        ("search", search_run, "epochs=0", "epochs"),
        ("search", search_run, "checkpoint.keep_last=0", "checkpoint.keep_last"),
        ("train", train_run, "model.filter_multiplier=0", "model.filter_multiplier"),
        ("train", train_run, "model.classes=0", "model.classes"),
        ("train", train_run, "lr=-0.05", "lr"),
        ("train", train_run, "lr=inf", "lr"),
        ("train", train_run, "momentum=1", "momentum"),
        ("train", train_run, "grad_clip=-2", "grad_clip"),
        ("train", train_run, "data.transform.crop=33x0", "data.transform.crop"),
    ];
    for (i, (command, run, set, key)) in cases.iter().enumerate() {
        let out = temp(&format!("faults-bad-{command}-{i}"));
        let e = err(&run(&root, &out, &["--set", set]));
        assert!(e.contains(&format!("`{key}`")), "{command} --set {set}: the error does not name `{key}`:\n{e}");
        assert!(!out.exists(), "{command} --set {set} left {} behind", out.display());
    }
    // A missing val split fails before the run folder exists.
    let out = temp("faults-no-val");
    let e = err(&tiny_train(&root, &out, &["--set", "data.val_split=nowhere"]));
    assert!(e.contains("nowhere"), "{e}");
    assert!(!out.exists());
    // Flags of the other commands.
    let e = err(&search(&["summary", "--arch", "paper", "--filter-multiplier", "0"]));
    assert!(e.contains("--filter-multiplier"), "{e}");
    let missing = temp("faults-no-weights");
    let e = err(&search(&["predict", "--weights", missing.to_str().unwrap(), "--input", ".", "--out", "/tmp/x"]));
    assert!(e.lines().next().unwrap_or_default().contains("no such file"), "the first line names the cause:\n{e}");
}

/// Errors are messages, not crashes: no backtrace even with `RUST_BACKTRACE=1`, exit status 1.
#[test]
fn errors_print_their_causes_without_a_backtrace() {
    let out = Command::new(env!("CARGO_BIN_EXE_search"))
        .args(["summary", "--arch", "/nonexistent/arch.json"])
        .env("RUST_BACKTRACE", "1")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr.contains("/nonexistent/arch.json") && !stderr.to_lowercase().contains("backtrace"), "{stderr}");
}

/// Flipped bytes inside a checkpoint's tensors are caught by its checksums: the resume names the
/// damaged checkpoint, falls back to the one before it, and still ends exactly where an
/// uninterrupted run ends.
#[test]
fn a_damaged_checkpoint_is_detected_and_the_one_before_it_used() {
    let root = data("faults-damaged", 8, (64, 48));
    let (straight, split) = (temp("faults-damaged-straight"), temp("faults-damaged-split"));
    ok(&tiny_search(&root, &straight, &[]));
    // Epochs of 2 steps: checkpoints after step 2 (epoch end) and step 3 (the stop).
    ok(&tiny_search(&root, &split, &["--stop-after-steps", "3"]));
    let damaged = split.join("checkpoints/step_00000003/weights.safetensors");
    let mut bytes = std::fs::read(&damaged).unwrap();
    let at = bytes.len() - 100;
    bytes[at] ^= 0x55;
    std::fs::write(&damaged, bytes).unwrap();
    let out = search(&["--threads", "1", "run", "--resume", split.to_str().unwrap(), "--device", "cpu"]);
    ok(&out);
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(log.contains("damaged checkpoint") && log.contains("step_00000003"), "{log}");
    for file in ["weights", "arch", "optim"] {
        let a = tensors(&straight.join(format!("checkpoints/step_00000004/{file}.safetensors")));
        let b = tensors(&split.join(format!("checkpoints/step_00000004/{file}.safetensors")));
        for ((na, ta), (_, tb)) in a.iter().zip(&b) {
            assert!(ta.equal(tb), "{file}: {na} differs after resuming from the checkpoint before the damaged one");
        }
    }
}

/// A run folder in use by a live process is refused, naming the holder; a lock left by a dead
/// process is taken over.
#[test]
fn a_run_folder_in_use_is_refused() {
    let root = data("faults-lock", 8, (64, 48));
    let run = temp("faults-lock-run");
    ok(&tiny_search(&root, &run, &["--stop-after-steps", "1"]));
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    // This test process is alive: its pid holds the lock.
    std::fs::write(run.join("run.lock"), format!("{} {}", std::process::id(), host.trim())).unwrap();
    let e = err(&search(&["--threads", "1", "run", "--resume", run.to_str().unwrap(), "--device", "cpu"]));
    assert!(e.contains("in use by process") && e.contains(&std::process::id().to_string()), "{e}");
    // A pid that does not exist: the lock is stale and taken over.
    std::fs::write(run.join("run.lock"), format!("4000000000 {}", host.trim())).unwrap();
    ok(&search(&["--threads", "1", "run", "--resume", run.to_str().unwrap(), "--device", "cpu"]));
    assert!(!run.join("run.lock").exists(), "the lock is released at the end");
    // metrics.jsonl holds each step once, however often the run was resumed.
    let steps: Vec<u64> = std::fs::read_to_string(run.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|m| m["kind"] == "step")
        .map(|m| m["step"].as_u64().unwrap())
        .collect();
    assert_eq!(steps, [1, 2, 3, 4], "each step once");
}

/// Starts `args`, waits until `metrics.jsonl` in `run` has `lines` lines (or the process ends),
/// then kills it with SIGKILL.
fn kill_after(args: &[&str], run: &Path, lines: usize) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_search"))
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let metrics = run.join("metrics.jsonl");
    let start = std::time::Instant::now();
    while std::fs::read_to_string(&metrics).map_or(0, |t| t.lines().count()) < lines {
        if child.try_wait().unwrap().is_some() || start.elapsed().as_secs() > 120 {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child.kill().unwrap();
    child.wait().unwrap();
}

/// Kill -9 at several points of a search and of a retraining, then resume (or restart a run that
/// had no checkpoint yet, in place, with the same command): the result is bit-exact.
#[test]
fn killed_runs_resume_exactly() {
    let root = data("faults-kill", 8, (64, 48));
    let straight = temp("faults-kill-straight");
    ok(&tiny_search(&root, &straight, &[]));
    let straight_train = temp("faults-kill-train-straight");
    ok(&tiny_train(&root, &straight_train, &[]));
    let config = repo("configs/tiny-search.toml");
    let train_config = repo("configs/tiny-retrain.toml");
    for lines in [0, 2, 5] {
        let run = temp(&format!("faults-kill-search-{lines}"));
        let (r, o) = (root.to_str().unwrap(), run.to_str().unwrap());
        let start = ["--threads", "1", "run", "--config", &config, "--device", "cpu", "--data", r, "--out", o];
        kill_after(&start, &run, lines);
        finish(&start, &run, &["--threads", "1", "run", "--resume", o, "--device", "cpu"]);
        for file in ["weights", "arch", "optim"] {
            let a = tensors(&straight.join(format!("checkpoints/step_00000004/{file}.safetensors")));
            let b = tensors(&run.join(format!("checkpoints/step_00000004/{file}.safetensors")));
            assert!(a.iter().zip(&b).all(|((_, x), (_, y))| x.equal(y)), "search killed after {lines} lines: {file}");
        }
        assert_eq!(metrics(&run), metrics(&straight), "search killed after {lines} lines: metrics.jsonl");
    }
    for lines in [1, 3] {
        let run = temp(&format!("faults-kill-train-{lines}"));
        let (r, o) = (root.to_str().unwrap(), run.to_str().unwrap());
        let start = [
            "--threads",
            "1",
            "train",
            "--arch",
            "paper",
            "--config",
            &train_config,
            "--device",
            "cpu",
            "--data",
            r,
            "--out",
            o,
        ];
        kill_after(&start, &run, lines);
        finish(&start, &run, &["--threads", "1", "train", "--resume", o, "--device", "cpu"]);
        let (a, b) = (tensors(&straight_train.join("weights.safetensors")), tensors(&run.join("weights.safetensors")));
        assert!(a.iter().zip(&b).all(|((_, x), (_, y))| x.equal(y)), "retraining killed after {lines} lines");
        assert_eq!(metrics(&run), metrics(&straight_train), "retraining killed after {lines} lines: metrics.jsonl");
    }
    // A kill right after a checkpoint whose evaluation and rows were still to come (at the end of
    // the search's first epoch, and at the retraining's evaluation of step 4): the resumed run
    // evaluates again and writes them, and its metrics.jsonl equals the uninterrupted one's.
    for (name, start, resume_command, at, straight) in [
        ("search", vec!["run", "--config", config.as_str()], "run", "2", &straight),
        ("train", vec!["train", "--arch", "paper", "--config", train_config.as_str()], "train", "4", &straight_train),
    ] {
        let run = temp(&format!("faults-pending-{name}"));
        let (r, o) = (root.to_str().unwrap(), run.to_str().unwrap());
        let mut args = vec!["--threads", "1"];
        args.extend(&start);
        args.extend(["--device", "cpu", "--data", r, "--out", o]);
        let out = Command::new(env!("CARGO_BIN_EXE_search"))
            .args(&args)
            .env("ADL_FAULT_EXIT_AFTER_CHECKPOINT", at)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(137), "{name}: the fault point was not reached");
        ok(&search(&["--threads", "1", resume_command, "--resume", o, "--device", "cpu"]));
        assert_eq!(metrics(&run), metrics(straight), "{name}: a kill between a checkpoint and its evaluation");
    }
}

/// The rows of a run's `metrics.jsonl` without the fields that measure wall-clock time or
/// memory, which differ between any two runs.
fn metrics(run: &Path) -> Vec<serde_json::Value> {
    const CLOCK: [&str; 9] = [
        "time",
        "seconds_per_step",
        "data_share",
        "images_per_second",
        "elapsed_seconds",
        "eta_seconds",
        "peak_rss_mib",
        "peak_gpu_mib",
        "gpu_mib",
    ];
    std::fs::read_to_string(run.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| {
            let mut row: serde_json::Value = serde_json::from_str(l).unwrap();
            for key in CLOCK {
                row.as_object_mut().unwrap().remove(key);
            }
            row
        })
        .collect()
}

/// Completes a killed run: resumes it when it has a checkpoint, else starts it again in place.
fn finish(start: &[&str], run: &Path, resume: &[&str]) {
    let has_checkpoint = std::fs::read_dir(run.join("checkpoints"))
        .map(|d| {
            d.flatten().any(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                name.strip_prefix("step_").is_some_and(|n| n.chars().all(|c| c.is_ascii_digit()))
            })
        })
        .unwrap_or(false);
    if run.join("weights.safetensors").exists() || run.join("arch/final.json").exists() {
        return; // it had finished before the kill
    }
    if has_checkpoint {
        ok(&search(resume));
    } else {
        if run.join("config.toml").exists() {
            let e = err(&search(resume));
            assert!(e.contains("start it again with the same --out"), "{e}");
        }
        ok(&search(start));
    }
}

/// A full disk fails the write with the system's error, keeps the previous file and leaves no
/// temporary file (`/dev/full` answers every write with ENOSPC).
#[test]
fn a_full_disk_keeps_the_previous_file() {
    if !Path::new("/dev/full").exists() {
        println!("skipped: this platform has no /dev/full to simulate a full disk");
        return;
    }
    let dir = temp("faults-full");
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("state.json");
    seg::atomic::write_atomic(&file, b"previous").unwrap();
    let result = seg::atomic::write_atomic_with(&file, |tmp| -> std::io::Result<()> {
        std::fs::write(tmp, b"partial")?;
        let mut full = std::fs::OpenOptions::new().write(true).open("/dev/full")?;
        std::io::Write::write_all(&mut full, &[0u8; 4096])?;
        std::io::Write::flush(&mut full)
    });
    let e = result.unwrap_err();
    assert_eq!(e.raw_os_error(), Some(28), "ENOSPC: {e}");
    assert_eq!(std::fs::read(&file).unwrap(), b"previous");
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1, "no temporary file is left");
}

/// Sizes read from files are bounded: a huge file is refused before it is read, a path of more
/// layers than allowed is refused when parsed.
#[test]
fn huge_architecture_files_are_refused_quickly() {
    let dir = temp("faults-huge");
    std::fs::create_dir_all(&dir).unwrap();
    let start = std::time::Instant::now();
    // A one-block cell and a path of `layers` layers at level 0.
    let write = |name: &str, layers: usize| {
        let path = dir.join(name);
        let levels = vec!["0"; layers].join(",");
        let cell = r#"[[[0, "skip_connect"], [1, "skip_connect"]]]"#;
        std::fs::write(&path, format!("{{\"cell\": {cell}, \"path\": [{levels}]}}")).unwrap();
        path
    };
    let e = err(&search(&["summary", "--arch", write("huge.json", 10_000_000).to_str().unwrap()]));
    assert!(e.contains("refused"), "{e}");
    let e = err(&search(&["summary", "--arch", write("long.json", 5000).to_str().unwrap()]));
    assert!(e.contains("longer than the 1024 allowed"), "{e}");
    assert!(start.elapsed().as_secs() < 30, "refused quickly");
}

/// `search synth` never writes over another data set.
#[test]
fn synth_refuses_a_folder_that_is_not_empty() {
    let root = data("faults-synth", 2, (32, 16));
    let e = err(&search(&["synth", "--out", root.to_str().unwrap(), "--train", "1", "--val", "1"]));
    assert!(e.contains("not empty"), "{e}");
}

/// A second interrupt exits at once with 130 (no crash from exit handlers racing libtorch);
/// SIGTERM stops like Ctrl-C, with a checkpoint and 130.
#[test]
fn interrupts_exit_with_130_and_never_crash() {
    let root = data("faults-signals", 8, (64, 48));
    let config = repo("configs/tiny-search.toml");
    for (signals, name) in [(["-INT", "-INT"].as_slice(), "twice"), (["-TERM"].as_slice(), "term")] {
        let run = temp(&format!("faults-signal-{name}"));
        let (r, o) = (root.to_str().unwrap(), run.to_str().unwrap());
        let mut child = Command::new(env!("CARGO_BIN_EXE_search"))
            .args(["--threads", "1", "run", "--config", &config, "--device", "cpu", "--data", r, "--out", o])
            .args(["--set", "epochs=50", "--set", "steps_per_epoch=2"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        wait_for_rows(&run, 1, "the run");
        for signal in signals {
            assert!(Command::new("kill").args([*signal, &child.id().to_string()]).status().unwrap().success());
            std::thread::sleep(std::time::Duration::from_millis(30));
        }
        let status = child.wait().unwrap();
        assert_eq!(status.code(), Some(130), "{name}: {status:?}");
    }
}

/// A label folder that cannot be read is reported as the I/O error it is, naming the file, not
/// as a missing label. Root reads everything, so as root the check runs the binary as `nobody`
/// (skipped with a reason where that is not possible).
#[test]
fn an_unreadable_label_folder_is_an_io_error() {
    let root = data("faults-perm", 8, (64, 48));
    let labels = root.join("gtFine/train/synthberg");
    let out = temp("faults-perm-run");
    let as_root = Command::new("id").arg("-u").output().map(|o| o.stdout == b"0\n").unwrap_or(false);
    let can_drop =
        Command::new("su").args(["-s", "/bin/sh", "nobody", "-c", "true"]).status().is_ok_and(|s| s.success());
    if as_root && !can_drop {
        println!("skipped: running as root without `su nobody`, and root can read an unreadable folder");
        return;
    }
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&labels, std::fs::Permissions::from_mode(0o000)).unwrap();
    let config = repo("configs/tiny-search.toml");
    let args = format!(
        "{} --threads 1 run --config {config} --device cpu --data {} --out {}",
        env!("CARGO_BIN_EXE_search"),
        root.display(),
        out.display()
    );
    let output = if as_root {
        Command::new("su").args(["-s", "/bin/sh", "nobody", "-c", &args]).output().unwrap()
    } else {
        Command::new("sh").args(["-c", &args]).output().unwrap()
    };
    std::fs::set_permissions(&labels, std::fs::Permissions::from_mode(0o755)).unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(stderr.contains("Permission denied") && stderr.contains("synthberg"), "{stderr}");
    assert!(!stderr.contains("has no label"), "{stderr}");
}

/// `run --resume` with a `config.toml` edited in the run folder: a changed computation key is
/// refused, naming it with both values, and the run is left as it was; an execution key may
/// change.
#[test]
fn resume_refuses_an_edited_config() {
    let root = data("faults-edited", 8, (64, 48));
    let run = temp("faults-edited-run");
    ok(&tiny_search(&root, &run, &["--stop-after-steps", "1"]));
    let config = run.join("config.toml");
    let original = std::fs::read_to_string(&config).unwrap();
    let resume = ["--threads", "1", "run", "--resume", run.to_str().unwrap(), "--device", "cpu"];
    for (from, to, key) in
        [("lr_max = 0.025", "lr_max = 0.5", "weights.lr_max"), ("epochs = 2", "epochs = 3", "epochs")]
    {
        assert!(original.contains(from), "{from} not in {original}");
        std::fs::write(&config, original.replace(from, to)).unwrap();
        let before = std::fs::read_to_string(run.join("metrics.jsonl")).unwrap();
        let e = err(&search(&resume));
        assert!(e.contains(&format!("`{key}` was")) && e.contains("refused"), "{key}: {e}");
        assert_eq!(std::fs::read_to_string(run.join("metrics.jsonl")).unwrap(), before, "nothing changed");
    }
    std::fs::write(&config, original.replace("log_every_steps = 1", "log_every_steps = 2")).unwrap();
    ok(&search(&resume));
}

/// Outputs never overwrite inputs; damaged final weights and truncated images are errors that
/// name the file; a run name cannot leave the runs folder; weights of another class count and a
/// run without weights are explained in one line.
#[test]
fn outputs_inputs_weights_and_images_are_guarded() {
    let root = data("faults-guard", 6, (64, 48));
    let run = temp("faults-guard-run");
    ok(&tiny_train(&root, &run, &[]));
    let input = temp("faults-guard-in");
    std::fs::create_dir_all(&input).unwrap();
    let image = std::fs::read_dir(root.join("leftImg8bit/val/synthberg")).unwrap().next().unwrap().unwrap().path();
    let x = input.join("x.png");
    std::fs::copy(&image, &x).unwrap();
    let original = std::fs::read(&x).unwrap();
    for format in ["color", "labelids"] {
        let e = err(&common::predict(&run, &x, &input, format));
        assert!(e.contains("would overwrite the input") && e.contains("x.png"), "{format}: {e}");
        let e = err(&common::predict(&run, &input, &input, format));
        assert!(e.contains("is the --input folder"), "{format}: {e}");
    }
    assert_eq!(std::fs::read(&x).unwrap(), original, "the input is untouched");
    // A truncated JPEG is refused, naming it.
    let (w, h) = (64u32, 48u32);
    let jpeg = input.join("cut.jpg");
    image::RgbImage::from_pixel(w, h, image::Rgb([200, 30, 30])).save(&jpeg).unwrap();
    let bytes = std::fs::read(&jpeg).unwrap();
    std::fs::write(&jpeg, &bytes[..bytes.len() * 2 / 3]).unwrap();
    let out = temp("faults-guard-out");
    let e = err(&common::predict(&run, &jpeg, &out, "color"));
    assert!(e.contains("cut.jpg") && e.contains("truncated"), "{e}");
    // A flipped byte in the final weights is caught by their checksum.
    let damaged = temp("faults-guard-damaged");
    std::fs::create_dir_all(&damaged).unwrap();
    for file in ["config.toml", "arch.json", "weights.safetensors"] {
        std::fs::copy(run.join(file), damaged.join(file)).unwrap();
    }
    let weights = damaged.join("weights.safetensors");
    let mut bytes = std::fs::read(&weights).unwrap();
    let at = bytes.len() - 9;
    bytes[at] ^= 0x01;
    std::fs::write(&weights, bytes).unwrap();
    let e = err(&common::predict(&damaged, &x, &out, "color"));
    assert!(e.contains("does not match its checksum") && e.contains("weights.safetensors"), "{e}");
    // A run folder without weights.
    std::fs::remove_file(&weights).unwrap();
    let e = err(&common::predict(&damaged, &x, &out, "color"));
    assert!(e.contains("holds no weights.safetensors") && !e.contains("do not fit"), "{e}");
    // The 19-class run evaluated on a folder data set of another class count: one line, no C++
    // backtrace.
    let folder = temp("faults-guard-folder");
    let f = folder.to_str().unwrap();
    ok(&search(&["synth", "--format", "folder", "--train", "2", "--val", "1", "--size", "64x48", "--out", f]));
    let (r, f) = (run.to_str().unwrap(), folder.to_str().unwrap());
    let e = err(&search(&["eval", "--weights", r, "--data", f, "--format", "folder", "--device", "cpu"]));
    assert!(!e.contains("frame #") && !e.contains("Exception raised from") && e.lines().count() <= 2, "{e}");
    // A run name that would leave runs/.
    for name in ["../../escaped", "/tmp/escaped", "a/b"] {
        let e = err(&search(&[
            "run",
            "--config",
            &repo("configs/tiny-search.toml"),
            "--set",
            &format!("name=\"{name}\""),
            "--data",
            root.to_str().unwrap(),
        ]));
        assert!(e.contains("`name`") && e.contains("not a folder name"), "{name}: {e}");
    }
}

/// Raw α and β that are not finite, or too long, are refused by every reader with the tensor
/// named; limits are checked before any work, each naming the key or flag, its value and the
/// limit.
#[test]
fn non_finite_parameters_and_limits_are_refused_before_work() {
    let dir = temp("faults-nonfinite");
    std::fs::create_dir_all(&dir).unwrap();
    let write = |name: &str, alpha: tch::Tensor, beta: tch::Tensor| {
        let path = dir.join(name);
        tch::Tensor::write_safetensors(&[("alpha", &alpha), ("beta", &beta)], &path).unwrap();
        path
    };
    let alpha = || tch::Tensor::zeros([20, 8], (tch::Kind::Float, tch::Device::Cpu));
    let beta = |l: i64| tch::Tensor::zeros([l, 4, 3], (tch::Kind::Float, tch::Device::Cpu));
    let cases = [
        (write("nan-alpha.safetensors", alpha().fill_(f64::NAN), beta(4)), "`alpha` holds"),
        (write("inf-beta.safetensors", alpha(), beta(4).fill_(f64::NEG_INFINITY)), "`beta` holds"),
        (write("long-beta.safetensors", alpha(), beta(2000)), "more than the 1024"),
    ];
    let start = std::time::Instant::now();
    for (path, expected) in &cases {
        let p = path.to_str().unwrap();
        for args in [vec!["decode", "--params", p], vec!["cost", "--params", p, "--kind", "params"]] {
            let e = err(&search(&args));
            assert!(e.contains(expected) && !e.contains("panicked"), "{args:?}: {e}");
        }
    }
    let valid = write("valid.safetensors", alpha(), beta(4));
    let valid = valid.to_str().unwrap();
    let space = repo("configs/tiny-search.toml");
    let out = temp("faults-limits-out");
    let o = out.to_str().unwrap();
    let refusals: [(Vec<&str>, &str); 6] = [
        (vec!["random", "--config", &space, "--set", "model.layers=1000", "--out", o], "model.layers"),
        (vec!["random", "--config", &space, "--n", "99999999999", "--out", o], "99999999999"),
        (vec!["run", "--config", &space, "--set", "model.layers=10000", "--out", o], "model.layers"),
        (vec!["run", "--config", &space, "--set", "data.loader.batch=100000", "--out", o], "data.loader.batch"),
        (vec!["run", "--config", &space, "--nproc-per-node", "4096", "--out", o], "--nproc-per-node 4096"),
        (vec!["cost", "--params", valid, "--kind", "params", "--classes", "1"], "--classes 1"),
    ];
    for (args, expected) in &refusals {
        let e = err(&search(args));
        assert!(
            e.contains(expected) && (e.contains("limit") || e.contains("must") || e.contains("cores")),
            "{args:?}: {e}"
        );
        assert!(!out.exists(), "{args:?} wrote {o}");
    }
    assert!(start.elapsed().as_secs() < 60, "every refusal comes before any work");
}

/// A run whose `arch/` folder vanished while it ran gets it back: the next epoch's files are
/// written, the run ends, and the history's gap is named in the log.
#[test]
fn a_vanished_run_folder_part_is_recreated() {
    let root = data("faults-vanish", 8, (64, 48));
    let run = temp("faults-vanish-run");
    ok(&tiny_search(&root, &run, &["--stop-after-steps", "2"]));
    std::fs::remove_dir_all(run.join("arch")).unwrap();
    let out = search(&["--threads", "1", "run", "--resume", run.to_str().unwrap(), "--device", "cpu"]);
    ok(&out);
    assert!(run.join("arch/final.json").is_file() && run.join("arch/epoch_001.json").is_file());
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(log.contains("lacks epoch(s) 0"), "{log}");
}

/// Commands that save nothing stop at once on SIGTERM, without words about checkpoints and
/// without leaving a temporary file; ranks die with their launcher even when it is killed with
/// SIGKILL.
#[test]
fn signals_stop_at_once_and_children_die_with_their_parent() {
    let out = temp("faults-sig-random");
    let space = repo("configs/tiny-search.toml");
    let mut child = Command::new(env!("CARGO_BIN_EXE_search"))
        .args(["random", "--config", &space, "--n", "1000000", "--out", out.to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let start = std::time::Instant::now();
    while std::fs::read_dir(&out).map_or(0, |d| d.count()) < 10 {
        assert!(start.elapsed().as_secs() < 60, "random did not start");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert!(Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap().success());
    let sent = std::time::Instant::now();
    let status = child.wait().unwrap();
    assert!(sent.elapsed().as_secs_f64() < 2.0, "stopped within 2 s");
    assert_eq!(status.code(), Some(130));
    let mut stderr = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut stderr).unwrap();
    assert!(stderr.contains("stopped at once") && !stderr.contains("checkpoint"), "{stderr}");
    let leftovers: Vec<_> = std::fs::read_dir(&out)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");

    // Two ranks under a launcher killed with SIGKILL.
    let root = data("faults-sig-ranks", 8, (64, 48));
    let run = temp("faults-sig-ranks-run");
    let mut launcher = Command::new(env!("CARGO_BIN_EXE_search"))
        .args(["--threads", "1", "run", "--config", &space, "--device", "cpu", "--nproc-per-node", "2"])
        .args(["--data", root.to_str().unwrap(), "--out", run.to_str().unwrap(), "--set", "epochs=500"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for_rows(&run, 2, "the ranks");
    let children =
        std::fs::read_to_string(format!("/proc/{}/task/{}/children", launcher.id(), launcher.id())).unwrap_or_default();
    let ranks: Vec<String> = children.split_whitespace().map(str::to_owned).collect();
    assert_eq!(ranks.len(), 2, "two ranks: {children:?}");
    launcher.kill().unwrap();
    launcher.wait().unwrap();
    let start = std::time::Instant::now();
    while ranks.iter().any(|pid| Path::new(&format!("/proc/{pid}")).exists()) {
        assert!(start.elapsed().as_secs() < 10, "ranks {ranks:?} outlived their launcher");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// A rank stopped with SIGSTOP hangs the others until `--dist-timeout-s`; the launcher then ends
/// the run and names the stopped rank.
#[test]
fn a_hung_rank_is_named() {
    let root = data("faults-hung", 8, (64, 48));
    let run = temp("faults-hung-run");
    let space = repo("configs/tiny-search.toml");
    let launcher = Command::new(env!("CARGO_BIN_EXE_search"))
        .args(["--threads", "1", "run", "--config", &space, "--device", "cpu", "--nproc-per-node", "2"])
        .args(["--dist-timeout-s", "5", "--data", root.to_str().unwrap(), "--out", run.to_str().unwrap()])
        .args(["--set", "epochs=500"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for_rows(&run, 2, "the ranks");
    let children = std::fs::read_to_string(format!("/proc/{}/task/{}/children", launcher.id(), launcher.id())).unwrap();
    let ranks: Vec<&str> = children.split_whitespace().collect();
    assert_eq!(ranks.len(), 2, "{children:?}");
    assert!(Command::new("kill").args(["-STOP", ranks[1]]).status().unwrap().success());
    let out = launcher.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("rank 1") && stderr.contains("stopped (SIGSTOP)"), "{stderr}");
    assert!(
        !Path::new(&format!("/proc/{}", ranks[1])).exists() || {
            std::thread::sleep(std::time::Duration::from_secs(1));
            !Path::new(&format!("/proc/{}", ranks[1])).exists()
        }
    );
}

/// Waits until `run`'s `metrics.jsonl` holds `rows` rows (at most two minutes: `what` did not
/// start otherwise).
fn wait_for_rows(run: &Path, rows: usize, what: &str) {
    let start = std::time::Instant::now();
    while std::fs::read_to_string(run.join("metrics.jsonl")).map_or(0, |t| t.lines().count()) < rows {
        assert!(start.elapsed().as_secs() < 120, "{what} did not start");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}
