//! Segmentation parts of Auto-DeepLab (C. Liu et al., CVPR 2019, arXiv 1901.02985, §3.2, §4.2,
//! §5): class tables (Cityscapes, VOC, ADE20K built in, any other as a file), the readers of
//! the Cityscapes, folder, VOC and ADE20K layouts and the synthetic data with transforms and a
//! parallel loader, the search and deployed ASPP heads, the DeepLabv3+ decoder, the Cityscapes
//! metric over any table and the palette for writing predictions.

pub mod aspp;
pub mod atomic;
pub mod classes;
pub mod conv;
pub mod data;
pub mod decoder;
pub mod eval;
pub mod labels;
pub mod limits;
pub mod metrics;
pub mod overlap;
pub mod palette;
pub mod png;
pub mod size;
pub mod walk;

pub use aspp::{Aspp, AsppConfig, SearchAspp, SearchAsppConfig};
pub use classes::{ClassTable, LabelDecoder};
pub use decoder::{Decoder, DecoderConfig};
pub use metrics::{ConfusionMatrix, Scores};
