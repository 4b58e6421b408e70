//! The Cityscapes label table (M. Cordts et al., CVPR 2016; `cityscapesscripts/helpers/labels.py`;
//! facts §8): label ids 0..=33 as stored in `*_gtFine_labelIds.png`, the 19 train ids used for
//! training and evaluation, and their colours. Every other label id maps to [`IGNORE`].

use serde::Serialize;

/// Number of evaluated classes.
pub const NUM_CLASSES: usize = 19;

/// Train id of pixels that are ignored by the loss and the metric.
pub const IGNORE: u8 = 255;

/// Largest label id in the Cityscapes table (`bicycle`); ids above it do not exist.
pub const MAX_LABEL_ID: u8 = 33;

/// One of the 19 evaluated classes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Class {
    /// Index in logits and in the confusion matrix, 0..19.
    pub train_id: u8,
    /// Id in the label-id PNGs and in the results format.
    pub label_id: u8,
    /// Cityscapes name.
    pub name: &'static str,
    /// Colour in `*_color.png` and in our colour predictions.
    pub color: [u8; 3],
}

const fn class(train_id: u8, label_id: u8, name: &'static str, color: [u8; 3]) -> Class {
    Class { train_id, label_id, name, color }
}

/// The 19 classes in train-id order.
pub const CLASSES: [Class; NUM_CLASSES] = [
    class(0, 7, "road", [128, 64, 128]),
    class(1, 8, "sidewalk", [244, 35, 232]),
    class(2, 11, "building", [70, 70, 70]),
    class(3, 12, "wall", [102, 102, 156]),
    class(4, 13, "fence", [190, 153, 153]),
    class(5, 17, "pole", [153, 153, 153]),
    class(6, 19, "traffic light", [250, 170, 30]),
    class(7, 20, "traffic sign", [220, 220, 0]),
    class(8, 21, "vegetation", [107, 142, 35]),
    class(9, 22, "terrain", [152, 251, 152]),
    class(10, 23, "sky", [70, 130, 180]),
    class(11, 24, "person", [220, 20, 60]),
    class(12, 25, "rider", [255, 0, 0]),
    class(13, 26, "car", [0, 0, 142]),
    class(14, 27, "truck", [0, 0, 70]),
    class(15, 28, "bus", [0, 60, 100]),
    class(16, 31, "train", [0, 80, 100]),
    class(17, 32, "motorcycle", [0, 0, 230]),
    class(18, 33, "bicycle", [119, 11, 32]),
];

/// Train id of every label id 0..=255: the class's train id, or [`IGNORE`] for label ids
/// that are not evaluated (and for ids above [`MAX_LABEL_ID`], which callers reject first).
pub const LABEL_TO_TRAIN: [u8; 256] = {
    let mut table = [IGNORE; 256];
    let mut i = 0;
    while i < NUM_CLASSES {
        table[CLASSES[i].label_id as usize] = CLASSES[i].train_id;
        i += 1;
    }
    table
};

/// Train id of a label id, `None` for ids outside the Cityscapes table (> 33).
pub fn train_id(label_id: u8) -> Option<u8> {
    (label_id <= MAX_LABEL_ID).then(|| LABEL_TO_TRAIN[label_id as usize])
}

/// Label id of a train id 0..19 (for the results format), `None` otherwise.
pub fn label_id(train_id: u8) -> Option<u8> {
    CLASSES.get(train_id as usize).map(|c| c.label_id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_entry_of_the_table_maps_both_ways() {
        let expected: [(u8, u8); 19] = [
            (0, 7),
            (1, 8),
            (2, 11),
            (3, 12),
            (4, 13),
            (5, 17),
            (6, 19),
            (7, 20),
            (8, 21),
            (9, 22),
            (10, 23),
            (11, 24),
            (12, 25),
            (13, 26),
            (14, 27),
            (15, 28),
            (16, 31),
            (17, 32),
            (18, 33),
        ];
        for (train, label) in expected {
            assert_eq!(train_id(label), Some(train), "label id {label}");
            assert_eq!(label_id(train), Some(label), "train id {train}");
            assert_eq!(CLASSES[train as usize].train_id, train);
        }
        let evaluated: Vec<u8> = expected.iter().map(|e| e.1).collect();
        for label in 0..=MAX_LABEL_ID {
            if !evaluated.contains(&label) {
                assert_eq!(train_id(label), Some(IGNORE), "label id {label} is not evaluated");
            }
        }
        assert_eq!(train_id(34), None);
        assert_eq!(train_id(255), None);
        assert_eq!(label_id(19), None);
        assert_eq!(CLASSES[13].name, "car");
        assert_eq!(CLASSES[13].color, [0, 0, 142]);
    }
}
