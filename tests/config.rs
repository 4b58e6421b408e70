//! Layered configuration: file over defaults, `--set` overrides, errors that name the key.

use std::path::{Path, PathBuf};

use search::config::{load, ConfigError};
use search::smoke::SmokeConfig;

fn repo_file(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").join(rel)
}

fn temp_toml(name: &str, text: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("adl-config-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn shipped_config_loads_and_overrides_apply() {
    let file = repo_file("configs/cell-smoke.toml");
    let config: SmokeConfig = load(Some(&file), &[]).unwrap();
    assert_eq!(config.blocks, 5);
    assert_eq!(config.channels, 4);
    let config: SmokeConfig = load(Some(&file), &["blocks=2".into(), "seed=11".into()]).unwrap();
    assert_eq!((config.blocks, config.seed, config.channels), (2, 11, 4));
}

#[test]
fn missing_keys_take_the_defaults() {
    let file = temp_toml("partial.toml", "channels = 6\n");
    let config: SmokeConfig = load(Some(&file), &[]).unwrap();
    assert_eq!(config, SmokeConfig { channels: 6, ..SmokeConfig::default() });
    let config: SmokeConfig = load(None, &[]).unwrap();
    assert_eq!(config, SmokeConfig::default());
}

#[test]
fn unknown_keys_and_bad_values_name_the_key_and_where_it_came_from() {
    let file = temp_toml("typo.toml", "blokcs = 3\n");
    let err = load::<SmokeConfig>(Some(&file), &[]).unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, ConfigError::Invalid { .. }));
    assert!(text.contains("typo.toml") && text.contains("blokcs"), "{text}");

    let err = load::<SmokeConfig>(None, &["chanels=3".into()]).unwrap_err().to_string();
    assert!(err.contains("--set chanels=3") && err.contains("chanels"), "{err}");

    let err = load::<SmokeConfig>(None, &["blocks=many".into()]).unwrap_err().to_string();
    assert!(err.contains("key `blocks`") && err.contains("many"), "{err}");

    let file = temp_toml("badvalue.toml", "size = -3.5\n");
    let err = load::<SmokeConfig>(Some(&file), &[]).unwrap_err().to_string();
    assert!(err.contains("badvalue.toml") && err.contains("key `size`"), "{err}");

    let file = temp_toml("syntax.toml", "blocks = = 3\n");
    let err = load::<SmokeConfig>(Some(&file), &[]).unwrap_err();
    assert!(matches!(err, ConfigError::Syntax { .. }), "{err}");
    assert!(err.to_string().contains("syntax.toml"));

    let err = load::<SmokeConfig>(Some(Path::new("/nonexistent/c.toml")), &[]).unwrap_err();
    assert!(err.to_string().contains("/nonexistent/c.toml"), "{err}");

    let err = load::<SmokeConfig>(None, &["blocks".into()]).unwrap_err();
    assert!(matches!(err, ConfigError::BadOverride { .. }), "{err}");
}

/// The M and L retraining configs are the S config with another width, through `base`.
#[test]
fn configs_compose_through_base() {
    use search::run_config::RetrainConfig;
    let s: RetrainConfig = load(Some(&repo_file("configs/cityscapes-retrain-s.toml")), &[]).unwrap();
    for (file, f) in [("configs/cityscapes-retrain-m.toml", 32), ("configs/cityscapes-retrain-l.toml", 48)] {
        let c: RetrainConfig = load(Some(&repo_file(file)), &[]).unwrap();
        assert_eq!(c.model.filter_multiplier, f);
        let as_s = RetrainConfig {
            name: s.name.clone(),
            model: search::run_config::RetrainModelConfig { filter_multiplier: 20, ..c.model.clone() },
            ..c
        };
        assert_eq!(as_s, s, "{file} differs from the S config in more than name and width");
    }
    // Bases nest, tables merge key by key, and overrides apply last.
    let base = temp_toml("base.toml", "batch = 3\nsize = 9\n");
    temp_toml("middle.toml", "base = \"base.toml\"\nsize = 11\n");
    let top = temp_toml("top.toml", "base = \"middle.toml\"\nchannels = 7\n");
    let c: SmokeConfig = load(Some(&top), &["seed=4".into()]).unwrap();
    assert_eq!((c.batch, c.size, c.channels, c.seed), (3, 11, 7, 4));
    assert!(base.is_file());
    // A cycle and a missing base are errors naming the file.
    let a = temp_toml("cycle-a.toml", "base = \"cycle-b.toml\"\n");
    temp_toml("cycle-b.toml", "base = \"cycle-a.toml\"\n");
    let err = load::<SmokeConfig>(Some(&a), &[]).unwrap_err().to_string();
    assert!(err.contains("base") && err.contains("leads back"), "{err}");
    let lost = temp_toml("lost.toml", "base = \"nowhere.toml\"\n");
    let err = load::<SmokeConfig>(Some(&lost), &[]).unwrap_err().to_string();
    assert!(err.contains("nowhere.toml"), "{err}");
    // A list of bases: later entries over earlier ones, the file over all; a diamond (two bases
    // sharing one) is no cycle; a cycle through a list names every file on the way.
    temp_toml("width.toml", "size = 21\nchannels = 5\n");
    temp_toml("other.toml", "base = \"base.toml\"\nchannels = 6\n");
    let listed = temp_toml("listed.toml", "base = [\"middle.toml\", \"width.toml\", \"other.toml\"]\nseed = 2\n");
    let c: SmokeConfig = load(Some(&listed), &[]).unwrap();
    // other.toml brings base.toml's size back over width.toml's: later entries win, bases included.
    assert_eq!((c.batch, c.size, c.channels, c.seed), (3, 9, 6, 2));
    temp_toml("loop-a.toml", "base = [\"width.toml\", \"loop-b.toml\"]\n");
    let b = temp_toml("loop-b.toml", "base = [\"loop-a.toml\"]\n");
    let err = load::<SmokeConfig>(Some(&b), &[]).unwrap_err().to_string();
    assert!(err.contains("leads back") && err.contains("loop-a.toml → ") && err.contains("loop-b.toml"), "{err}");
    let odd = temp_toml("odd-base.toml", "base = [3]\n");
    let err = load::<SmokeConfig>(Some(&odd), &[]).unwrap_err().to_string();
    assert!(err.contains("odd-base.toml") && err.contains("key `base`"), "{err}");
    // The widths S/M/L are stated once, in configs/model-{s,m,l}.toml, for every data set.
    for (data_set, width, f) in
        [("voc", "m", 32), ("voc", "l", 48), ("ade20k", "m", 32), ("ade20k", "l", 48), ("cityscapes", "s", 20)]
    {
        let c: RetrainConfig =
            load(Some(&repo_file(&format!("configs/{data_set}-retrain-{width}.toml"))), &[]).unwrap();
        assert_eq!(c.model.filter_multiplier, f, "{data_set} {width}");
    }
    for file in std::fs::read_dir(repo_file("configs")).unwrap() {
        let text = std::fs::read_to_string(file.unwrap().path()).unwrap();
        let widths = text.lines().filter(|l| l.trim_start().starts_with("filter_multiplier = ")).count();
        assert!(widths <= 1, "a config states a width once at most");
    }
}

/// Values of the right type but out of range are errors naming the key and its source.
#[test]
fn values_are_validated_on_load() {
    use search::run_config::{RetrainConfig, SearchRunConfig};
    let err = load::<RetrainConfig>(None, &["model.filter_multiplier=0".into()]).unwrap_err().to_string();
    assert!(err.contains("--set model.filter_multiplier=0") && err.contains("key `model.filter_multiplier`"), "{err}");
    let file = temp_toml("zero-blocks.toml", "blocks = 0\n");
    let err = load::<SmokeConfig>(Some(&file), &[]).unwrap_err().to_string();
    assert!(err.contains("zero-blocks.toml") && err.contains("key `blocks`"), "{err}");
    for (set, key) in [
        ("model.partial_channels=3", "model.partial_channels"),
        ("model.classes=1", "model.classes"),
        ("execution.threads=0", "execution.threads"),
        ("data.transform.crop=5x0", "data.transform.crop"),
        ("steps_per_epoch=0", "steps_per_epoch"),
    ] {
        let err = load::<SearchRunConfig>(None, &[set.into()]).unwrap_err().to_string();
        assert!(err.contains(&format!("key `{key}`")), "{set}: {err}");
    }
}

/// The dotted keys of a config as its defaults serialise, plus its optional keys (absent from
/// the serialised defaults).
fn keys<T: serde::Serialize + Default>(optional: &[&str]) -> Vec<String> {
    fn walk(prefix: &str, table: &toml::Table, out: &mut Vec<String>) {
        for (key, value) in table {
            let key = if prefix.is_empty() { key.clone() } else { format!("{prefix}.{key}") };
            match value {
                toml::Value::Table(inner) => walk(&key, inner, out),
                _ => out.push(key),
            }
        }
    }
    let table: toml::Table = toml::from_str(&toml::to_string(&T::default()).unwrap()).unwrap();
    let mut out = Vec::new();
    walk("", &table, &mut out);
    out.extend(optional.iter().map(|k| k.to_string()));
    out
}

/// docs/config.md lists every key of every config, and every key it lists exists.
#[test]
fn docs_config_lists_every_key() {
    use search::run_config::{RetrainConfig, SearchRunConfig};
    let doc = std::fs::read_to_string(repo_file("docs/config.md")).unwrap();
    let search_keys = keys::<SearchRunConfig>(&[
        "steps_per_epoch",
        "data.eval_window",
        "data.classes",
        "execution.activation_budget_mib",
        "execution.threads",
        "arch.cost.kind",
        "arch.cost.target",
        "arch.cost.weight",
        "arch.cost.adapt",
        "arch.cost.band",
        "arch.cost.factor",
        "arch.cost.height",
        "arch.cost.width",
        "arch.cost.filter_multiplier",
        "arch.cost.stem_channels",
        "arch.cost.table",
        "arch.beta_decay.weight",
        "arch.beta_decay.schedule",
        "arch.aux_skip.start",
        "arch.aux_skip.schedule",
        "arch.unrolled_lr",
        "budget_steps",
        "arch.temperature.start",
        "arch.temperature.end",
        "arch.temperature.schedule",
        "arch.progressive.every_epochs",
        "arch.progressive.after_epochs",
        "arch.progressive.min_margin",
        "arch.progressive.path",
    ]);
    let retrain_keys = keys::<RetrainConfig>(&["data.eval_window", "data.classes", "model.layers", "model.blocks"]);
    let check_keys = keys::<SmokeConfig>(&[]);
    for key in search_keys.iter().chain(&retrain_keys).chain(&check_keys) {
        assert!(doc.contains(&format!("`{key}`")), "docs/config.md does not list `{key}`");
    }
    // Every key named in a table row is a key of some config.
    let all: std::collections::HashSet<&String> = search_keys.iter().chain(&retrain_keys).chain(&check_keys).collect();
    for row in doc.lines().filter(|l| l.starts_with("| `")) {
        let cell = row.split('|').nth(1).unwrap();
        for key in cell.split('`').skip(1).step_by(2) {
            assert!(all.contains(&key.to_string()), "docs/config.md lists `{key}`, which no config has");
        }
    }
}
