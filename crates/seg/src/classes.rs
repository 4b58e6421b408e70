//! The class table of a data set, as data: the classes in train-id order (the index of a
//! class in the logits and in the confusion matrix), their names and colours, the value each
//! class has in the data set's label files, and the stored values and colours that mean "not
//! labelled" (ignored by the loss and the metric). Cityscapes (facts §8), Pascal VOC 2012 and
//! ADE20K (the data sets of the paper's §5) are built in; any other data set brings its own as
//! a TOML file (datasets/README.md):
//!
//! ```toml
//! name = "my-data"
//! ignore = [255]               # stored values that are not labelled (default [255])
//! ignore_colors = []           # colours of colour labels that are not labelled
//! [[class]]
//! name = "background"
//! color = [0, 0, 0]
//! value = 0                    # value in the label files (default: the class's position)
//! ```
//!
//! [`LabelDecoder`] compiles a table into the lookups that read label files: stored value to
//! train id, colour to train id, and back for writing predictions in the stored values.

use std::collections::HashMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::labels::IGNORE;

/// The most classes a table may have: train ids are bytes and 255 means "ignored".
pub const MAX_CLASSES: usize = 255;

/// One class of a table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClassEntry {
    /// Name in reports, legends and TensorBoard.
    pub name: String,
    /// Colour in colour labels, colour predictions and overlays.
    pub color: [u8; 3],
    /// Value in the data set's label files (default: the class's train id, its position).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<u8>,
}

/// A data set's classes; see the module documentation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClassTable {
    /// The data set's name (in errors and reports).
    #[serde(default)]
    pub name: String,
    /// Stored values that mean "not labelled"; the first is written for pixels a prediction
    /// leaves without a class (default `[255]`).
    #[serde(default = "default_ignore")]
    pub ignore: Vec<u8>,
    /// Colours of colour labels that mean "not labelled".
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ignore_colors: Vec<[u8; 3]>,
    /// The classes in train-id order.
    #[serde(rename = "class")]
    pub classes: Vec<ClassEntry>,
}

fn default_ignore() -> Vec<u8> {
    vec![255]
}

/// Why a class table is not usable: the field and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("class table `{table}`: {field}: {message}")]
pub struct TableError {
    pub table: String,
    pub field: String,
    pub message: String,
}

/// Where a table could not be read from.
#[derive(Debug, thiserror::Error)]
pub enum TableFileError {
    #[error("class table {path}: {source}")]
    Read { path: std::path::PathBuf, source: std::io::Error },
    #[error("class table {path}: {message}")]
    Syntax { path: std::path::PathBuf, message: String },
    #[error("class table {path}: {source}")]
    Invalid { path: std::path::PathBuf, source: TableError },
}

impl ClassTable {
    /// Number of classes (the network's output channels).
    pub fn len(&self) -> usize {
        self.classes.len()
    }

    /// True for a table without classes (never valid).
    pub fn is_empty(&self) -> bool {
        self.classes.is_empty()
    }

    /// The class names in train-id order.
    pub fn names(&self) -> Vec<String> {
        self.classes.iter().map(|c| c.name.clone()).collect()
    }

    /// The value class `train_id` has in the label files.
    pub fn stored_value(&self, train_id: usize) -> u8 {
        self.classes[train_id].value.unwrap_or(train_id as u8)
    }

    /// The value written for a pixel without a class: the first ignored value.
    pub fn unlabeled_value(&self) -> u8 {
        self.ignore[0]
    }

    /// Colour of a train id; black for ignored pixels and anything else.
    pub fn color(&self, train_id: u8) -> [u8; 3] {
        self.classes.get(train_id as usize).map_or([0, 0, 0], |c| c.color)
    }

    /// Checks that the table can be decoded both ways: 1 to [`MAX_CLASSES`] classes with
    /// distinct non-empty names, distinct colours and distinct stored values, none of them
    /// ignored, and at least one ignored value.
    pub fn validate(&self) -> Result<(), TableError> {
        let bad = |field: String, message: String| TableError { table: self.name.clone(), field, message };
        if self.classes.is_empty() || self.classes.len() > MAX_CLASSES {
            return Err(bad("class".into(), format!("needs 1 to {MAX_CLASSES} classes, has {}", self.classes.len())));
        }
        if self.ignore.is_empty() {
            return Err(bad("ignore".into(), "needs at least one value (255 if the files have none)".into()));
        }
        let mut names = HashMap::new();
        let mut colors = HashMap::new();
        let mut values = HashMap::new();
        for (i, class) in self.classes.iter().enumerate() {
            let field = format!("class[{i}] ({:?})", class.name);
            if class.name.trim().is_empty() {
                return Err(bad(format!("class[{i}].name"), "is empty".into()));
            }
            if let Some(first) = names.insert(class.name.as_str(), i) {
                return Err(bad(field, format!("has the name of class[{first}]")));
            }
            if let Some(first) = colors.insert(class.color, i) {
                return Err(bad(field, format!("has the colour {:?} of class[{first}]", class.color)));
            }
            if self.ignore_colors.contains(&class.color) {
                return Err(bad(field, format!("has the colour {:?}, which `ignore_colors` lists", class.color)));
            }
            let value = self.stored_value(i);
            if let Some(first) = values.insert(value, i) {
                return Err(bad(field, format!("has the stored value {value} of class[{first}]")));
            }
            if self.ignore.contains(&value) {
                return Err(bad(field, format!("has the stored value {value}, which `ignore` lists")));
            }
        }
        Ok(())
    }

    /// Parses and validates a table from TOML text; `origin` names it in errors.
    pub fn from_toml(text: &str, origin: &Path) -> Result<ClassTable, TableFileError> {
        let mut table: ClassTable = toml::from_str(text)
            .map_err(|e| TableFileError::Syntax { path: origin.to_owned(), message: e.to_string() })?;
        if table.name.is_empty() {
            table.name = origin.file_stem().map_or_else(String::new, |s| s.to_string_lossy().into_owned());
        }
        table.validate().map_err(|source| TableFileError::Invalid { path: origin.to_owned(), source })?;
        Ok(table)
    }

    /// Reads a table from a TOML file.
    pub fn load(path: &Path) -> Result<ClassTable, TableFileError> {
        let text =
            crate::limits::read_text(path).map_err(|source| TableFileError::Read { path: path.to_owned(), source })?;
        ClassTable::from_toml(&text, path)
    }

    /// The table as TOML (what [`ClassTable::load`] reads).
    pub fn to_toml(&self) -> String {
        toml::to_string(self).expect("a class table serialises")
    }

    /// Cityscapes' 19 evaluated classes, stored as label ids 0..=33 (`*_labelIds.png`); the
    /// other 15 label ids are not evaluated (facts §8).
    pub fn cityscapes() -> ClassTable {
        let evaluated: Vec<u8> = crate::labels::CLASSES.iter().map(|c| c.label_id).collect();
        ClassTable {
            name: "cityscapes".into(),
            ignore: (0..=crate::labels::MAX_LABEL_ID).filter(|id| !evaluated.contains(id)).collect(),
            ignore_colors: vec![[0, 0, 0]],
            classes: crate::labels::CLASSES
                .iter()
                .map(|c| ClassEntry { name: c.name.into(), color: c.color, value: Some(c.label_id) })
                .collect(),
        }
    }

    /// Pascal VOC 2012: background and 20 object classes stored as indices 0..=20 of palette
    /// PNGs in the VOC colour map, 255 (the colour 224,224,192) on object boundaries ignored.
    pub fn voc() -> ClassTable {
        ClassTable {
            name: "voc".into(),
            ignore: vec![255],
            ignore_colors: vec![voc_color(255)],
            classes: VOC_NAMES
                .iter()
                .enumerate()
                .map(|(i, name)| ClassEntry { name: (*name).into(), color: voc_color(i as u8), value: None })
                .collect(),
        }
    }

    /// ADE20K SceneParsing (ADEChallengeData2016): 150 classes stored as 1..=150, 0 is "other"
    /// and ignored. Colours from the VOC colour map (of the stored value), as the data set ships
    /// none.
    pub fn ade20k() -> ClassTable {
        ClassTable {
            name: "ade20k".into(),
            ignore: vec![0],
            ignore_colors: vec![[0, 0, 0]],
            classes: ADE20K_NAMES
                .iter()
                .enumerate()
                .map(|(i, name)| ClassEntry {
                    name: (*name).into(),
                    color: voc_color(i as u8 + 1),
                    value: Some(i as u8 + 1),
                })
                .collect(),
        }
    }
}

/// Colour `index` of the Pascal VOC colour map (the palette of its label PNGs): the bits of
/// the index spread over the high bits of red, green and blue.
pub fn voc_color(index: u8) -> [u8; 3] {
    let mut rgb = [0u8; 3];
    let mut c = index;
    for shift in (0..8).rev() {
        for (channel, value) in rgb.iter_mut().enumerate() {
            *value |= ((c >> channel) & 1) << shift;
        }
        c >>= 3;
    }
    rgb
}

/// How to turn label values into train ids, compiled from a table.
#[derive(Debug, Clone)]
pub struct LabelDecoder {
    /// The table's name, for errors.
    pub table: String,
    /// Train id of every stored value: a class, [`IGNORE`], or `None` for values the table
    /// does not know.
    values: [Option<u8>; 256],
    /// Train id of every known colour.
    colors: HashMap<[u8; 3], u8>,
    /// What the values are called in errors ("label id", "train id", "class index").
    pub value_name: &'static str,
    /// The valid values, in words, for errors.
    pub valid: String,
}

impl LabelDecoder {
    /// The decoder of `table`'s stored values and colours.
    pub fn new(table: &ClassTable) -> LabelDecoder {
        let mut values = [None; 256];
        for &v in &table.ignore {
            values[v as usize] = Some(IGNORE);
        }
        let mut colors: HashMap<[u8; 3], u8> = table.ignore_colors.iter().map(|&c| (c, IGNORE)).collect();
        for (i, class) in table.classes.iter().enumerate() {
            values[table.stored_value(i) as usize] = Some(i as u8);
            colors.insert(class.color, i as u8);
        }
        let valid = describe_values(&values);
        LabelDecoder { table: table.name.clone(), values, colors, value_name: "value", valid }
    }

    /// A decoder of files that store train ids directly (`0..n` and 255), such as Cityscapes'
    /// `*_labelTrainIds.png`.
    pub fn train_ids(table: &ClassTable) -> LabelDecoder {
        let mut values = [None; 256];
        values[IGNORE as usize] = Some(IGNORE);
        for (i, value) in values.iter_mut().enumerate().take(table.len()) {
            *value = Some(i as u8);
        }
        let colors = table.classes.iter().enumerate().map(|(i, c)| (c.color, i as u8)).collect();
        let valid = describe_values(&values);
        LabelDecoder { table: table.name.clone(), values, colors, value_name: "train id", valid }
    }

    /// The train id of a stored value, `None` if the table does not know it.
    pub fn value(&self, stored: u8) -> Option<u8> {
        self.values[stored as usize]
    }

    /// The train id of a colour, `None` if the table does not know it.
    pub fn color(&self, rgb: [u8; 3]) -> Option<u8> {
        self.colors.get(&rgb).copied()
    }
}

/// `0..=20, 255` style summary of the known values.
fn describe_values(values: &[Option<u8>; 256]) -> String {
    let mut parts = Vec::new();
    let mut i = 0;
    while i < 256 {
        if values[i].is_some() {
            let start = i;
            while i + 1 < 256 && values[i + 1].is_some() {
                i += 1;
            }
            parts.push(if start == i { format!("{start}") } else { format!("{start}..={i}") });
        }
        i += 1;
    }
    parts.join(", ")
}

/// Pascal VOC 2012's classes in index order.
pub const VOC_NAMES: [&str; 21] = [
    "background",
    "aeroplane",
    "bicycle",
    "bird",
    "boat",
    "bottle",
    "bus",
    "car",
    "cat",
    "chair",
    "cow",
    "diningtable",
    "dog",
    "horse",
    "motorbike",
    "person",
    "pottedplant",
    "sheep",
    "sofa",
    "train",
    "tvmonitor",
];

/// ADE20K SceneParsing's 150 classes in the order of `objectInfo150` (stored value − 1).
pub const ADE20K_NAMES: [&str; 150] = [
    "wall",
    "building",
    "sky",
    "floor",
    "tree",
    "ceiling",
    "road",
    "bed",
    "windowpane",
    "grass",
    "cabinet",
    "sidewalk",
    "person",
    "earth",
    "door",
    "table",
    "mountain",
    "plant",
    "curtain",
    "chair",
    "car",
    "water",
    "painting",
    "sofa",
    "shelf",
    "house",
    "sea",
    "mirror",
    "rug",
    "field",
    "armchair",
    "seat",
    "fence",
    "desk",
    "rock",
    "wardrobe",
    "lamp",
    "bathtub",
    "railing",
    "cushion",
    "base",
    "box",
    "column",
    "signboard",
    "chest of drawers",
    "counter",
    "sand",
    "sink",
    "skyscraper",
    "fireplace",
    "refrigerator",
    "grandstand",
    "path",
    "stairs",
    "runway",
    "case",
    "pool table",
    "pillow",
    "screen door",
    "stairway",
    "river",
    "bridge",
    "bookcase",
    "blind",
    "coffee table",
    "toilet",
    "flower",
    "book",
    "hill",
    "bench",
    "countertop",
    "stove",
    "palm",
    "kitchen island",
    "computer",
    "swivel chair",
    "boat",
    "bar",
    "arcade machine",
    "hovel",
    "bus",
    "towel",
    "light",
    "truck",
    "tower",
    "chandelier",
    "awning",
    "streetlight",
    "booth",
    "television receiver",
    "airplane",
    "dirt track",
    "apparel",
    "pole",
    "land",
    "bannister",
    "escalator",
    "ottoman",
    "bottle",
    "buffet",
    "poster",
    "stage",
    "van",
    "ship",
    "fountain",
    "conveyer belt",
    "canopy",
    "washer",
    "plaything",
    "swimming pool",
    "stool",
    "barrel",
    "basket",
    "waterfall",
    "tent",
    "bag",
    "minibike",
    "cradle",
    "oven",
    "ball",
    "food",
    "step",
    "tank",
    "trade name",
    "microwave",
    "pot",
    "animal",
    "bicycle",
    "lake",
    "dishwasher",
    "screen",
    "blanket",
    "sculpture",
    "hood",
    "sconce",
    "vase",
    "traffic light",
    "tray",
    "ashcan",
    "fan",
    "pier",
    "crt screen",
    "plate",
    "monitor",
    "bulletin board",
    "shower",
    "radiator",
    "glass",
    "clock",
    "flag",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn built_in_tables_are_valid_and_decode_their_values() {
        for table in [ClassTable::cityscapes(), ClassTable::voc(), ClassTable::ade20k()] {
            table.validate().unwrap();
        }
        let cs = LabelDecoder::new(&ClassTable::cityscapes());
        assert_eq!(cs.value(7), Some(0), "road");
        assert_eq!(cs.value(33), Some(18), "bicycle");
        assert_eq!(cs.value(0), Some(IGNORE), "unlabeled");
        assert_eq!(cs.value(34), None);
        assert_eq!(cs.valid, "0..=33");
        let voc = LabelDecoder::new(&ClassTable::voc());
        assert_eq!((voc.value(20), voc.value(255), voc.value(21)), (Some(20), Some(IGNORE), None));
        assert_eq!(voc.color([224, 224, 192]), Some(IGNORE));
        assert_eq!(voc.color([128, 0, 0]), Some(1), "aeroplane");
        assert_eq!(voc.valid, "0..=20, 255");
        let ade = ClassTable::ade20k();
        assert_eq!(ade.len(), 150);
        let ade_decoder = LabelDecoder::new(&ade);
        assert_eq!(
            (ade_decoder.value(0), ade_decoder.value(1), ade_decoder.value(150)),
            (Some(IGNORE), Some(0), Some(149))
        );
        assert_eq!(ade_decoder.value(151), None);
        assert_eq!(ade.stored_value(149), 150);
        assert_eq!(ade.unlabeled_value(), 0);
    }

    #[test]
    fn the_voc_colour_map() {
        assert_eq!(voc_color(0), [0, 0, 0]);
        assert_eq!(voc_color(1), [128, 0, 0]);
        assert_eq!(voc_color(2), [0, 128, 0]);
        assert_eq!(voc_color(7), [128, 128, 128]);
        assert_eq!(voc_color(15), [192, 128, 128], "person");
        assert_eq!(voc_color(255), [224, 224, 192]);
    }

    #[test]
    fn a_table_file_round_trips_and_bad_tables_name_the_field() {
        let text = "name = \"mine\"\n[[class]]\nname = \"sea\"\ncolor = [0, 0, 255]\n[[class]]\nname = \"land\"\ncolor = [0, 255, 0]\nvalue = 7\n";
        let table = ClassTable::from_toml(text, Path::new("mine.toml")).unwrap();
        assert_eq!(
            (table.len(), table.stored_value(0), table.stored_value(1), table.unlabeled_value()),
            (2, 0, 7, 255)
        );
        assert_eq!(ClassTable::from_toml(&table.to_toml(), Path::new("x.toml")).unwrap(), table);
        let decoder = LabelDecoder::new(&table);
        assert_eq!((decoder.value(0), decoder.value(7), decoder.value(1)), (Some(0), Some(1), None));

        let duplicate = text.replace("[0, 255, 0]", "[0, 0, 255]");
        let err = ClassTable::from_toml(&duplicate, Path::new("mine.toml")).unwrap_err().to_string();
        assert!(err.contains("mine.toml") && err.contains("class[1]") && err.contains("colour"), "{err}");
        let ignored = text.replace("value = 7", "value = 255");
        let err = ClassTable::from_toml(&ignored, Path::new("mine.toml")).unwrap_err().to_string();
        assert!(err.contains("stored value 255") && err.contains("ignore"), "{err}");
        let unknown = text.replace("name = \"sea\"", "name = \"sea\"\ncolour = [1, 2, 3]");
        let err = ClassTable::from_toml(&unknown, Path::new("mine.toml")).unwrap_err().to_string();
        assert!(err.contains("colour"), "{err}");
        let err = ClassTable::from_toml("name = \"none\"\nclass = []\n", Path::new("n.toml")).unwrap_err().to_string();
        assert!(err.contains("1 to 255 classes"), "{err}");
    }
}
