//! Evaluating a folder of predictions in the Cityscapes results format against the ground
//! truth, as `csEvalPixelLevelSemanticLabeling` does: for every ground-truth image of the split,
//! exactly one single-channel PNG of label ids whose file name contains its
//! `<city>_<seq>_<frame>` prefix, anywhere under the prediction folder, of the same size.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use rayon::prelude::*;

use crate::data::cityscapes::{list_samples, read_gray, read_label, Annotation};
use crate::data::DataError;
use crate::labels::{LABEL_TO_TRAIN, MAX_LABEL_ID, NUM_CLASSES};
use crate::metrics::{count_pairs, Scores, COLUMNS};

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
    #[error("no prediction for {id}: expected a PNG whose name contains `{id}` under {folder}")]
    Missing { id: String, folder: PathBuf },
    /// Several predictions match one ground-truth image.
    #[error("several predictions for {id}: {first} and {second}")]
    Ambiguous { id: String, first: PathBuf, second: PathBuf },
    /// Prediction and ground truth of different sizes.
    #[error("{prediction}: prediction is {found:?} but the ground truth is {expected:?} (width, height)")]
    Size { prediction: PathBuf, expected: (u32, u32), found: (u32, u32) },
    /// A prediction value that is not a Cityscapes label id.
    #[error("{path}: pixel ({x}, {y}) holds {value}, which is not a Cityscapes label id (0..=33)")]
    BadLabelId { path: PathBuf, x: u32, y: u32, value: u8 },
}

/// The outcome of evaluating a folder.
#[derive(Debug, Clone)]
pub struct FolderEvaluation {
    pub images: usize,
    pub counts: Vec<u64>,
    pub scores: Scores,
}

/// Evaluates the predictions under `predictions` against `split` of the data set at `root`.
pub fn evaluate_folder(
    predictions: &Path,
    root: &Path,
    split: &str,
    annotation: Annotation,
) -> Result<FolderEvaluation, EvalError> {
    if !predictions.is_dir() {
        return Err(EvalError::NoFolder(predictions.to_owned()));
    }
    let samples = list_samples(root, split, annotation)?;
    let mut pngs = Vec::new();
    collect_pngs(predictions, &mut pngs)?;
    // Match by the id prefix; every ground-truth id must find exactly one file.
    let mut matched: HashMap<&str, PathBuf> = HashMap::new();
    for sample in &samples {
        for png in &pngs {
            let name = png.file_name().and_then(|n| n.to_str()).unwrap_or_default();
            if name.contains(sample.id.as_str()) {
                if let Some(first) = matched.insert(sample.id.as_str(), png.clone()) {
                    return Err(EvalError::Ambiguous { id: sample.id.clone(), first, second: png.clone() });
                }
            }
        }
        if !matched.contains_key(sample.id.as_str()) {
            return Err(EvalError::Missing { id: sample.id.clone(), folder: predictions.to_owned() });
        }
    }
    let per_image: Vec<Vec<u64>> = samples
        .par_iter()
        .map(|sample| -> Result<Vec<u64>, EvalError> {
            let (label_path, encoding) = sample.label.as_ref().expect("listed samples have labels");
            let (gw, gh, gt) = read_label(label_path, *encoding)?;
            let prediction = &matched[sample.id.as_str()];
            let (pw, ph, pred) = read_gray(prediction)?;
            if (pw, ph) != (gw, gh) {
                return Err(EvalError::Size { prediction: prediction.clone(), expected: (gw, gh), found: (pw, ph) });
            }
            if let Some(i) = pred.iter().position(|&v| v > MAX_LABEL_ID) {
                let (x, y) = ((i % pw as usize) as u32, (i / pw as usize) as u32);
                return Err(EvalError::BadLabelId { path: prediction.clone(), x, y, value: pred[i] });
            }
            let pred_train: Vec<u8> = pred.iter().map(|&v| LABEL_TO_TRAIN[v as usize]).collect();
            let mut counts = vec![0u64; NUM_CLASSES * COLUMNS];
            count_pairs(&pred_train, &gt, &mut counts);
            Ok(counts)
        })
        .collect::<Result<_, _>>()?;
    let mut counts = vec![0u64; NUM_CLASSES * COLUMNS];
    for image in &per_image {
        for (total, c) in counts.iter_mut().zip(image) {
            *total += c;
        }
    }
    let scores = Scores::from_counts(&counts);
    Ok(FolderEvaluation { images: samples.len(), counts, scores })
}

fn collect_pngs(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), DataError> {
    out.extend(crate::walk::files(dir, None, |p| p.extension().is_some_and(|e| e == "png"))?);
    Ok(())
}
