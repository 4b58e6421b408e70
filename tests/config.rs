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
