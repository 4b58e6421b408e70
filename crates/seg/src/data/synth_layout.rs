//! Writing the synthetic scenes (see `synthetic`) in the layout and encoding of each data set
//! format, so that every reader runs end to end on the CPU:
//!
//! - `cityscapes`: `leftImg8bit/…_leftImg8bit.png`, `gtFine/…_gtFine_labelIds.png` and
//!   `…_gtFine_color.png`, label ids as drawn.
//! - `folder`: `classes.toml` with the 12 drawn classes (Cityscapes names and colours),
//!   `images/<split>/<city>/<stem>.{png,jpg}` (PNG for train, JPEG for val) and
//!   `labels/<split>/<city>/<stem>.png`: index PNGs for train, colour PNGs for val, so that both
//!   label encodings are read.
//! - `voc`: `JPEGImages/<id>.jpg`, palette PNGs in `SegmentationClass/` (the first half of
//!   train, and val) with 255 on the boundaries of people and cars as VOC has them, grey PNGs of
//!   every train image in `SegmentationClassAug/`, and the lists
//!   `ImageSets/Segmentation/{train,val}.txt` and `ImageSets/SegmentationAug/train_aug.txt` (in
//!   the DeepLab form `/JPEGImages/<id>.jpg /SegmentationClassAug/<id>.png`). VOC has no street
//!   classes: the scenes' classes are stored as VOC indices (car, person and vegetation as car,
//!   person and pottedplant; the rest in order), so the names do not describe the scenes.
//! - `ade20k`: `images/{training,validation}/ADE_*.jpg` and grey
//!   `annotations/{training,validation}/ADE_*.png` holding the ADE20K class of the same name
//!   (vegetation as tree, terrain as grass, traffic sign as signboard) + 1.

use std::path::{Path, PathBuf};

use rayon::prelude::*;

use super::error::DataError;
use super::format::DataFormat;
use super::seed::mix_seed;
use super::synthetic::{Scene, SynthConfig, DRAWN_LABEL_IDS};
use crate::classes::{voc_color, ClassEntry, ClassTable, ADE20K_NAMES};
use crate::labels::{CLASSES, LABEL_TO_TRAIN};
use crate::png::{write_jpeg, write_palette_png, write_png};

/// City folder names of the synthetic splits (no underscores: ids are `<city>_<seq>_<frame>`).
const CITIES: [&str; 2] = ["synthberg", "synthdorf"];

/// VOC index of each drawn class, in [`DRAWN_LABEL_IDS`] order.
const VOC_INDEX: [u8; 12] = [0, 1, 2, 3, 4, 5, 6, 16, 8, 9, 15, 7];

/// ADE20K name of each drawn class, in [`DRAWN_LABEL_IDS`] order.
const ADE20K_NAME: [&str; 12] = [
    "road",
    "sidewalk",
    "building",
    "wall",
    "pole",
    "traffic light",
    "signboard",
    "tree",
    "grass",
    "sky",
    "person",
    "car",
];

/// The class table of the synthetic folder data set: the drawn classes with their Cityscapes
/// names and colours, stored as 0..12.
pub fn folder_table() -> ClassTable {
    ClassTable {
        name: "synthetic".into(),
        ignore: vec![255],
        ignore_colors: vec![[0, 0, 0]],
        classes: DRAWN_LABEL_IDS
            .iter()
            .map(|&id| {
                let class = &CLASSES[LABEL_TO_TRAIN[id as usize] as usize];
                ClassEntry { name: class.name.into(), color: class.color, value: None }
            })
            .collect(),
    }
}

/// The stored value of every Cityscapes label id the generator draws, in `format`.
fn stored_values(format: DataFormat) -> [u8; 256] {
    let mut map = [0u8; 256];
    for (i, &id) in DRAWN_LABEL_IDS.iter().enumerate() {
        map[id as usize] = match format {
            DataFormat::Cityscapes => id,
            DataFormat::Folder => i as u8,
            DataFormat::Voc => VOC_INDEX[i],
            DataFormat::Ade20k => {
                let k = ADE20K_NAMES.iter().position(|n| *n == ADE20K_NAME[i]).expect("an ADE20K class name");
                k as u8 + 1
            }
        };
    }
    map
}

/// Writes `config.train` and `config.val` scenes under `out` in the Cityscapes layout
/// (`leftImg8bit/<split>/<city>/…_leftImg8bit.png`, `gtFine/<split>/<city>/…_gtFine_labelIds.png`
/// and `…_gtFine_color.png`), in parallel. Returns the image paths written. Other layouts:
/// [`generate_as`].
pub fn generate(out: &Path, config: &SynthConfig) -> Result<Vec<PathBuf>, DataError> {
    generate_as(out, config, super::DataFormat::Cityscapes)
}

/// Writes `config.train` and `config.val` scenes under `out` in `format` (see the module
/// documentation), in parallel. Returns the image paths written.
pub fn generate_as(out: &Path, config: &SynthConfig, format: DataFormat) -> Result<Vec<PathBuf>, DataError> {
    let map = stored_values(format);
    let jobs: Vec<(&str, usize)> =
        (0..config.train).map(|i| ("train", i)).chain((0..config.val).map(|i| ("val", i))).collect();
    let images = jobs
        .par_iter()
        .map(|&(split, index)| {
            let split_tag = if split == "train" { 1 } else { 2 };
            let seed = mix_seed(config.seed, split_tag, index as u64);
            let scene = config.task.render(config.width, config.height, seed);
            let stored: Vec<u8> = scene.label.iter().map(|&l| map[l as usize]).collect();
            let writer = Writer { out, config, split, index, scene: &scene, stored };
            match format {
                DataFormat::Cityscapes => writer.cityscapes(),
                DataFormat::Folder => writer.folder(),
                DataFormat::Voc => writer.voc(),
                DataFormat::Ade20k => writer.ade20k(),
            }
        })
        .collect::<Result<Vec<_>, _>>()?;
    match format {
        DataFormat::Folder => {
            crate::atomic::write_atomic(&out.join("classes.toml"), folder_table().to_toml().as_bytes())
                .map_err(DataError::io(out.join("classes.toml")))?
        }
        DataFormat::Voc => write_voc_lists(out, config)?,
        _ => {}
    }
    Ok(images)
}

/// One scene to write.
struct Writer<'a> {
    out: &'a Path,
    config: &'a SynthConfig,
    split: &'a str,
    index: usize,
    scene: &'a Scene,
    /// The labels in the format's stored values.
    stored: Vec<u8>,
}

impl Writer<'_> {
    fn size(&self) -> (u32, u32) {
        (self.config.width, self.config.height)
    }

    fn dir(&self, path: PathBuf) -> Result<PathBuf, DataError> {
        std::fs::create_dir_all(&path).map_err(DataError::io(path.as_path()))?;
        Ok(path)
    }

    fn cityscapes(&self) -> Result<PathBuf, DataError> {
        let (w, h) = self.size();
        let city = CITIES[self.index % CITIES.len()];
        let stem = format!("{city}_{:06}_{:06}", self.index / CITIES.len(), 19);
        let image_dir = self.dir(self.out.join("leftImg8bit").join(self.split).join(city))?;
        let label_dir = self.dir(self.out.join("gtFine").join(self.split).join(city))?;
        let image = image_dir.join(format!("{stem}_leftImg8bit.png"));
        write_png(&image, w, h, image::ColorType::Rgb8, &self.scene.rgb)?;
        let labels = label_dir.join(format!("{stem}_gtFine_labelIds.png"));
        write_png(&labels, w, h, image::ColorType::L8, &self.stored)?;
        let table = ClassTable::cityscapes();
        let color = crate::palette::colorize(
            &table,
            &self.scene.label.iter().map(|&l| LABEL_TO_TRAIN[l as usize]).collect::<Vec<_>>(),
        );
        write_png(&label_dir.join(format!("{stem}_gtFine_color.png")), w, h, image::ColorType::Rgb8, &color)?;
        Ok(image)
    }

    fn folder(&self) -> Result<PathBuf, DataError> {
        let (w, h) = self.size();
        let city = CITIES[self.index % CITIES.len()];
        let stem = format!("scene{:04}", self.index);
        let image_dir = self.dir(self.out.join("images").join(self.split).join(city))?;
        let label_dir = self.dir(self.out.join("labels").join(self.split).join(city))?;
        let label = label_dir.join(format!("{stem}.png"));
        let image = if self.split == "train" {
            let image = image_dir.join(format!("{stem}.png"));
            write_png(&image, w, h, image::ColorType::Rgb8, &self.scene.rgb)?;
            write_png(&label, w, h, image::ColorType::L8, &self.stored)?;
            image
        } else {
            let image = image_dir.join(format!("{stem}.jpg"));
            write_jpeg(&image, w, h, &self.scene.rgb)?;
            let color = crate::palette::colorize(&folder_table(), &self.stored);
            write_png(&label, w, h, image::ColorType::Rgb8, &color)?;
            image
        };
        Ok(image)
    }

    fn voc_id(&self) -> String {
        voc_id(self.split, self.index)
    }

    fn voc(&self) -> Result<PathBuf, DataError> {
        let (w, h) = self.size();
        let id = self.voc_id();
        let image = self.dir(self.out.join("JPEGImages"))?.join(format!("{id}.jpg"));
        write_jpeg(&image, w, h, &self.scene.rgb)?;
        let mut labels = self.stored.clone();
        mark_boundaries(&mut labels, w as usize, &[VOC_INDEX[10], VOC_INDEX[11]]);
        if self.split == "val" || self.index < self.config.train.div_ceil(2) {
            let palette: Vec<[u8; 3]> = (0..=255).map(voc_color).collect();
            let path = self.dir(self.out.join("SegmentationClass"))?.join(format!("{id}.png"));
            write_palette_png(&path, w, h, &labels, &palette)?;
        }
        if self.split == "train" {
            let path = self.dir(self.out.join("SegmentationClassAug"))?.join(format!("{id}.png"));
            write_png(&path, w, h, image::ColorType::L8, &labels)?;
        }
        Ok(image)
    }

    fn ade20k(&self) -> Result<PathBuf, DataError> {
        let (w, h) = self.size();
        let (folder, tag) = if self.split == "train" { ("training", "train") } else { ("validation", "val") };
        let stem = format!("ADE_{tag}_{:08}", self.index + 1);
        let image = self.dir(self.out.join("images").join(folder))?.join(format!("{stem}.jpg"));
        write_jpeg(&image, w, h, &self.scene.rgb)?;
        let label = self.dir(self.out.join("annotations").join(folder))?.join(format!("{stem}.png"));
        write_png(&label, w, h, image::ColorType::L8, &self.stored)?;
        Ok(image)
    }
}

/// The VOC id of scene `index` of `split`.
fn voc_id(split: &str, index: usize) -> String {
    format!("{}_{:06}", if split == "train" { 2007 } else { 2008 }, index + 1)
}

/// Sets 255 on the pixels of `classes` that touch another class (VOC's "void" boundaries).
fn mark_boundaries(labels: &mut [u8], width: usize, classes: &[u8]) {
    let original = labels.to_vec();
    let height = original.len() / width;
    for y in 0..height {
        for x in 0..width {
            let v = original[y * width + x];
            if !classes.contains(&v) {
                continue;
            }
            let differs = |xx: usize, yy: usize| original[yy * width + xx] != v;
            if (x > 0 && differs(x - 1, y))
                || (x + 1 < width && differs(x + 1, y))
                || (y > 0 && differs(x, y - 1))
                || (y + 1 < height && differs(x, y + 1))
            {
                labels[y * width + x] = 255;
            }
        }
    }
}

/// The split lists of the synthetic VOC set.
fn write_voc_lists(out: &Path, config: &SynthConfig) -> Result<(), DataError> {
    let list = |ids: Vec<String>| ids.into_iter().map(|id| id + "\n").collect::<String>();
    let segmentation = out.join("ImageSets/Segmentation");
    let aug = out.join("ImageSets/SegmentationAug");
    for dir in [&segmentation, &aug] {
        std::fs::create_dir_all(dir).map_err(DataError::io(dir.as_path()))?;
    }
    let files = [
        (segmentation.join("train.txt"), list((0..config.train.div_ceil(2)).map(|i| voc_id("train", i)).collect())),
        (segmentation.join("val.txt"), list((0..config.val).map(|i| voc_id("val", i)).collect())),
        (
            aug.join("train_aug.txt"),
            list(
                (0..config.train)
                    .map(|i| voc_id("train", i))
                    .map(|id| format!("/JPEGImages/{id}.jpg /SegmentationClassAug/{id}.png"))
                    .collect(),
            ),
        ),
    ];
    for (path, text) in files {
        crate::atomic::write_atomic(&path, text.as_bytes()).map_err(DataError::io(path.as_path()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_drawn_class_has_a_distinct_value_in_every_format() {
        for format in [DataFormat::Cityscapes, DataFormat::Folder, DataFormat::Voc, DataFormat::Ade20k] {
            let map = stored_values(format);
            let mut values: Vec<u8> = DRAWN_LABEL_IDS.iter().map(|&id| map[id as usize]).collect();
            values.sort_unstable();
            values.dedup();
            assert_eq!(values.len(), 12, "{format}");
        }
        assert_eq!(stored_values(DataFormat::Ade20k)[26], 21, "car is ADE20K class 20, stored 21");
        folder_table().validate().unwrap();
    }

    #[test]
    fn boundaries_of_objects_are_void() {
        let mut labels = vec![0, 0, 0, 0, 7, 7, 7, 0, 0, 7, 7, 7, 0, 0, 0, 0];
        mark_boundaries(&mut labels, 4, &[7]);
        assert_eq!(labels, [0, 0, 0, 0, 255, 255, 255, 0, 0, 255, 255, 255, 0, 0, 0, 0]);
    }
}
