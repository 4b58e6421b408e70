//! One size convention: WIDTHxHEIGHT (`"321x321"`, `"2048x1024"`), as the command-line flags
//! write it, in configs, logs, JSON and docs. Inside the code a size stays `[height, width]`
//! (tensor order); this module is how configs spell it. The old spelling, an array
//! `[height, width]`, is refused with a message that shows the new one.

use serde::{Deserialize, Deserializer, Serializer};

/// `[height, width]` as `"WIDTHxHEIGHT"`.
pub fn to_text(size: [u32; 2]) -> String {
    format!("{}x{}", size[1], size[0])
}

/// `"WIDTHxHEIGHT"` as `[height, width]`; `Err` in words.
pub fn parse(text: &str) -> Result<[u32; 2], String> {
    let (w, h) = text
        .trim()
        .split_once(['x', 'X'])
        .ok_or_else(|| format!("{text:?} is not a size: WIDTHxHEIGHT expected, e.g. \"321x321\""))?;
    let side =
        |s: &str| s.trim().parse::<u32>().map_err(|_| format!("{text:?}: {s:?} is not a whole number of pixels"));
    Ok([side(h)?, side(w)?])
}

fn from_value<E: serde::de::Error>(value: toml::Value) -> Result<[u32; 2], E> {
    match value {
        toml::Value::String(text) => parse(&text).map_err(E::custom),
        toml::Value::Array(items) if items.len() == 2 => {
            let (h, w) = (&items[0], &items[1]);
            Err(E::custom(format!(
                "[{h}, {w}] is the old [height, width] spelling; sizes are written WIDTHxHEIGHT now, as the flags: \
                 \"{w}x{h}\""
            )))
        }
        other => Err(E::custom(format!("{other} is not a size: WIDTHxHEIGHT expected, e.g. \"321x321\""))),
    }
}

/// `#[serde(with = "seg::size::wxh")]` on a `[height, width]` field.
pub mod wxh {
    use super::*;

    pub fn serialize<S: Serializer>(size: &[u32; 2], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&to_text(*size))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<[u32; 2], D::Error> {
        from_value(toml::Value::deserialize(d)?)
    }
}

/// `#[serde(with = "seg::size::wxh_option")]` on an optional `[height, width]` field.
pub mod wxh_option {
    use super::*;

    pub fn serialize<S: Serializer>(size: &Option<[u32; 2]>, s: S) -> Result<S::Ok, S::Error> {
        match size {
            Some(size) => s.serialize_some(&to_text(*size)),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<[u32; 2]>, D::Error> {
        Option::<toml::Value>::deserialize(d)?.map(from_value).transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Serialize, serde::Deserialize, PartialEq)]
    struct Holder {
        #[serde(with = "wxh")]
        crop: [u32; 2],
        #[serde(with = "wxh_option", default)]
        window: Option<[u32; 2]>,
    }

    #[test]
    fn sizes_are_width_by_height_and_the_old_spelling_is_refused() {
        let h: Holder = toml::from_str("crop = \"128x64\"\nwindow = \"48x32\"").unwrap();
        assert_eq!(h, Holder { crop: [64, 128], window: Some([32, 48]) }, "stored [height, width]");
        assert_eq!(toml::to_string(&h).unwrap(), "crop = \"128x64\"\nwindow = \"48x32\"\n");
        let e = toml::from_str::<Holder>("crop = [64, 128]").unwrap_err().to_string();
        assert!(e.contains("old [height, width] spelling") && e.contains("\"128x64\""), "{e}");
        assert!(parse("12").is_err() && parse("axb").is_err());
        let none: Holder = toml::from_str("crop = \"1x2\"").unwrap();
        assert_eq!(none.window, None);
    }
}
