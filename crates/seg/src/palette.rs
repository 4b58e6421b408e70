//! Writing predictions (facts §8): as a colour PNG in the Cityscapes palette, as a label-id PNG
//! (the Cityscapes results format the official evaluation reads: train ids mapped back to
//! label ids, one channel) and as an overlay of the colours on the image.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::data::DataError;
use crate::labels::{label_id, CLASSES};
use crate::png::write_png;

/// How a prediction is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PredictionFormat {
    /// RGB in the Cityscapes colours.
    Color,
    /// Single-channel label ids (the results format).
    Labelids,
    /// The colours blended over the image.
    Overlay,
}

/// Colour of a train id; black for anything else (ignored pixels).
pub fn color(train_id: u8) -> [u8; 3] {
    CLASSES.get(train_id as usize).map_or([0, 0, 0], |c| c.color)
}

/// The legend of the colour and overlay predictions: each class's colour swatch and name, as
/// SVG (written beside the predictions as `legend.svg`).
pub fn legend_svg() -> String {
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"170\" height=\"{}\" font-family=\"sans-serif\" \
         font-size=\"12\">\n",
        20 * CLASSES.len() + 10
    );
    for (i, class) in CLASSES.iter().enumerate() {
        let [r, g, b] = class.color;
        let y = 5 + 20 * i;
        svg.push_str(&format!(
            "<rect x=\"5\" y=\"{y}\" width=\"30\" height=\"15\" fill=\"rgb({r},{g},{b})\" stroke=\"#333\"/>\n\
             <text x=\"42\" y=\"{}\">{} {}</text>\n",
            y + 12,
            class.train_id,
            class.name
        ));
    }
    svg.push_str("</svg>\n");
    svg
}

/// `[H, W]` train ids to `[H, W, 3]` colours.
pub fn colorize(train_ids: &[u8]) -> Vec<u8> {
    train_ids.iter().flat_map(|&t| color(t)).collect()
}

/// `[H, W]` train ids to label ids; anything that is not a class becomes 0 (`unlabeled`).
pub fn to_label_ids(train_ids: &[u8]) -> Vec<u8> {
    train_ids.iter().map(|&t| label_id(t).unwrap_or(0)).collect()
}

/// Blends the colours of `train_ids` over `image` (`[H, W, 3]`) with weight `alpha`.
pub fn overlay(image: &[u8], train_ids: &[u8], alpha: f32) -> Vec<u8> {
    assert_eq!(image.len(), 3 * train_ids.len(), "image and prediction sizes differ");
    image
        .chunks_exact(3)
        .zip(train_ids)
        .flat_map(|(px, &t)| {
            let c = color(t);
            [0, 1, 2].map(|i| (px[i] as f32 * (1.0 - alpha) + c[i] as f32 * alpha).round() as u8)
        })
        .collect()
}

/// Writes a `width x height` prediction of train ids to `path` in `format`; `image`
/// (`[H, W, 3]`) is needed for [`PredictionFormat::Overlay`].
pub fn write_prediction(
    path: &Path,
    width: u32,
    height: u32,
    train_ids: &[u8],
    format: PredictionFormat,
    image: Option<&[u8]>,
) -> Result<(), DataError> {
    match format {
        PredictionFormat::Color => write_png(path, width, height, image::ColorType::Rgb8, &colorize(train_ids)),
        PredictionFormat::Labelids => write_png(path, width, height, image::ColorType::L8, &to_label_ids(train_ids)),
        PredictionFormat::Overlay => {
            let image = image.expect("an overlay needs the image");
            write_png(path, width, height, image::ColorType::Rgb8, &overlay(image, train_ids, 0.5))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colours_label_ids_and_overlay() {
        assert_eq!(colorize(&[0, 10, 255]), [128, 64, 128, 70, 130, 180, 0, 0, 0]);
        assert_eq!(to_label_ids(&[0, 13, 18, 255]), [7, 26, 33, 0]);
        assert_eq!(overlay(&[0, 0, 0, 255, 255, 255], &[13, 255], 0.5), [0, 0, 71, 128, 128, 128]);
    }
}
