//! Writing predictions in a data set's own terms (its class table): as a colour PNG in the
//! table's colours, as a PNG of the values its label files store (label ids for Cityscapes, the
//! results format the official evaluation reads; class indices for VOC; 1..=150 for ADE20K) and
//! as an overlay of the colours on the image.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::classes::ClassTable;
use crate::data::DataError;
use crate::png::write_png;

/// How a prediction is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PredictionFormat {
    /// RGB in the table's colours.
    Color,
    /// Single-channel stored values (the data set's label encoding).
    Labelids,
    /// The colours blended over the image.
    Overlay,
}

/// The legend of the colour and overlay predictions: the colour swatch, train id and name of
/// each class of `ids` (the classes a set of predictions shows), as SVG (written beside the
/// predictions as `legend.svg`); in columns of at most 40 classes.
pub fn legend_svg(table: &ClassTable, ids: &[usize]) -> String {
    const ROWS: usize = 40;
    const COLUMN_WIDTH: usize = 190;
    let ids: Vec<usize> = ids.iter().copied().filter(|&i| i < table.len()).collect();
    let columns = ids.len().div_ceil(ROWS).max(1);
    let rows = ids.len().clamp(1, ROWS);
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{}\" height=\"{}\" font-family=\"sans-serif\" \
         font-size=\"12\">\n",
        COLUMN_WIDTH * columns - 20,
        20 * rows + 10
    );
    for (slot, &i) in ids.iter().enumerate() {
        let class = &table.classes[i];
        let [r, g, b] = class.color;
        let (x, y) = (5 + COLUMN_WIDTH * (slot / ROWS), 5 + 20 * (slot % ROWS));
        svg.push_str(&format!(
            "<rect x=\"{x}\" y=\"{y}\" width=\"30\" height=\"15\" fill=\"rgb({r},{g},{b})\" stroke=\"#333\"/>\n\
             <text x=\"{}\" y=\"{}\">{i} {}</text>\n",
            x + 37,
            y + 12,
            escape_xml(&class.name)
        ));
    }
    svg.push_str("</svg>\n");
    svg
}

/// `text` with the XML special characters escaped, for SVG text and attributes.
pub fn escape_xml(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// `[H, W]` train ids to `[H, W, 3]` colours (black where there is no class).
pub fn colorize(table: &ClassTable, train_ids: &[u8]) -> Vec<u8> {
    train_ids.iter().flat_map(|&t| table.color(t)).collect()
}

/// `[H, W]` train ids to the values the data set's label files store; anything that is not a
/// class becomes the table's first ignored value (Cityscapes: 0, `unlabeled`).
pub fn to_stored_values(table: &ClassTable, train_ids: &[u8]) -> Vec<u8> {
    let lookup: Vec<u8> = (0..table.len()).map(|c| table.stored_value(c)).collect();
    train_ids.iter().map(|&t| lookup.get(t as usize).copied().unwrap_or(table.unlabeled_value())).collect()
}

/// Blends the colours of `train_ids` over `image` (`[H, W, 3]`) with weight `alpha`.
pub fn overlay(table: &ClassTable, image: &[u8], train_ids: &[u8], alpha: f32) -> Vec<u8> {
    assert_eq!(image.len(), 3 * train_ids.len(), "image and prediction sizes differ");
    image
        .chunks_exact(3)
        .zip(train_ids)
        .flat_map(|(px, &t)| {
            let c = table.color(t);
            [0, 1, 2].map(|i| (px[i] as f32 * (1.0 - alpha) + c[i] as f32 * alpha).round() as u8)
        })
        .collect()
}

/// Writes a `width x height` prediction of train ids to `path` in `format`; `image`
/// (`[H, W, 3]`) is needed for [`PredictionFormat::Overlay`].
pub fn write_prediction(
    table: &ClassTable,
    path: &Path,
    width: u32,
    height: u32,
    train_ids: &[u8],
    format: PredictionFormat,
    image: Option<&[u8]>,
) -> Result<(), DataError> {
    match format {
        PredictionFormat::Color => write_png(path, width, height, image::ColorType::Rgb8, &colorize(table, train_ids)),
        PredictionFormat::Labelids => {
            write_png(path, width, height, image::ColorType::L8, &to_stored_values(table, train_ids))
        }
        PredictionFormat::Overlay => {
            let image = image.expect("an overlay needs the image");
            write_png(path, width, height, image::ColorType::Rgb8, &overlay(table, image, train_ids, 0.5))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colours_stored_values_and_overlay() {
        let cs = ClassTable::cityscapes();
        assert_eq!(colorize(&cs, &[0, 10, 255]), [128, 64, 128, 70, 130, 180, 0, 0, 0]);
        assert_eq!(to_stored_values(&cs, &[0, 13, 18, 255]), [7, 26, 33, 0]);
        assert_eq!(overlay(&cs, &[0, 0, 0, 255, 255, 255], &[13, 255], 0.5), [0, 0, 71, 128, 128, 128]);
        assert_eq!(to_stored_values(&ClassTable::voc(), &[0, 20, 255]), [0, 20, 255]);
        assert_eq!(to_stored_values(&ClassTable::ade20k(), &[0, 149, 255]), [1, 150, 0]);
    }

    #[test]
    fn the_legend_names_every_class_in_columns() {
        let table = ClassTable::ade20k();
        let svg = legend_svg(&table, &(0..table.len()).collect::<Vec<_>>());
        assert_eq!(svg.matches("<rect").count(), 150);
        assert!(svg.contains("149 flag") && svg.contains("width=\"740\""), "four columns of 40");
    }
}
