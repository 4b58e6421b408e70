//! Data: the class-table-driven readers of the four layouts (Cityscapes, folder, VOC, ADE20K),
//! image and label files, the synthetic data set, transforms, the trainA/trainB split and the
//! parallel loader.

pub mod ade20k;
pub mod cityscapes;
pub mod error;
pub mod files;
pub mod folder;
pub mod format;
pub mod loader;
pub mod seed;
pub mod split;
pub mod synth_layout;
pub mod synth_tasks;
pub mod synthetic;
pub mod transform;
pub mod voc;

pub use cityscapes::{list_images, list_samples, Annotation};
pub use error::DataError;
pub use files::{read_label, read_rgb, read_sample, LabelRef, Sample, SampleRef};
pub use format::{DataFormat, Dataset};
pub use loader::{Batch, Loader, LoaderConfig, LoaderError, Mode};
pub use split::{pick, split_halves};
pub use synth_layout::generate;
pub use synthetic::{SynthConfig, SynthTask};
pub use transform::{TransformConfig, TransformError};
