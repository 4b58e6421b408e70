//! The eight candidate operations of the cell search space (paper §3.1, §4.1.1).
//!
//! Their order is fixed: it is the column order of α (`[edges, 8]`) in every tensor and every
//! file, and their names are the ones every file format uses.
//!
//! [`Primitive::search_op`] is the op registry of the search network: what each primitive
//! computes, as data. The mixed op ([`crate::MixedOp`]) and the per-edge reference it is tested
//! against ([`crate::reference`]) are both built from it, so adding a primitive means adding a
//! variant here, its name, and its entry in the registry (and, for the deployed network, its
//! TF definition in [`crate::ops`]).

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

/// A depthwise stage of a search-time convolution op: ReLU, depthwise `kernel x kernel` with
/// `dilation`, pointwise 1x1, BN without affine parameters (DARTS `operations.py`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DepthwiseStage {
    pub kernel: i64,
    pub dilation: i64,
}

impl DepthwiseStage {
    /// Side of the window the kernel covers: `dilation * (kernel - 1) + 1`.
    pub fn span(self) -> i64 {
        self.dilation * (self.kernel - 1) + 1
    }
}

/// Which pooling a pooling op applies (3x3, stride 1, padding 1; average without the padding).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pooling {
    Max,
    Average,
}

/// What a primitive computes in the search network: the op registry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SearchOp {
    /// Contributes nothing; never built nor computed.
    Zero,
    /// The input itself.
    Identity,
    /// Pooling, then BN without affine parameters.
    Pool(Pooling),
    /// One or more depthwise stages in sequence.
    Convolution(&'static [DepthwiseStage]),
}

const SEP3: [DepthwiseStage; 2] = [DepthwiseStage { kernel: 3, dilation: 1 }; 2];
const SEP5: [DepthwiseStage; 2] = [DepthwiseStage { kernel: 5, dilation: 1 }; 2];
const DIL3: [DepthwiseStage; 1] = [DepthwiseStage { kernel: 3, dilation: 2 }];
const DIL5: [DepthwiseStage; 1] = [DepthwiseStage { kernel: 5, dilation: 2 }];

impl Primitive {
    /// The search-time definition of this primitive (facts §2): separable convolutions are two
    /// depthwise stages, atrous ones a single dilated stage.
    pub fn search_op(self) -> SearchOp {
        match self {
            Primitive::None => SearchOp::Zero,
            Primitive::MaxPool3x3 => SearchOp::Pool(Pooling::Max),
            Primitive::AvgPool3x3 => SearchOp::Pool(Pooling::Average),
            Primitive::SkipConnect => SearchOp::Identity,
            Primitive::SepConv3x3 => SearchOp::Convolution(&SEP3),
            Primitive::SepConv5x5 => SearchOp::Convolution(&SEP5),
            Primitive::DilConv3x3 => SearchOp::Convolution(&DIL3),
            Primitive::DilConv5x5 => SearchOp::Convolution(&DIL5),
        }
    }

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
