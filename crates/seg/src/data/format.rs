//! Which layout a data set has on disk, and a data set: a layout, a root and a class table.
//! The one place that dispatches on the format; everything downstream sees [`SampleRef`]s
//! whose labels carry their own decoder.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::error::DataError;
use super::files::SampleRef;
use super::{ade20k, cityscapes, folder, voc, Annotation};
use crate::classes::ClassTable;

/// The layouts we read (datasets/README.md shows each).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum DataFormat {
    /// `leftImg8bit/` and `gtFine/` (or `gtCoarse/`) with label ids.
    #[default]
    Cityscapes,
    /// `images/<split>/` and `labels/<split>/` with the data set's own class table.
    Folder,
    /// Pascal VOC 2012 (`JPEGImages/`, `SegmentationClass[Aug]/`, `ImageSets/`).
    Voc,
    /// ADE20K SceneParsing (`images/`, `annotations/`).
    Ade20k,
}

impl DataFormat {
    /// The format's name in configs and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            DataFormat::Cityscapes => "cityscapes",
            DataFormat::Folder => "folder",
            DataFormat::Voc => "voc",
            DataFormat::Ade20k => "ade20k",
        }
    }

    /// The built-in class table of the format; the folder format has none (its data sets bring
    /// their own).
    pub fn built_in_table(self) -> Option<ClassTable> {
        match self {
            DataFormat::Cityscapes => Some(ClassTable::cityscapes()),
            DataFormat::Voc => Some(ClassTable::voc()),
            DataFormat::Ade20k => Some(ClassTable::ade20k()),
            DataFormat::Folder => None,
        }
    }

    /// The split names the format uses for training and validation.
    pub fn default_splits(self) -> (&'static str, &'static str) {
        match self {
            DataFormat::Ade20k => ("training", "validation"),
            _ => ("train", "val"),
        }
    }
}

impl std::fmt::Display for DataFormat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A data set on disk.
#[derive(Debug, Clone, PartialEq)]
pub struct Dataset {
    pub format: DataFormat,
    pub root: PathBuf,
    pub table: ClassTable,
    /// Cityscapes only: fine or coarse labels.
    pub annotation: Annotation,
}

impl Dataset {
    /// The data set at `root` in `format` with `table`.
    pub fn new(format: DataFormat, root: impl Into<PathBuf>, table: ClassTable) -> Dataset {
        Dataset { format, root: root.into(), table, annotation: Annotation::Fine }
    }

    /// The labelled samples of `split`, in a stable order.
    pub fn list_samples(&self, split: &str) -> Result<Vec<SampleRef>, DataError> {
        let (root, table) = (self.root.as_path(), &self.table);
        match self.format {
            DataFormat::Cityscapes => cityscapes::list_samples_with(root, split, self.annotation, table),
            DataFormat::Folder => folder::list_samples(root, split, table),
            DataFormat::Voc => voc::list_samples(root, split, table),
            DataFormat::Ade20k => ade20k::list_samples(root, split, table),
        }
    }

    /// The images of `split` (labelled or not) with their ids.
    pub fn list_images(&self, split: &str) -> Result<Vec<(String, PathBuf)>, DataError> {
        list_images(self.format, &self.root, split)
    }
}

/// The images of `split` of the data set at `root` in `format`.
pub fn list_images(format: DataFormat, root: &Path, split: &str) -> Result<Vec<(String, PathBuf)>, DataError> {
    match format {
        DataFormat::Cityscapes => cityscapes::list_images(root, split),
        DataFormat::Folder => folder::list_images(root, split),
        DataFormat::Voc => voc::list_images(root, split),
        DataFormat::Ade20k => ade20k::list_images(root, split),
    }
}
