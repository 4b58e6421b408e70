//! The eight candidate operations of the cell search space (paper §3.1, §4.1.1).
//!
//! Their order is fixed: it is the column order of α (`[edges, 8]`) in every tensor and every
//! file, and their names are the ones every file format uses.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// One candidate operation of a cell edge. The discriminant is the column of α.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "&'static str")]
pub enum Primitive {
    /// No connection: contributes nothing (and is never computed).
    None = 0,
    /// 3x3 max pooling.
    MaxPool3x3 = 1,
    /// 3x3 average pooling (padding not counted).
    AvgPool3x3 = 2,
    /// Identity.
    SkipConnect = 3,
    /// 3x3 depthwise-separable convolution, applied twice.
    SepConv3x3 = 4,
    /// 5x5 depthwise-separable convolution, applied twice.
    SepConv5x5 = 5,
    /// 3x3 atrous convolution, rate 2.
    DilConv3x3 = 6,
    /// 5x5 atrous convolution, rate 2.
    DilConv5x5 = 7,
}

/// A name that is not one of the eight primitives.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown op `{name}`; expected one of: {}", Primitive::NAMES.join(", "))]
pub struct UnknownPrimitive {
    /// The name that was given.
    pub name: String,
}

impl Primitive {
    /// Number of primitives, the width of α.
    pub const COUNT: usize = 8;

    /// All primitives in α's column order.
    pub const ALL: [Primitive; Primitive::COUNT] = [
        Primitive::None,
        Primitive::MaxPool3x3,
        Primitive::AvgPool3x3,
        Primitive::SkipConnect,
        Primitive::SepConv3x3,
        Primitive::SepConv5x5,
        Primitive::DilConv3x3,
        Primitive::DilConv5x5,
    ];

    /// The file-format names, in α's column order.
    pub const NAMES: [&'static str; Primitive::COUNT] = [
        "none",
        "max_pool_3x3",
        "avg_pool_3x3",
        "skip_connect",
        "sep_conv_3x3",
        "sep_conv_5x5",
        "dil_conv_3x3",
        "dil_conv_5x5",
    ];

    /// Column of this primitive in α.
    pub fn index(self) -> usize {
        self as usize
    }

    /// The primitive at column `index` of α, if there is one.
    pub fn from_index(index: usize) -> Option<Primitive> {
        Primitive::ALL.get(index).copied()
    }

    /// The name used in every file format.
    pub fn name(self) -> &'static str {
        Primitive::NAMES[self.index()]
    }
}

impl fmt::Display for Primitive {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Primitive {
    type Err = UnknownPrimitive;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        Primitive::NAMES
            .iter()
            .position(|n| *n == name)
            .map(|i| Primitive::ALL[i])
            .ok_or_else(|| UnknownPrimitive { name: name.to_owned() })
    }
}

impl TryFrom<String> for Primitive {
    type Error = UnknownPrimitive;

    fn try_from(name: String) -> Result<Self, Self::Error> {
        name.parse()
    }
}

impl From<Primitive> for &'static str {
    fn from(p: Primitive) -> Self {
        p.name()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_and_names_are_the_file_format() {
        let names: Vec<String> = Primitive::ALL.iter().map(|p| p.to_string()).collect();
        assert_eq!(
            names,
            [
                "none",
                "max_pool_3x3",
                "avg_pool_3x3",
                "skip_connect",
                "sep_conv_3x3",
                "sep_conv_5x5",
                "dil_conv_3x3",
                "dil_conv_5x5"
            ]
        );
        for (i, p) in Primitive::ALL.iter().enumerate() {
            assert_eq!(p.index(), i);
            assert_eq!(Primitive::from_index(i), Some(*p));
            assert_eq!(p.name().parse::<Primitive>(), Ok(*p));
        }
        assert_eq!(Primitive::from_index(8), None);
    }

    #[test]
    fn unknown_names_are_rejected_with_the_name() {
        let err = "sep_conv_7x7".parse::<Primitive>().unwrap_err();
        assert!(err.to_string().contains("`sep_conv_7x7`"), "{err}");
        assert!(err.to_string().contains("dil_conv_5x5"), "{err}");
    }

    #[test]
    fn serde_uses_the_names() {
        let json = serde_json::to_string(&Primitive::DilConv5x5).unwrap();
        assert_eq!(json, "\"dil_conv_5x5\"");
        let back: Primitive = serde_json::from_str(&json).unwrap();
        assert_eq!(back, Primitive::DilConv5x5);
        assert!(serde_json::from_str::<Primitive>("\"conv_9x9\"").is_err());
    }
}
