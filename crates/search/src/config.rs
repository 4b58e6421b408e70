//! Layered configuration: built-in defaults, then a TOML file (itself over the files it names
//! as `base`, one or a list, later entries over earlier ones, as mmsegmentation's `_base_`),
//! then `--set key=value` overrides from the command line.
//!
//! Config structs are serde structs with `#[serde(deny_unknown_fields, default)]`, so a file
//! only names what it changes, and an unknown key or a bad value is an error that names the
//! key (`cell.blocks`) and where it came from (the file, or the override). Every config also
//! checks its values on load ([`Validate`]), before anything is built or written, so that no
//! `assert!` or libtorch error is reachable from a file or a flag.

use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;

/// Why a configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The config file could not be read.
    #[error("config file {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    /// The config file is not valid TOML.
    #[error("config file {path}: {message}")]
    Syntax { path: PathBuf, message: String },
    /// A key is unknown or its value has the wrong type or range.
    #[error("{origin}: key `{key}`: {message}")]
    Invalid { origin: String, key: String, message: String },
    /// A `--set` argument that is not `key=value` with a dotted key.
    #[error("--set {arg}: {reason}")]
    BadOverride { arg: String, reason: String },
    /// A `base` that is not a file name, or that names itself through a chain of bases.
    #[error("config file {path}: key `base`: {message}")]
    Base { path: PathBuf, message: String },
}

/// A value that is out of range: the dotted key and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    pub key: String,
    pub message: String,
}

impl Invalid {
    /// `message` about `key`.
    pub fn new(key: impl Into<String>, message: impl Into<String>) -> Invalid {
        Invalid { key: key.into(), message: message.into() }
    }

    /// The same error for the key under table `table` (`model` + `layers` = `model.layers`).
    pub fn within(self, table: &str) -> Invalid {
        Invalid { key: format!("{table}.{}", self.key), ..self }
    }
}

impl From<(&'static str, String)> for Invalid {
    fn from((key, message): (&'static str, String)) -> Invalid {
        Invalid::new(key, message)
    }
}

/// A config that checks its values once it is read.
pub trait Validate {
    /// Completes the config from what it names (a class table file sets the model's class
    /// count), before [`Validate::validate`]; `explicit` is the merged TOML, which tells the
    /// keys a file or override set from the defaults.
    fn resolve(&mut self, _explicit: &toml::Table) -> Result<(), Invalid> {
        Ok(())
    }

    fn validate(&self) -> Result<(), Invalid>;
}

/// Loads a `T` from its defaults, the TOML file `file` (if any, over its bases) and
/// `overrides` of the form `dotted.key=value` (the value read as a TOML value, else as a
/// string), in that order, and validates it.
pub fn load<T: DeserializeOwned + Validate>(file: Option<&Path>, overrides: &[String]) -> Result<T, ConfigError> {
    match file {
        None => load_table(toml::Table::new(), None, overrides),
        Some(path) => load_table(read_with_bases(path, &mut Vec::new())?, Some(path), overrides),
    }
}

/// Like [`load`], from TOML text; `origin` names it in errors (a file name), and a `base` in it
/// is read relative to `origin`'s folder.
pub fn load_text<T: DeserializeOwned + Validate>(
    text: &str,
    origin: &Path,
    overrides: &[String],
) -> Result<T, ConfigError> {
    let table = with_bases(parse(text, origin)?, origin, &mut Vec::new())?;
    load_table(table, Some(origin), overrides)
}

fn parse(text: &str, origin: &Path) -> Result<toml::Table, ConfigError> {
    text.parse::<toml::Table>().map_err(|e| ConfigError::Syntax { path: origin.to_owned(), message: e.to_string() })
}

/// The table of the file at `path` merged over the files its `base` key names (paths relative
/// to the file's folder), recursively; `chain` holds the files being read, to refuse cycles.
fn read_with_bases(path: &Path, chain: &mut Vec<PathBuf>) -> Result<toml::Table, ConfigError> {
    let text = seg::limits::read_text(path).map_err(|source| ConfigError::Read { path: path.to_owned(), source })?;
    with_bases(parse(&text, path)?, path, chain)
}

/// The chain of files being read, as `a.toml → b.toml → …`.
fn describe(chain: &[PathBuf]) -> String {
    chain.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(" → ")
}

/// `table` (the file at `path`) merged over its bases: `base = "file.toml"` or a list, `base =
/// ["model-l.toml", "cityscapes.toml"]`, each read over its own bases, later entries over
/// earlier ones, the file itself over all of them.
fn with_bases(mut table: toml::Table, path: &Path, chain: &mut Vec<PathBuf>) -> Result<toml::Table, ConfigError> {
    let Some(base) = table.remove("base") else { return Ok(table) };
    let bad = |message: String| ConfigError::Base { path: path.to_owned(), message };
    let names: Vec<String> = match &base {
        toml::Value::String(name) => vec![name.clone()],
        toml::Value::Array(items) => items
            .iter()
            .map(|item| item.as_str().map(str::to_owned).ok_or_else(|| bad(format!("expected file names, got {item}"))))
            .collect::<Result<_, _>>()?,
        other => return Err(bad(format!("expected a file name or a list of file names, got {other}"))),
    };
    let own = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_owned());
    let pushed_self = !chain.contains(&own);
    if pushed_self {
        chain.push(own);
    }
    let mut merged = toml::Table::new();
    for name in &names {
        let base_path = path.parent().unwrap_or(Path::new(".")).join(name);
        let key = std::fs::canonicalize(&base_path).unwrap_or_else(|_| base_path.clone());
        if chain.contains(&key) || chain.len() >= 16 {
            let mut cycle = chain.clone();
            cycle.push(key);
            return Err(bad(format!("`{name}` leads back to a file already being read: {}", describe(&cycle))));
        }
        let below = read_with_bases(&base_path, chain)?;
        merge(&mut merged, below);
    }
    if pushed_self {
        chain.pop();
    }
    merge(&mut merged, table);
    Ok(merged)
}

/// Sets every key of `top` in `bottom`; tables merge key by key, other values replace.
fn merge(bottom: &mut toml::Table, top: toml::Table) {
    for (key, value) in top {
        match (bottom.get_mut(&key), value) {
            (Some(toml::Value::Table(below)), toml::Value::Table(above)) => merge(below, above),
            (_, value) => {
                bottom.insert(key, value);
            }
        }
    }
}

fn load_table<T: DeserializeOwned + Validate>(
    mut table: toml::Table,
    origin: Option<&Path>,
    overrides: &[String],
) -> Result<T, ConfigError> {
    let file_origin = origin.map(|p| p.display().to_string());
    if let Some(origin) = &file_origin {
        // Check the file on its own first, so that its errors name the file.
        deserialize::<T>(&table, origin)?;
    }
    let origin = if overrides.is_empty() {
        file_origin.unwrap_or_else(|| "defaults".to_owned())
    } else {
        for (i, arg) in overrides.iter().enumerate() {
            apply_override(&mut table, arg).map_err(|e| blame_earlier(e, &overrides[..i]))?;
        }
        let sets = format!("--set {}", overrides.join(" --set "));
        match file_origin {
            Some(file) => format!("{file} with {sets}"),
            None => sets,
        }
    };
    let mut config: T = deserialize(&table, &origin)?;
    let invalid = |Invalid { key, message }| ConfigError::Invalid { origin: origin.clone(), key, message };
    config.resolve(&table).map_err(invalid)?;
    config.validate().map_err(|Invalid { key, message }| ConfigError::Invalid { origin, key, message })?;
    Ok(config)
}

fn deserialize<T: DeserializeOwned>(table: &toml::Table, origin: &str) -> Result<T, ConfigError> {
    serde_path_to_error::deserialize(toml::Value::Table(table.clone())).map_err(|e| {
        let key = e.path().to_string();
        // toml appends its own "in `key`" line; the key is already in our message.
        let message = e.into_inner().to_string();
        let message = message.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with("in `"));
        ConfigError::Invalid { origin: origin.to_owned(), key, message: message.collect::<Vec<_>>().join(" ") }
    })
}

/// An override that fails because an earlier one replaced a table with a value (`--set data=5`
/// before `--set data.root=…`) is blamed on the earlier one.
fn blame_earlier(error: ConfigError, earlier: &[String]) -> ConfigError {
    let ConfigError::BadOverride { arg, reason } = &error else { return error };
    let key = arg.split_once('=').map_or(arg.as_str(), |(k, _)| k.trim());
    let culprit = earlier.iter().rev().find(|e| {
        let k = e.split_once('=').map_or(e.as_str(), |(k, _)| k.trim());
        key.starts_with(&format!("{k}."))
    });
    match culprit {
        Some(culprit) => ConfigError::BadOverride {
            arg: culprit.clone(),
            reason: format!(
                "`{}` is a table of keys, not a value (so {arg} could not be applied); set one of its keys, e.g. \
                 --set {}",
                culprit.split_once('=').map_or(culprit.as_str(), |(k, _)| k.trim()),
                arg
            ),
        },
        None => ConfigError::BadOverride { arg: arg.clone(), reason: reason.clone() },
    }
}

/// Sets `key=value` in `table`, creating intermediate tables.
fn apply_override(table: &mut toml::Table, arg: &str) -> Result<(), ConfigError> {
    let bad = |reason: String| ConfigError::BadOverride { arg: arg.to_owned(), reason };
    let (key, raw) = arg.split_once('=').ok_or_else(|| bad("expected key=value".into()))?;
    let segments: Vec<&str> = key.trim().split('.').collect();
    if segments.iter().any(|s| s.is_empty() || !s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')) {
        return Err(bad(format!("`{key}` is not a dotted key such as `cell.blocks`")));
    }
    let value = parse_value(raw.trim());
    let (last, parents) = segments.split_last().expect("split yields at least one segment");
    let mut current = table;
    for (depth, segment) in parents.iter().enumerate() {
        let entry = current.entry(segment.to_string()).or_insert_with(|| toml::Value::Table(toml::Table::new()));
        current = match entry {
            toml::Value::Table(t) => t,
            _ => return Err(bad(format!("`{}` is a value, not a table", segments[..=depth].join(".")))),
        };
    }
    current.insert(last.to_string(), value);
    Ok(())
}

/// A TOML value (`3`, `0.5`, `true`, `[1, 2]`, `"x"`), or else the raw text as a string.
fn parse_value(raw: &str) -> toml::Value {
    format!("v = {raw}")
        .parse::<toml::Table>()
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| toml::Value::String(raw.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_typed_when_they_parse() {
        assert_eq!(parse_value("3"), toml::Value::Integer(3));
        assert_eq!(parse_value("true"), toml::Value::Boolean(true));
        assert_eq!(parse_value("data/city"), toml::Value::String("data/city".into()));
        assert_eq!(parse_value("\"7\""), toml::Value::String("7".into()));
    }

    #[test]
    fn overrides_create_tables_and_refuse_to_descend_into_values() {
        let mut table = toml::Table::new();
        apply_override(&mut table, "a.b.c=1").unwrap();
        assert_eq!(table["a"]["b"]["c"].as_integer(), Some(1));
        let err = apply_override(&mut table, "a.b.c.d=2").unwrap_err();
        assert!(err.to_string().contains("`a.b.c` is a value"), "{err}");
        assert!(apply_override(&mut table, "novalue").is_err());
        assert!(apply_override(&mut table, "a..b=1").is_err());
    }
}
