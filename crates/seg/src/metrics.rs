//! The Cityscapes pixel-level metric (M. Cordts et al., CVPR 2016; `cityscapesscripts`
//! `evalPixelLevelSemanticLabeling.py`) over the classes of any table: a confusion matrix,
//! per-class IoU, mIoU and pixel accuracy.
//!
//! Rows are ground-truth train ids; pixels whose ground truth is 255 are not counted. Columns
//! are the `n` predicted train ids plus one for "any other label" (a prediction of a value that
//! is not a class), exactly as the official script counts: such a pixel is a false negative of
//! its true class and a false positive of none. IoU = TP / (TP + FP + FN); a class with
//! TP + FP + FN = 0 (absent from both prediction and ground truth) has no IoU and is left out
//! of the mean, as the official script does.

use serde::Serialize;
use tch::{Device, Kind, Tensor};

/// Accumulates (ground truth, prediction) pixel counts on a device.
#[derive(Debug)]
pub struct ConfusionMatrix {
    /// `[n, n + 1]` int64.
    counts: Tensor,
    /// The class names, `n` of them.
    names: Vec<String>,
}

impl ConfusionMatrix {
    /// An empty matrix over the classes `names` on `device`.
    pub fn new(names: Vec<String>, device: Device) -> ConfusionMatrix {
        let n = names.len() as i64;
        ConfusionMatrix { counts: Tensor::zeros([n, n + 1], (Kind::Int64, device)), names }
    }

    /// A matrix from counts, row-major `[n * (n + 1)]`.
    pub fn from_counts(counts: &[u64], names: Vec<String>, device: Device) -> ConfusionMatrix {
        let n = names.len();
        assert_eq!(counts.len(), n * (n + 1), "a confusion matrix of {n} classes has {n} x {} counts", n + 1);
        let counts: Vec<i64> = counts.iter().map(|&c| c as i64).collect();
        ConfusionMatrix { counts: Tensor::from_slice(&counts).view([n as i64, n as i64 + 1]).to_device(device), names }
    }

    /// Number of classes.
    pub fn classes(&self) -> usize {
        self.names.len()
    }

    /// Adds a batch: `pred` and `gt` of the same shape (e.g. `[N, H, W]`), integer train ids.
    /// Ground truth 255 (or any value outside 0..n) is skipped; predictions outside 0..n
    /// count as "other".
    pub fn update(&mut self, pred: &Tensor, gt: &Tensor) {
        assert_eq!(pred.size(), gt.size(), "prediction and ground truth shapes differ");
        let n = self.names.len() as i64;
        let device = self.counts.device();
        let gt = gt.to_device(device).to_kind(Kind::Int64).flatten(0, -1);
        let pred = pred.to_device(device).to_kind(Kind::Int64).flatten(0, -1);
        let valid = gt.ge(0).logical_and(&gt.lt(n));
        let other = pred.lt(0).logical_or(&pred.ge(n));
        let pred = pred.masked_fill(&other, n);
        let index = gt.masked_select(&valid) * (n + 1) + pred.masked_select(&valid);
        let added = index.bincount::<Tensor>(None, n * (n + 1));
        self.counts += added.view([n, n + 1]);
    }

    /// Adds another matrix's counts.
    pub fn merge(&mut self, other: &ConfusionMatrix) {
        self.counts += other.counts.to_device(self.counts.device());
    }

    /// The counts, row-major `[n * (n + 1)]`.
    pub fn counts(&self) -> Vec<u64> {
        Vec::<i64>::try_from(self.counts.to_device(Device::Cpu).flatten(0, -1))
            .expect("int64 counts")
            .into_iter()
            .map(|c| c as u64)
            .collect()
    }

    /// Per-class IoU, mIoU and pixel accuracy.
    pub fn scores(&self) -> Scores {
        Scores::from_counts(&self.counts(), &self.names)
    }
}

/// Counts (ground truth, prediction) pairs of one image on the CPU into `counts`
/// (`[n * (n + 1)]` for `n` classes), with the same conventions as [`ConfusionMatrix::update`].
pub fn count_pairs(pred: &[u8], gt: &[u8], classes: usize, counts: &mut [u64]) {
    assert_eq!(pred.len(), gt.len(), "prediction and ground truth sizes differ");
    assert_eq!(counts.len(), classes * (classes + 1), "counts of {classes} classes");
    for (&p, &g) in pred.iter().zip(gt) {
        if (g as usize) < classes {
            let column = if (p as usize) < classes { p as usize } else { classes };
            counts[g as usize * (classes + 1) + column] += 1;
        }
    }
}

/// The score of one class.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClassScore {
    pub train_id: u8,
    pub name: String,
    /// `None` when the class is absent from both prediction and ground truth.
    pub iou: Option<f64>,
    pub true_positives: u64,
    pub false_positives: u64,
    pub false_negatives: u64,
}

/// Everything the metric reports.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Scores {
    pub classes: Vec<ClassScore>,
    /// Mean IoU over the classes that have one (NaN when none has).
    pub miou: f64,
    /// Correct pixels over counted pixels (NaN when none was counted).
    pub pixel_accuracy: f64,
    /// Pixels counted (ground truth not ignored).
    pub pixels: u64,
}

impl Scores {
    /// Scores from row-major `[n * (n + 1)]` counts of the classes `names`.
    pub fn from_counts(counts: &[u64], names: &[String]) -> Scores {
        let n = names.len();
        assert_eq!(counts.len(), n * (n + 1), "counts of {n} classes");
        let at = |g: usize, p: usize| counts[g * (n + 1) + p];
        let classes: Vec<ClassScore> = names
            .iter()
            .enumerate()
            .map(|(c, name)| {
                let tp = at(c, c);
                let fp: u64 = (0..n).filter(|&g| g != c).map(|g| at(g, c)).sum();
                let fn_: u64 = (0..=n).map(|p| at(c, p)).sum::<u64>() - tp;
                let denominator = tp + fp + fn_;
                ClassScore {
                    train_id: c as u8,
                    name: name.clone(),
                    iou: (denominator > 0).then(|| tp as f64 / denominator as f64),
                    true_positives: tp,
                    false_positives: fp,
                    false_negatives: fn_,
                }
            })
            .collect();
        let ious: Vec<f64> = classes.iter().filter_map(|c| c.iou).collect();
        let miou = if ious.is_empty() { f64::NAN } else { ious.iter().sum::<f64>() / ious.len() as f64 };
        let pixels: u64 = counts.iter().sum();
        let correct: u64 = (0..n).map(|c| at(c, c)).sum();
        let pixel_accuracy = if pixels == 0 { f64::NAN } else { correct as f64 / pixels as f64 };
        Scores { classes, miou, pixel_accuracy, pixels }
    }
    /// A table of per-class IoU, then mIoU and pixel accuracy, in percent.
    pub fn to_table(&self) -> String {
        let mut table = comfy_table::Table::new();
        table.load_preset(comfy_table::presets::ASCII_MARKDOWN);
        table.set_header(["class", "IoU %", "TP", "FP", "FN"]);
        for c in &self.classes {
            let iou = c.iou.map_or("n/a".to_owned(), |v| format!("{:.2}", 100.0 * v));
            table.add_row([
                c.name.to_owned(),
                iou,
                c.true_positives.to_string(),
                c.false_positives.to_string(),
                c.false_negatives.to_string(),
            ]);
        }
        format!(
            "{table}\nmIoU {:.2} % over {} classes, pixel accuracy {:.2} % over {} pixels\n",
            100.0 * self.miou,
            self.classes.iter().filter(|c| c.iou.is_some()).count(),
            100.0 * self.pixel_accuracy,
            self.pixels
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names() -> Vec<String> {
        crate::ClassTable::cityscapes().names()
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-12
    }

    #[test]
    fn hand_computed_case() {
        // gt:   0 0 0 1 1 2 255 255
        // pred: 0 0 1 1 2 2 0   7
        let gt = [0u8, 0, 0, 1, 1, 2, 255, 255];
        let pred = [0u8, 0, 1, 1, 2, 2, 0, 7];
        let mut counts = vec![0u64; 19 * 20];
        count_pairs(&pred, &gt, 19, &mut counts);
        let s = Scores::from_counts(&counts, &names());
        // road: TP 2, FP 0, FN 1 -> 2/3; sidewalk: TP 1, FP 1, FN 1 -> 1/3; building: TP 1, FP 1, FN 0 -> 1/2.
        assert!(close(s.classes[0].iou.unwrap(), 2.0 / 3.0));
        assert!(close(s.classes[1].iou.unwrap(), 1.0 / 3.0));
        assert!(close(s.classes[2].iou.unwrap(), 1.0 / 2.0));
        // Classes absent from both are left out of the mean.
        assert!(s.classes[3..].iter().all(|c| c.iou.is_none()));
        assert!(close(s.miou, (2.0 / 3.0 + 1.0 / 3.0 + 0.5) / 3.0));
        assert_eq!(s.pixels, 6);
        assert!(close(s.pixel_accuracy, 4.0 / 6.0));
    }

    #[test]
    fn other_predictions_are_false_negatives_only() {
        // A pixel of class 5 predicted as a non-evaluated label: FN of class 5, FP of nobody.
        let mut counts = vec![0u64; 19 * 20];
        count_pairs(&[255, 5], &[5, 5], 19, &mut counts);
        let s = Scores::from_counts(&counts, &names());
        assert_eq!((s.classes[5].true_positives, s.classes[5].false_negatives), (1, 1));
        assert!(s.classes.iter().all(|c| c.false_positives == 0));
        assert!(close(s.miou, 0.5));
    }

    #[test]
    fn tensor_and_cpu_counts_agree() {
        tch::manual_seed(0);
        let gt = Tensor::randint(21, [2, 9, 7], (Kind::Int64, Device::Cpu));
        let gt = gt.where_self(&gt.lt(19), &Tensor::from(255i64));
        let pred = Tensor::randint(20, [2, 9, 7], (Kind::Int64, Device::Cpu));
        let mut matrix = ConfusionMatrix::new(names(), Device::Cpu);
        matrix.update(&pred, &gt);
        matrix.update(&pred, &gt);
        let to_u8 = |t: &Tensor| {
            Vec::<i64>::try_from(t.flatten(0, -1)).unwrap().into_iter().map(|v| v as u8).collect::<Vec<u8>>()
        };
        let mut counts = vec![0u64; 19 * 20];
        count_pairs(&to_u8(&pred), &to_u8(&gt), 19, &mut counts);
        count_pairs(&to_u8(&pred), &to_u8(&gt), 19, &mut counts);
        assert_eq!(matrix.counts(), counts);
        assert_eq!(matrix.scores(), Scores::from_counts(&counts, &names()));
        let empty = ConfusionMatrix::new(names(), Device::Cpu).scores();
        assert!(empty.miou.is_nan() && empty.pixel_accuracy.is_nan());
    }
}
