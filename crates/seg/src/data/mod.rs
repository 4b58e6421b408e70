//! Data: the Cityscapes reader, the synthetic data set, transforms, the trainA/trainB split
//! and the parallel loader.

pub mod cityscapes;
pub mod error;
pub mod loader;
pub mod seed;
pub mod split;
pub mod synthetic;
pub mod transform;

pub use cityscapes::{list_images, list_samples, read_sample, Annotation, LabelEncoding, Sample, SampleRef};
pub use error::DataError;
pub use loader::{Batch, Loader, LoaderConfig, LoaderError, Mode};
pub use split::split_halves;
pub use synthetic::{generate, SynthConfig, SynthTask};
pub use transform::{TransformConfig, TransformError};
