//! Evaluating a folder of predictions against a data set's ground truth, as
//! `csEvalPixelLevelSemanticLabeling` does for Cityscapes, for any class table: for every
//! ground-truth image of the split exactly one single-channel PNG of the data set's stored
//! values (label ids for Cityscapes, class indices for VOC, 1..=150 for ADE20K; what
//! `search predict --output-format labelids` writes), of the same size. A prediction is found at
//! `<folder>/<id>.png`, or else as the one PNG under the folder whose file name contains the
//! id's last part (Cityscapes' `<city>_<seq>_<frame>` prefix rule).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use rayon::prelude::*;

use crate::classes::LabelDecoder;
use crate::data::files::{read_label, read_label_pixels, LabelPixels};
use crate::data::{DataError, Dataset};
use crate::metrics::{count_pairs, Scores};

/// Why a prediction folder could not be evaluated.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    /// Reading the ground truth or a prediction failed.
    #[error(transparent)]
    Data(#[from] DataError),
    /// The prediction folder does not exist.
    #[error("prediction folder {0} does not exist")]
    NoFolder(PathBuf),
    /// No prediction for a ground-truth image.
    #[error("no prediction for {id}: expected {expected}, or one PNG whose name contains `{name}` under {folder}")]
    Missing { id: String, name: String, expected: PathBuf, folder: PathBuf },
    /// Several predictions match one ground-truth image.
    #[error("several predictions for {id}: {first} and {second}")]
    Ambiguous { id: String, first: PathBuf, second: PathBuf },
    /// Prediction and ground truth of different sizes.
    #[error("{prediction}: prediction is {found:?} but the ground truth is {expected:?} (width, height)")]
    Size { prediction: PathBuf, expected: (u32, u32), found: (u32, u32) },
    /// A prediction value that the table does not store.
    #[error("{path}: pixel ({x}, {y}) holds {value}, which is not a value of the {table} class table ({valid})")]
    BadValue { path: PathBuf, x: u32, y: u32, value: u8, table: String, valid: String },
    /// A colour prediction where values were expected.
    #[error("{path}: a colour PNG; evaluation reads single-channel predictions of stored values (predict --output-format labelids)")]
    NotValues { path: PathBuf },
}

/// The outcome of evaluating a folder.
#[derive(Debug, Clone)]
pub struct FolderEvaluation {
    pub images: usize,
    pub counts: Vec<u64>,
    pub scores: Scores,
}

/// Evaluates the predictions under `predictions` against `split` of `dataset`.
pub fn evaluate_folder(predictions: &Path, dataset: &Dataset, split: &str) -> Result<FolderEvaluation, EvalError> {
    if !predictions.is_dir() {
        return Err(EvalError::NoFolder(predictions.to_owned()));
    }
    let samples = dataset.list_samples(split)?;
    let pngs = crate::walk::files(predictions, None, |p| p.extension().is_some_and(|e| e == "png"))?;
    // Match every ground-truth id to exactly one file.
    let mut matched: HashMap<&str, PathBuf> = HashMap::new();
    for sample in &samples {
        let exact = predictions.join(format!("{}.png", sample.id));
        if exact.is_file() {
            matched.insert(sample.id.as_str(), exact);
            continue;
        }
        let name = sample.id.rsplit('/').next().unwrap_or(&sample.id);
        for png in &pngs {
            let file_name = png.file_name().and_then(|n| n.to_str()).unwrap_or_default();
            if file_name.contains(name) {
                if let Some(first) = matched.insert(sample.id.as_str(), png.clone()) {
                    return Err(EvalError::Ambiguous { id: sample.id.clone(), first, second: png.clone() });
                }
            }
        }
        if !matched.contains_key(sample.id.as_str()) {
            return Err(EvalError::Missing {
                id: sample.id.clone(),
                name: name.to_owned(),
                expected: exact,
                folder: predictions.to_owned(),
            });
        }
    }
    let classes = dataset.table.len();
    let values = LabelDecoder::new(&dataset.table);
    let per_image: Vec<Vec<u64>> = samples
        .par_iter()
        .map(|sample| -> Result<Vec<u64>, EvalError> {
            let label = sample.label.as_ref().expect("listed samples have labels");
            let (gw, gh, gt) = read_label(&label.path, &label.decoder)?;
            let prediction = &matched[sample.id.as_str()];
            let (pw, ph, pixels) = read_label_pixels(prediction)?;
            if (pw, ph) != (gw, gh) {
                return Err(EvalError::Size { prediction: prediction.clone(), expected: (gw, gh), found: (pw, ph) });
            }
            let LabelPixels::Values(pred) = pixels else {
                return Err(EvalError::NotValues { path: prediction.clone() });
            };
            let mut pred_train = Vec::with_capacity(pred.len());
            for (i, &v) in pred.iter().enumerate() {
                let Some(t) = values.value(v) else {
                    let (x, y) = ((i % pw as usize) as u32, (i / pw as usize) as u32);
                    return Err(EvalError::BadValue {
                        path: prediction.clone(),
                        x,
                        y,
                        value: v,
                        table: dataset.table.name.clone(),
                        valid: values.valid.clone(),
                    });
                };
                pred_train.push(t);
            }
            let mut counts = vec![0u64; classes * (classes + 1)];
            count_pairs(&pred_train, &gt, classes, &mut counts);
            Ok(counts)
        })
        .collect::<Result<_, _>>()?;
    let mut counts = vec![0u64; classes * (classes + 1)];
    for image in &per_image {
        for (total, c) in counts.iter_mut().zip(image) {
            *total += c;
        }
    }
    let scores = Scores::from_counts(&counts, &dataset.table.names());
    Ok(FolderEvaluation { images: samples.len(), counts, scores })
}
