//! `search compare` end to end on a tiny folder data set (issue 24): every architecture
//! retrained for every seed, the report's numbers, the files, and a resumed comparison that
//! retrains only what was lost and ends with the same report.

mod common;

// The library's runtime queries mimalloc's heap, so the allocator crate must be linked in.
extern crate mimalloc;

use common::{err, ok, repo, search, temp};

/// `search compare` on `data` into `out` with the tiny retraining, 2 random draws, 2 seeds and
/// one skip control; `source` says where the searched architecture comes from (`--arch FILE`
/// or `--search-config FILE`), `extra` adds flags.
fn tiny_compare(
    data: &std::path::Path,
    out: &std::path::Path,
    source: &[&str],
    extra: &[&str],
) -> std::process::Output {
    let retrain = repo("configs/tiny-retrain.toml");
    let fixed = [
        "--retrain-config",
        retrain.as_str(),
        "--data",
        data.to_str().unwrap(),
        "--format",
        "folder",
        "--random",
        "2",
        "--seeds",
        "2",
        "--skip-control",
        "1",
        "--device",
        "cpu",
        "--out",
        out.to_str().unwrap(),
    ];
    search(&[&["--threads", "1", "compare"][..], source, &fixed, extra].concat())
}

/// A synthetic folder data set of 8 training and `val` val images of 64x48 in a new temp folder.
fn folder_data(name: &str, val: usize) -> std::path::PathBuf {
    let data = temp(name);
    let val = val.to_string();
    let args = ["synth", "--format", "folder", "--train", "8", "--val", &val, "--size", "64x48", "--out"];
    ok(&search(&[&args[..], &[data.to_str().unwrap()]].concat()));
    data
}

fn report(out: &std::path::Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(out.join("compare.json")).unwrap()).unwrap()
}

#[test]
fn compare_runs_the_protocol_on_a_folder_data_set_and_resumes() {
    let data = folder_data("compare-data", 4);
    let out = temp("compare-run");
    let search_config = repo("configs/tiny-search.toml");
    let searching = ["--search-config", search_config.as_str()];
    let printed = ok(&tiny_compare(&data, &out, &searching, &[]));
    assert!(printed.contains("| rank | architecture |"), "{printed}");
    let r = report(&out);
    let entries = r["entries"].as_array().unwrap();
    // searched, 2 random, the DeepLab-like path, 1 skip control (no paper baseline: B = 2).
    let names: Vec<&str> = entries.iter().map(|e| e["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["searched", "random_000", "random_001", "deeplab_path", "skips_000"]);
    let searched = &entries[0];
    for e in entries {
        let mious: Vec<f64> = e["mious"].as_array().unwrap().iter().map(|m| m.as_f64().unwrap()).collect();
        assert_eq!(mious.len(), 2, "two seeds each: {e}");
        assert!(mious.iter().all(|m| (0.0..=1.0).contains(m)), "{e}");
        let mean = mious.iter().sum::<f64>() / 2.0;
        assert!((e["mean"].as_f64().unwrap() - mean).abs() < 1e-12);
    }
    assert_eq!(entries[3]["path"], serde_json::json!([0, 1, 2]), "DeepLab-like: rates 4, 8, 16");
    assert_eq!(entries[3]["cell"], searched["cell"], "the searched cell on the DeepLab-like path");
    assert_eq!(entries[4]["skips"], searched["skips"], "the control has the searched cell's skips");
    let random_means: Vec<f64> = entries[1..3].iter().map(|e| e["mean"].as_f64().unwrap()).collect();
    assert!((r["random_mean"].as_f64().unwrap() - (random_means[0] + random_means[1]) / 2.0).abs() < 1e-12);
    let rank = 1 + entries.iter().filter(|e| e["mean"].as_f64() > searched["mean"].as_f64()).count();
    assert_eq!(r["searched_rank"].as_u64(), Some(rank as u64));
    // Welch's t from the runs themselves: the searched seeds against every random run.
    let runs = |e: &serde_json::Value| -> Vec<f64> {
        e["mious"].as_array().unwrap().iter().map(|m| m.as_f64().unwrap()).collect()
    };
    let (a, b): (Vec<f64>, Vec<f64>) = (runs(searched), entries[1..3].iter().flat_map(runs).collect());
    let mv = |x: &[f64]| {
        let m = x.iter().sum::<f64>() / x.len() as f64;
        (m, x.iter().map(|v| (v - m).powi(2)).sum::<f64>() / (x.len() as f64 - 1.0))
    };
    let ((ma, va), (mb, vb)) = (mv(&a), mv(&b));
    let se = (va / a.len() as f64 + vb / b.len() as f64).sqrt();
    if se > 0.0 {
        let t = r["welch"]["t"].as_f64().expect("Welch's test with spread on both sides");
        assert!((t - (ma - mb) / se).abs() < 1e-9, "{r}");
        assert!((0.0..=1.0).contains(&r["welch"]["p_greater"].as_f64().unwrap()), "{r}");
    } else {
        assert!(r["welch"].is_null(), "no spread, no test: {r}");
    }
    for file in ["plan.json", "compare.md", "compare.svg", "search/arch/final.json", "architectures/skips_000.json"] {
        assert!(out.join(file).is_file(), "{file} missing");
    }
    // Lost work is redone on --resume, and only that: one retraining's result and run folder
    // and the report are removed; the resumed comparison retrains that one (same seed, same
    // number) and leaves the others' folders alone.
    let kept = out.join("runs/random_000/seed0/metrics.jsonl");
    let kept_before = std::fs::metadata(&kept).unwrap().modified().unwrap();
    std::fs::remove_file(out.join("results/random_001-seed1.json")).unwrap();
    std::fs::remove_dir_all(out.join("runs/random_001/seed1")).unwrap();
    std::fs::remove_file(out.join("compare.json")).unwrap();
    let resumed = ok(&search(&["--threads", "1", "compare", "--resume", out.to_str().unwrap(), "--device", "cpu"]));
    assert!(resumed.contains("| rank |"), "{resumed}");
    assert_eq!(report(&out)["entries"], r["entries"], "the resumed comparison reports the same runs");
    assert!(out.join("runs/random_001/seed1/metrics.jsonl").is_file());
    assert_eq!(std::fs::metadata(&kept).unwrap().modified().unwrap(), kept_before, "finished runs are not redone");
    // A comparison never starts over another, and --resume keeps its own plan.
    assert!(err(&tiny_compare(&data, &out, &searching, &[])).contains("is not empty"));
    let e = err(&search(&["compare", "--resume", out.to_str().unwrap(), "--search-config", "x.toml"]));
    assert!(e.contains("--resume continues a comparison with its own plan"), "{e}");
    assert!(
        err(&search(&["compare", "--resume", out.to_str().unwrap(), "--seed", "3"])).contains("cannot be used with")
    );
    // A plan.json edited by hand is checked like the flags: zero seeds would report no runs.
    let edited = temp("compare-edited-plan");
    std::fs::create_dir_all(&edited).unwrap();
    let mut plan: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("plan.json")).unwrap()).unwrap();
    plan["seeds"] = 0.into();
    std::fs::write(edited.join("plan.json"), plan.to_string()).unwrap();
    let e = err(&search(&["compare", "--resume", edited.to_str().unwrap(), "--device", "cpu"]));
    assert!(e.contains(&format!("checking {}", edited.join("plan.json").display())), "{e}");
    assert!(e.contains("--seeds 0: at least one retraining per architecture"), "{e}");
    assert_eq!(std::fs::read_dir(&edited).unwrap().count(), 1, "nothing written beside the plan");
    let _ = std::fs::remove_dir_all(edited);
    // Two ranks share the retrainings out (unit i on rank i mod 2) and report the same numbers:
    // each retraining runs alone on its rank with its own seed. The searched architecture is
    // given, so that no search runs.
    let shared = temp("compare-two-ranks");
    let searched_file = out.join("architectures/searched.json");
    let given = ["--arch", searched_file.to_str().unwrap()];
    let two = ok(&tiny_compare(&data, &shared, &given, &["--nproc-per-node", "2"]));
    assert!(!shared.join("search").exists(), "no search with --arch: {two}");
    let both = report(&shared);
    for (a, b) in both["entries"].as_array().unwrap().iter().zip(r["entries"].as_array().unwrap()) {
        assert_eq!((&a["name"], &a["mious"]), (&b["name"], &b["mious"]), "two ranks, the same runs");
    }
    grows_on_resume(&shared);
    let _ = std::fs::remove_dir_all(shared);
    let _ = std::fs::remove_dir_all(out);
    let _ = std::fs::remove_dir_all(data);
}

/// A finished comparison (`tiny_compare`'s 2 random draws, 2 seeds) in `dir` grows on
/// `--resume --seeds 3 --random 3`: a third seed of every architecture and a third draw are
/// retrained, the finished runs are read back, not redone, and `plan.json` records the larger
/// plan; a smaller count and a saved architecture the plan no longer makes are refused.
fn grows_on_resume(dir: &std::path::Path) {
    let resume = |extra: &[&str]| {
        search(
            &[&["--threads", "1", "compare", "--resume", dir.to_str().unwrap(), "--device", "cpu"][..], extra].concat(),
        )
    };
    let mious = |e: &serde_json::Value| -> Vec<f64> {
        e["mious"].as_array().unwrap().iter().map(|m| m.as_f64().unwrap()).collect()
    };
    let before = report(dir);
    let kept = dir.join("runs/random_000/seed0/metrics.jsonl");
    let kept_before = std::fs::metadata(&kept).unwrap().modified().unwrap();
    ok(&resume(&["--seeds", "3", "--random", "3"]));
    let after = report(dir);
    let names: Vec<&str> = after["entries"].as_array().unwrap().iter().map(|e| e["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["searched", "random_000", "random_001", "random_002", "deeplab_path", "skips_000"]);
    for e in after["entries"].as_array().unwrap() {
        assert_eq!(mious(e).len(), 3, "three seeds each: {e}");
        if let Some(old) = before["entries"].as_array().unwrap().iter().find(|o| o["name"] == e["name"]) {
            assert_eq!(mious(e)[..2], mious(old)[..], "the finished runs are kept: {e}");
            assert_eq!((&e["cell"], &e["path"]), (&old["cell"], &old["path"]));
        }
    }
    assert_eq!(std::fs::metadata(&kept).unwrap().modified().unwrap(), kept_before, "finished runs are not redone");
    let plan: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("plan.json")).unwrap()).unwrap();
    assert_eq!((plan["seeds"].as_u64(), plan["random"].as_u64()), (Some(3), Some(3)), "{plan}");
    // The same plan again retrains nothing and reports the same.
    ok(&resume(&[]));
    assert_eq!(report(dir)["entries"], after["entries"]);
    // Shrinking would drop finished runs from the report.
    let e = err(&resume(&["--seeds", "2"]));
    assert!(e.contains("--seeds 2: this comparison already has 3"), "{e}");
    // A saved architecture the plan no longer makes under its name is refused before anything
    // is written: its runs would be reported as another network's.
    let (first, second) = (dir.join("architectures/random_000.json"), dir.join("architectures/random_001.json"));
    assert_ne!(std::fs::read(&first).unwrap(), std::fs::read(&second).unwrap());
    std::fs::copy(&first, &second).unwrap();
    let report_before = std::fs::metadata(dir.join("compare.json")).unwrap().modified().unwrap();
    let e = err(&resume(&[]));
    assert!(e.contains(&format!("{} holds another cell or path", second.display())), "{e}");
    assert!(e.contains("`random_001`"), "{e}");
    assert_eq!(std::fs::metadata(dir.join("compare.json")).unwrap().modified().unwrap(), report_before);
    assert_eq!(std::fs::read(&first).unwrap(), std::fs::read(&second).unwrap(), "the file is left as it was");
}

/// `--searches 2 --select --select-seeds 2`: two searches with consecutive seeds in `search/`
/// and `search-1/`, each retrained like the others, compared as one group; one of them picked by
/// retrainings on trainA scored on trainB and the other way round, with two retraining seeds
/// each; refused with --arch, --select without several searches, and --select-seeds without
/// --select.
#[test]
fn several_searches_are_one_group() {
    let data = folder_data("compare-searches-data", 2);
    let out = temp("compare-searches");
    let search_config = repo("configs/tiny-search.toml");
    let retrain = repo("configs/tiny-retrain.toml");
    let searching = ["--search-config", search_config.as_str()];
    let printed = ok(&tiny_compare(&data, &out, &searching, &["--searches", "2", "--select", "--select-seeds", "2"]));
    assert!(printed.contains("mean of 2 searches"), "{printed}");
    assert!(printed.contains("with 2 retraining seeds each"), "{printed}");
    assert!(printed.contains("Selected without the val split"), "{printed}");
    let r = report(&out);
    let entries = r["entries"].as_array().unwrap();
    let names: Vec<&str> = entries.iter().map(|e| e["name"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        ["searched", "searched_1", "random_000", "random_001", "deeplab_path", "deeplab_path_1", "skips_000"]
    );
    let mean = |e: &serde_json::Value| e["mean"].as_f64().unwrap();
    assert!((r["searched_mean"].as_f64().unwrap() - (mean(&entries[0]) + mean(&entries[1])) / 2.0).abs() < 1e-12);
    assert_eq!(r["searches"], 2);
    for folder in ["search", "search-1"] {
        assert!(out.join(folder).join("arch/final.json").is_file(), "{folder}");
    }
    let seed = |folder: &str| -> i64 {
        let text = std::fs::read_to_string(out.join(folder).join("config.toml")).unwrap();
        text.parse::<toml::Table>().unwrap()["seed"].as_integer().unwrap()
    };
    assert_eq!(seed("search-1"), seed("search") + 1, "consecutive search seeds");
    // The selection: each searched network trained on trainA (4 of the 8 images) and scored on
    // trainB (the other 4), and the other way round; the better mean picked and judged on val
    // like the group.
    let selection = &r["selection"];
    let holdout = selection["holdout"].as_array().unwrap();
    let names: Vec<&str> = holdout.iter().map(|h| h["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["searched", "searched_1"]);
    let means: Vec<f64> = holdout.iter().map(|h| h["mean"].as_f64().unwrap()).collect();
    let picked = if means[1] > means[0] { 1 } else { 0 };
    assert_eq!(selection["selected"], names[picked]);
    assert_eq!(selection["mean"], entries[picked]["mean"]);
    let architecture = |file: std::path::PathBuf| -> serde_json::Value {
        let text = std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        let a: serde_json::Value = serde_json::from_str(&text).unwrap();
        serde_json::json!([a["cell"], a["path"]])
    };
    assert_eq!(
        architecture(out.join("selected.json")),
        architecture(out.join(format!("architectures/{}.json", names[picked])))
    );
    let own = if picked == 0 { "deeplab_path" } else { "deeplab_path_1" };
    assert_eq!(selection["baselines"], serde_json::json!([own]), "no paper baseline at B = 2");
    assert_eq!(selection["seeds"], 2);
    for (h, name) in holdout.iter().zip(&names) {
        // Seed 0's two folds, then seed 1's.
        let folds: Vec<f64> = h["folds"].as_array().unwrap().iter().map(|f| f.as_f64().unwrap()).collect();
        assert_eq!(folds.len(), 4);
        assert!((h["mean"].as_f64().unwrap() - folds.iter().sum::<f64>() / 4.0).abs() < 1e-12);
        for (seed_offset, suffix) in [(0, ""), (1, "-seed1")] {
            for (fold, words) in
                [(0, "train on trainA, evaluate on trainB"), (1, "train on trainB, evaluate on trainA")]
            {
                let file = out.join(format!("results/select-{name}-fold{fold}{suffix}.json"));
                let saved: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(file).unwrap()).unwrap();
                assert_eq!(saved["val_miou"], folds[2 * seed_offset as usize + fold]);
                let run = format!("runs/select/{name}/fold{fold}{suffix}");
                let log = std::fs::read_to_string(out.join(&run).join("log.txt")).unwrap();
                assert!(log.contains(words) && log.contains("train=4 eval=4"), "{log}");
                let first = seed(&format!("runs/select/{name}/fold{fold}"));
                assert_eq!(seed(&run), first + seed_offset, "consecutive retraining seeds");
            }
        }
    }
    let given = out.join("architectures/searched.json");
    let e = err(&search(&[
        "compare",
        "--arch",
        given.to_str().unwrap(),
        "--searches",
        "2",
        "--retrain-config",
        &retrain,
        "--out",
        temp("compare-searches-refused").to_str().unwrap(),
    ]));
    assert!(e.contains("--searches 2 runs the searches: drop --arch"), "{e}");
    let e = err(&tiny_compare(&data, &temp("compare-select-refused"), &searching, &["--select"]));
    assert!(e.contains("--select picks one of several searches"), "{e}");
    let e = err(&tiny_compare(&data, &temp("compare-select-seeds-refused"), &searching, &["--select-seeds", "2"]));
    assert!(e.contains("--select-seeds 2 sets how --select scores the searches: add --select"), "{e}");
    for dir in [data, out] {
        let _ = std::fs::remove_dir_all(dir);
    }
}

/// A comparison of one search grows on `--resume --searches 2 --select`: the second search runs
/// (`search-1/`, the next seed), both are retrained with their DeepLab-path cells and scored held
/// out, one is picked, and the first search's finished runs are kept.
#[test]
fn searches_and_the_selection_grow_on_resume() {
    let data = folder_data("compare-grow-searches-data", 4);
    let out = temp("compare-grow-searches");
    let (search_config, retrain) = (repo("configs/tiny-search.toml"), repo("configs/tiny-retrain.toml"));
    let first = [
        "--threads",
        "1",
        "compare",
        "--search-config",
        &search_config,
        "--retrain-config",
        &retrain,
        "--data",
        data.to_str().unwrap(),
        "--format",
        "folder",
        "--random",
        "1",
        "--seeds",
        "1",
        "--device",
        "cpu",
        "--out",
        out.to_str().unwrap(),
    ];
    ok(&search(&first));
    let before = report(&out);
    assert!(before["selection"].is_null());
    let searched_file = out.join("results/searched-seed0.json");
    let kept = std::fs::read_to_string(&searched_file).unwrap();
    let kept_run = std::fs::metadata(out.join("runs/searched/seed0/metrics.jsonl")).unwrap().modified().unwrap();
    let grow = ["--threads", "1", "compare", "--resume", out.to_str().unwrap(), "--searches", "2", "--select"];
    ok(&search(&[&grow[..], &["--device", "cpu"]].concat()));
    let after = report(&out);
    let names: Vec<&str> = after["entries"].as_array().unwrap().iter().map(|e| e["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["searched", "searched_1", "random_000", "deeplab_path", "deeplab_path_1"]);
    assert!(out.join("search-1/arch/final.json").is_file(), "the second search ran");
    assert_eq!(after["searches"].as_u64(), Some(2));
    let holdout = after["selection"]["holdout"].as_array().expect("the selection was added");
    assert_eq!(holdout.len(), 2, "{after}");
    assert!(holdout.iter().all(|h| h["folds"].as_array().unwrap().len() == 2), "{after}");
    assert!(out.join("selected.json").is_file());
    assert_eq!(std::fs::read_to_string(&searched_file).unwrap(), kept, "the first search's run is kept");
    let run_after = std::fs::metadata(out.join("runs/searched/seed0/metrics.jsonl")).unwrap().modified().unwrap();
    assert_eq!(run_after, kept_run, "and not redone");
    let plan: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("plan.json")).unwrap()).unwrap();
    assert_eq!((plan["searches"].as_u64(), plan["select"].as_bool()), (Some(2), Some(true)), "{plan}");
    let _ = std::fs::remove_dir_all(out);
    let _ = std::fs::remove_dir_all(data);
}

/// A held-out retraining (`--select`'s) cuts the training split in halves: a split of one image
/// cannot be cut, and the error names the data; no run folder is made.
#[test]
fn a_held_out_retraining_needs_two_training_images() {
    use search::tasks::retrain::{train, Holdout, ModelChoice, RetrainOptions};
    let data = temp("holdout-one-image");
    let args = ["synth", "--format", "folder", "--train", "1", "--val", "1", "--size", "64x48", "--out"];
    ok(&search(&[&args[..], &[data.to_str().unwrap()]].concat()));
    let overrides =
        [format!("data.root={}", toml::Value::String(data.display().to_string())), "data.format=\"folder\"".to_owned()];
    let file = repo("configs/tiny-retrain.toml");
    let config = search::config::load(Some(std::path::Path::new(&file)), &overrides).unwrap();
    let out = temp("holdout-one-image-run");
    let run = search::store::session::RunRequest {
        out: out.clone(),
        device: tch::Device::Cpu,
        resume: false,
        stop_after_steps: None,
        ranks: search::dist::Ranks::of(None),
    };
    let holdout = Some(Holdout { seed: 0, swapped: false });
    let e = train(RetrainOptions { config, model: ModelChoice::PixelBaseline, run, holdout }).unwrap_err();
    let message = format!("{e:#}");
    assert!(message.contains("has 1 image(s)") && message.contains(&data.display().to_string()), "{message}");
    assert!(!out.exists(), "nothing written");
    let _ = std::fs::remove_dir_all(data);
}

/// `--random-from REF --seeds 3`: the random draws' finished retrainings (2 draws × 2 seeds) are
/// taken over from REF, not run again, and reported as REF reported them, while the searched
/// network and its baselines get three seeds (the first two the same runs as REF's); the taken
/// results are copied, so the comparison resumes without REF; a reference with another
/// retraining config or draw seed is refused before anything is written, naming what differs.
#[test]
fn the_random_reference_is_taken_over() {
    let data = folder_data("compare-reference-data", 2);
    let drawn = temp("compare-reference-arch");
    let tiny_search = repo("configs/tiny-search.toml");
    ok(&search(&["random", "--config", &tiny_search, "--n", "1", "--seed", "5", "--out", drawn.to_str().unwrap()]));
    let arch = drawn.join("random_000.json");
    let given = ["--arch", arch.to_str().unwrap()];
    let reference = temp("compare-reference");
    ok(&tiny_compare(&data, &reference, &given, &[]));
    let retrain = repo("configs/tiny-retrain.toml");
    let later = |out: &std::path::Path, extra: &[&str]| {
        let args = [
            "--threads",
            "1",
            "compare",
            "--retrain-config",
            retrain.as_str(),
            "--data",
            data.to_str().unwrap(),
            "--format",
            "folder",
            "--random-from",
            reference.to_str().unwrap(),
            "--seeds",
            "3",
            "--device",
            "cpu",
            "--out",
            out.to_str().unwrap(),
        ];
        search(&[&args[..], &given[..], extra].concat())
    };
    let out = temp("compare-reference-later");
    let printed = ok(&later(&out, &[]));
    assert!(printed.contains("2 seed(s) each, their retrainings taken over from"), "{printed}");
    let (theirs, mine) = (report(&reference), report(&out));
    let entry = |r: &serde_json::Value, name: &str| -> serde_json::Value {
        r["entries"].as_array().unwrap().iter().find(|e| e["name"] == name).unwrap().clone()
    };
    for name in ["random_000", "random_001"] {
        assert_eq!(entry(&mine, name)["mious"], entry(&theirs, name)["mious"], "{name} taken over");
        assert!(!out.join("runs").join(name).exists(), "{name} not retrained");
    }
    assert_eq!(mine["random_mean"], theirs["random_mean"]);
    assert_eq!(mine["random_seeds"], 2);
    let seeds = |r: &serde_json::Value, name: &str| -> Vec<f64> {
        entry(r, name)["mious"].as_array().unwrap().iter().map(|m| m.as_f64().unwrap()).collect()
    };
    for name in ["searched", "deeplab_path"] {
        let (a, b) = (seeds(&mine, name), seeds(&theirs, name));
        assert_eq!(a.len(), 3, "{name}: three seeds here");
        assert_eq!(a[..2], b[..], "{name}: its first two seeds are REF's runs again");
    }
    assert!(mine["entries"].as_array().unwrap().iter().all(|e| e["name"] != "skips_000"), "no skip control asked");
    let plan: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("plan.json")).unwrap()).unwrap();
    assert_eq!((plan["random"].as_u64(), plan["random_seeds"].as_u64()), (Some(2), Some(2)), "{plan}");
    let canonical = std::fs::canonicalize(&reference).unwrap();
    assert_eq!(plan["random_from"].as_str(), canonical.to_str(), "{plan}");
    // Another recipe or other draws: refused, naming the difference; no folder made.
    let refused = temp("compare-reference-refused");
    let e = err(&later(&refused, &["--set-retrain", "iterations=7"]));
    assert!(e.contains("its retraining config differs in iterations"), "{e}");
    let e = err(&later(&refused, &["--seed", "3"]));
    assert!(e.contains("drawn with --seed 0, this comparison's with --seed 3"), "{e}");
    assert!(!refused.exists(), "nothing written");
    // The taken results live in the comparison: it resumes without REF and reports the same.
    std::fs::remove_dir_all(&reference).unwrap();
    std::fs::remove_file(out.join("compare.json")).unwrap();
    ok(&search(&["--threads", "1", "compare", "--resume", out.to_str().unwrap(), "--device", "cpu"]));
    assert_eq!(report(&out)["entries"], mine["entries"]);
    for dir in [out, drawn, data] {
        let _ = std::fs::remove_dir_all(dir);
    }
}
