//! Pictures of a search, written at its end into `arch/`: the decoded cell (`cell.dot`,
//! `cell.svg`), the network path on the trellis (`path.svg`), and softmax(α) and normalised β
//! over the epochs as heat maps (`alpha.svg`, `beta.svg`), and how far each edge's softmax(α)
//! and each node's β are from uniform over the epochs (`entropy.svg`: normalised entropy, 1 =
//! uniform, 0 = decided).

use anyhow::{Context, Result};
use cell::Primitive;
use plotters::prelude::*;
use trellis::Architecture;

use crate::store::rundir::{write_file, RunDir};

/// `svg` rendered to RGBA pixels on white: (width, height, pixels).
fn rasterize(svg: &[u8]) -> Result<(u32, u32, Vec<u8>)> {
    use resvg::{tiny_skia, usvg};
    let tree = usvg::Tree::from_data(svg, svg_options()).context("parsing an SVG")?;
    let size = tree.size().to_int_size();
    let mut pixmap = tiny_skia::Pixmap::new(size.width(), size.height()).context("an empty picture")?;
    pixmap.fill(tiny_skia::Color::WHITE);
    resvg::render(&tree, tiny_skia::Transform::default(), &mut pixmap.as_mut());
    Ok((size.width(), size.height(), pixmap.take()))
}

/// `rgb` (`[height, width, 3]`) with the legend of `table` to its right, on white:
/// (width, height, RGB pixels); the canvas grows to fit the legend.
pub fn with_legend(
    table: &seg::ClassTable,
    ids: &[usize],
    width: u32,
    height: u32,
    rgb: &[u8],
) -> Result<(u32, u32, Vec<u8>)> {
    let (lw, lh, legend) = rasterize(seg::palette::legend_svg_of(table, ids).as_bytes())?;
    let (w, h) = (width + lw, height.max(lh));
    let mut out = vec![255u8; (w * h * 3) as usize];
    for y in 0..height as usize {
        let row = &rgb[y * width as usize * 3..(y + 1) * width as usize * 3];
        out[y * w as usize * 3..y * w as usize * 3 + row.len()].copy_from_slice(row);
    }
    for y in 0..lh as usize {
        for x in 0..lw as usize {
            let src = &legend[(y * lw as usize + x) * 4..(y * lw as usize + x) * 4 + 3];
            let at = (y * w as usize + width as usize + x) * 3;
            out[at..at + 3].copy_from_slice(src);
        }
    }
    Ok((w, h, out))
}

fn svg_options() -> &'static resvg::usvg::Options<'static> {
    static OPTIONS: std::sync::OnceLock<resvg::usvg::Options<'static>> = std::sync::OnceLock::new();
    OPTIONS.get_or_init(|| {
        let mut options = resvg::usvg::Options::default();
        let fonts = options.fontdb_mut();
        fonts.load_system_fonts();
        // Our SVGs ask for "sans-serif": map it to a sans face the system has (fontdb's
        // default, Arial, is rarely installed on Linux).
        let families: Vec<String> =
            fonts.faces().flat_map(|face| face.families.iter().map(|(name, _)| name.clone())).collect();
        let sans = ["DejaVu Sans", "Liberation Sans", "Noto Sans", "FreeSans"]
            .into_iter()
            .find(|wanted| families.iter().any(|f| f == wanted))
            .map(str::to_owned)
            .or_else(|| families.first().cloned());
        if let Some(sans) = sans {
            fonts.set_sans_serif_family(sans);
        }
        options
    })
}

/// Renders the SVG at `svg` to a PNG beside it (same name, `.png`), with resvg and the
/// system's fonts (loaded once).
pub fn png_beside(svg: &std::path::Path) -> Result<()> {
    let data = std::fs::read(svg).with_context(|| format!("reading {}", svg.display()))?;
    let (width, height, rgba) = rasterize(&data).with_context(|| format!("rendering {}", svg.display()))?;
    let png = std::path::PathBuf::from(svg).with_extension("png");
    seg::png::write_png(&png, width, height, image::ColorType::Rgba8, &rgba)
        .with_context(|| format!("writing {}", png.display()))
}

/// Writes every picture of a finished search, each SVG with a PNG beside it.
pub fn write_search_pictures(dir: &RunDir, architecture: &Architecture) -> Result<()> {
    write_svgs(dir, architecture)?;
    for name in ["cell", "path", "alpha", "beta", "entropy"] {
        png_beside(&dir.path(&format!("arch/{name}.svg")))?;
    }
    Ok(())
}

fn write_svgs(dir: &RunDir, architecture: &Architecture) -> Result<()> {
    write_file(&dir.path("arch/cell.dot"), cell_dot(architecture).as_bytes())?;
    write_file(&dir.path("arch/cell.svg"), cell_svg(architecture).as_bytes())?;
    write_file(&dir.path("arch/path.svg"), path_svg(architecture).as_bytes())?;
    let history = crate::observe::arch_history::read(dir.root())?;
    let alpha: Vec<Vec<f64>> = history
        .iter()
        .map(|h| {
            h["alpha"]
                .as_array()
                .into_iter()
                .flatten()
                .flat_map(|row| row.as_array().into_iter().flatten().filter_map(|v| v.as_f64()))
                .collect()
        })
        .collect();
    let alpha_rows: Vec<String> = (0..alpha.first().map_or(0, |a| a.len() / 8))
        .flat_map(|edge| Primitive::ALL.map(move |p| format!("edge {edge} {p}")))
        .collect();
    heat_map(&dir.path("arch/alpha.svg"), "softmax(α) per edge and op over the epochs", &alpha_rows, &alpha)?;
    let beta: Vec<Vec<f64>> = history
        .iter()
        .map(|h| {
            h["beta"]
                .as_array()
                .into_iter()
                .flatten()
                .flat_map(|layer| {
                    layer
                        .as_array()
                        .into_iter()
                        .flatten()
                        .flat_map(|level| level.as_array().into_iter().flatten().filter_map(|v| v.as_f64()))
                })
                .collect()
        })
        .collect();
    let layers = beta.first().map_or(0, |b| b.len() / 12);
    let beta_rows: Vec<String> = (0..layers)
        .flat_map(|l| {
            (0..4).flat_map(move |i| ["finer", "same", "coarser"].map(move |d| format!("layer {l} level {i} {d}")))
        })
        .collect();
    heat_map(&dir.path("arch/beta.svg"), "normalised β per move over the epochs", &beta_rows, &beta)?;
    // Entropies: the edges' rows, then every existing node's (null where a node is absent).
    fn numbers(v: &serde_json::Value) -> Vec<Option<f64>> {
        match v {
            serde_json::Value::Array(items) => items.iter().flat_map(numbers).collect(),
            other => vec![other.as_f64()],
        }
    }
    let columns: Vec<Vec<Option<f64>>> =
        history.iter().map(|h| [numbers(&h["alpha_entropy"]), numbers(&h["beta_entropy"])].concat()).collect();
    let edges = history.first().and_then(|h| h["alpha_entropy"].as_array()).map_or(0, |a| a.len());
    let present: Vec<usize> =
        (0..columns.first().map_or(0, |c| c.len())).filter(|&r| columns[0][r].is_some()).collect();
    let rows: Vec<String> = present
        .iter()
        .map(|&r| match r.checked_sub(edges) {
            None => format!("α edge {r}"),
            Some(node) => format!("β layer {} level {}", node / 4, node % 4),
        })
        .collect();
    let values: Vec<Vec<f64>> =
        columns.iter().map(|c| present.iter().map(|&r| c.get(r).copied().flatten().unwrap_or(0.0)).collect()).collect();
    heat_map(&dir.path("arch/entropy.svg"), "entropy / max per edge (α) and node (β) over the epochs", &rows, &values)
}

fn input_name(input: usize) -> String {
    match input {
        0 => "H(l-2)".into(),
        1 => "H(l-1)".into(),
        k => format!("block {}", k - 2),
    }
}

/// The decoded cell as a Graphviz graph.
pub fn cell_dot(architecture: &Architecture) -> String {
    let mut dot = String::from("digraph cell {\n  rankdir=LR;\n  node [shape=box];\n");
    for (b, edges) in architecture.cell.blocks().iter().enumerate() {
        for e in edges {
            dot.push_str(&format!("  \"{}\" -> \"block {b}\" [label=\"{}\"];\n", input_name(e.input), e.op));
        }
        dot.push_str(&format!("  \"block {b}\" -> \"output\";\n"));
    }
    dot.push_str("}\n");
    dot
}

/// The fill of an op's node: skips, convolutions and poolings apart at a glance.
fn op_fill(op: Primitive) -> u32 {
    match op {
        Primitive::SkipConnect => 0xfff3c4,
        Primitive::MaxPool3x3 | Primitive::AvgPool3x3 => 0xffdcc2,
        Primitive::None => 0xeeeeee,
        _ => 0xd7f0d2,
    }
}

/// The decoded cell laid out by the graph-layout engine (`observe::graph`), from left to right:
/// the two inputs, one node per kept edge's op, the blocks and their concatenation.
pub fn cell_drawing(architecture: &Architecture) -> crate::observe::graph::Drawing {
    use crate::observe::graph::{layered, Node};
    let blocks = architecture.cell.blocks();
    let mut nodes: Vec<Node> = (0..blocks.len() + 2)
        .map(|n| Node { label: input_name(n), fill: if n < 2 { 0xdde3f0 } else { 0xc9dcf7 } })
        .collect();
    let concat = nodes.len();
    nodes.push(Node { label: "concat".into(), fill: 0xe4e4e4 });
    let mut edges = Vec::new();
    for (b, kept) in blocks.iter().enumerate() {
        for e in kept {
            let op = nodes.len();
            nodes.push(Node { label: e.op.to_string(), fill: op_fill(e.op) });
            edges.push((e.input, op));
            edges.push((op, b + 2));
        }
        edges.push((b + 2, concat));
    }
    let skips = blocks.iter().flatten().filter(|e| e.op == Primitive::SkipConnect).count();
    let title = format!("decoded cell: {} blocks, {} edges ({} skip_connect)", blocks.len(), 2 * blocks.len(), skips);
    layered(&title, &nodes, &edges)
}

/// The decoded cell as SVG ([`cell_drawing`]).
pub fn cell_svg(architecture: &Architecture) -> String {
    cell_drawing(architecture).svg
}

/// The network path drawn on the trellis of layers (columns) and levels (rows).
pub fn path_svg(architecture: &Architecture) -> String {
    let levels = architecture.path.levels();
    let layers = levels.len() as i64;
    let (dx, dy, left, top) = (50, 50, 90, 40);
    let (w, h) = (left + dx * (layers + 1), top + dy * 4 + 30);
    let at = |column: i64, level: i64| (left + dx * column, top + dy * level);
    let mut svg = format!("<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" font-family=\"sans-serif\" font-size=\"11\">\n");
    for level in 0..4 {
        let (_, y) = at(0, level);
        svg.push_str(&format!("<text x=\"10\" y=\"{}\">rate {}</text>\n", y + 4, 4 << level));
        for column in 0..=layers {
            let (x, y) = at(column, level);
            svg.push_str(&format!("<circle cx=\"{x}\" cy=\"{y}\" r=\"4\" fill=\"#ccc\"/>\n"));
        }
    }
    let mut points = vec![at(0, 0)];
    points.extend(levels.iter().enumerate().map(|(l, &level)| at(l as i64 + 1, level as i64)));
    let polyline: Vec<String> = points.iter().map(|(x, y)| format!("{x},{y}")).collect();
    svg.push_str(&format!(
        "<polyline points=\"{}\" fill=\"none\" stroke=\"#c33\" stroke-width=\"3\"/>\n",
        polyline.join(" ")
    ));
    for (x, y) in &points {
        svg.push_str(&format!("<circle cx=\"{x}\" cy=\"{y}\" r=\"6\" fill=\"#c33\"/>\n"));
    }
    let (x, y) = at(0, 4);
    svg.push_str(&format!("<text x=\"{}\" y=\"{y}\" text-anchor=\"middle\">stem</text>\n", x));
    for l in 0..layers {
        let (x, y) = at(l + 1, 4);
        svg.push_str(&format!("<text x=\"{x}\" y=\"{y}\" text-anchor=\"middle\">{l}</text>\n"));
    }
    svg.push_str("</svg>\n");
    svg
}

/// A heat map: one row per label (every row labelled), one column per epoch, coloured on the
/// data's own range (white = its minimum, dark blue = its maximum, shown in a colour bar), so
/// that softmax(α) near 1/8 is not a blank picture.
fn heat_map(path: &std::path::Path, title: &str, rows: &[String], columns: &[Vec<f64>]) -> Result<()> {
    let (n_rows, n_cols) = (rows.len().max(1), columns.len().max(1));
    let height = (12 * n_rows + 90) as u32;
    let width = (330 + 24 * n_cols).max(490) as u32;
    let finite = || columns.iter().flatten().copied().filter(|v| v.is_finite());
    let (low, high) = (finite().fold(f64::INFINITY, f64::min), finite().fold(f64::NEG_INFINITY, f64::max));
    let (low, high) = if low.is_finite() && high > low { (low, high) } else { (0.0, 1.0) };
    let colour = |v: f64| {
        let v = ((v - low) / (high - low)).clamp(0.0, 1.0);
        RGBColor((255.0 * (1.0 - v)) as u8, (255.0 * (1.0 - 0.8 * v)) as u8, 255 - (90.0 * v) as u8)
    };
    seg::atomic::write_atomic_with(path, |tmp| -> Result<()> {
        let root = SVGBackend::new(tmp, (width, height)).into_drawing_area();
        root.fill(&WHITE).context("drawing")?;
        let (map_area, bar_area) = root.split_horizontally(width - 70);
        let mut chart = ChartBuilder::on(&map_area)
            .caption(title, ("sans-serif", 14))
            .margin(10)
            .x_label_area_size(30)
            .y_label_area_size(200)
            .build_cartesian_2d(0..n_cols, 0..n_rows)
            .context("drawing")?;
        chart
            .configure_mesh()
            .disable_mesh()
            .x_desc("epoch")
            .y_labels(n_rows)
            .y_label_style(("sans-serif", 9))
            .y_label_formatter(&|y| if *y < rows.len() { rows[rows.len() - 1 - y].clone() } else { String::new() })
            .draw()
            .context("drawing")?;
        chart
            .draw_series(columns.iter().enumerate().flat_map(|(x, column)| {
                column.iter().enumerate().map(move |(r, &v)| {
                    let y = n_rows - 1 - r;
                    Rectangle::new([(x, y), (x + 1, y + 1)], colour(v).filled())
                })
            }))
            .context("drawing")?;
        // The colour bar: the data's range from bottom (minimum) to top (maximum).
        let mut bar = ChartBuilder::on(&bar_area)
            .margin_top(40)
            .margin_bottom(40)
            .y_label_area_size(45)
            .build_cartesian_2d(0..1, 0..20)
            .context("drawing")?;
        bar.configure_mesh()
            .disable_mesh()
            .disable_x_axis()
            .y_labels(3)
            .y_label_style(("sans-serif", 9))
            .y_label_formatter(&|i| {
                // Enough decimals to tell the ends of a narrow range apart.
                let decimals = ((-(high - low).log10()).ceil() as usize + 2).clamp(3, 8);
                format!("{:.*}", decimals, low + (high - low) * *i as f64 / 20.0)
            })
            .draw()
            .context("drawing")?;
        bar.draw_series((0..20).map(|i| {
            let v = low + (high - low) * (i as f64 + 0.5) / 20.0;
            Rectangle::new([(0, i), (1, i + 1)], colour(v).filled())
        }))
        .context("drawing")?;
        root.present().context("writing the picture")?;
        Ok(())
    })
    .with_context(|| format!("writing {}", path.display()))
}

/// One column of a strip plot: its label, colour, values (one dot each) and the bar's height.
pub struct Strip<'a> {
    pub name: &'a str,
    pub colour: RGBColor,
    pub values: &'a [f64],
    pub mean: f64,
}

/// A strip plot (`search compare`'s `compare.svg`): one column per strip in the given order, a
/// dot per value and a bar at the mean, with a dashed line at `reference` and `title` on top.
pub fn strip_plot(path: &std::path::Path, title: &str, strips: &[Strip], reference: f64, y_desc: &str) -> Result<()> {
    let values = || strips.iter().flat_map(|s| s.values.iter().copied());
    let (low, high) = (values().fold(f64::INFINITY, f64::min), values().fold(f64::NEG_INFINITY, f64::max));
    let (low, high) = if low.is_finite() { (low - 1.0, high + 1.0) } else { (0.0, 100.0) };
    let width = (140 + 46 * strips.len()).max(420) as u32;
    seg::atomic::write_atomic_with(path, |tmp| -> Result<()> {
        let root = SVGBackend::new(tmp, (width, 420)).into_drawing_area();
        root.fill(&WHITE).context("drawing")?;
        let n = strips.len();
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 12))
            .margin(10)
            .x_label_area_size(90)
            .y_label_area_size(50)
            .build_cartesian_2d(-0.5f64..n as f64 - 0.5, low..high)
            .context("drawing")?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(n)
            .x_label_formatter(&|x| {
                let i = x.round();
                if (x - i).abs() < 1e-6 && i >= 0.0 && (i as usize) < n {
                    strips[i as usize].name.to_owned()
                } else {
                    String::new()
                }
            })
            .x_label_style(("sans-serif", 10).into_font().transform(FontTransform::Rotate90))
            .y_desc(y_desc)
            .draw()
            .context("drawing")?;
        let grey = RGBColor(120, 120, 120);
        chart
            .draw_series(DashedLineSeries::new(
                [(-0.5, reference), (n as f64 - 0.5, reference)],
                6,
                4,
                grey.stroke_width(1),
            ))
            .context("drawing")?;
        for (i, s) in strips.iter().enumerate() {
            let k = s.values.len().max(1) as f64;
            chart
                .draw_series(s.values.iter().enumerate().map(|(j, &v)| {
                    let x = i as f64 + 0.25 * ((j as f64 + 0.5) / k - 0.5);
                    Circle::new((x, v), 4, s.colour.filled())
                }))
                .context("drawing")?;
            chart
                .draw_series(std::iter::once(PathElement::new(
                    [(i as f64 - 0.3, s.mean), (i as f64 + 0.3, s.mean)],
                    s.colour.stroke_width(2),
                )))
                .context("drawing")?;
        }
        root.present().context("writing the picture")?;
        Ok(())
    })
    .with_context(|| format!("writing {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The paper's cell and random cells: every kept edge drawn through its op, none crossing a
    /// node. `ADL_PICTURES=DIR` also writes them as PNGs to look at.
    #[test]
    fn cell_pictures_have_no_edge_through_a_node() {
        let mut architectures = vec![Architecture::paper()];
        use rand::SeedableRng;
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        for _ in 0..8 {
            let (cell, path) = (cell::Genotype::random(5, &mut rng), trellis::NetworkPath::random(12, &mut rng));
            architectures.push(Architecture { cell, path, extra: Default::default() });
        }
        for (i, architecture) in architectures.iter().enumerate() {
            let drawing = cell_drawing(architecture);
            // 2 inputs, 5 blocks, concat, 10 ops; input → op → block per edge, block → concat.
            assert_eq!(drawing.boxes.len(), 18, "cell {i}");
            assert_eq!(drawing.edges.len(), 25, "cell {i}");
            if let Ok(dir) = std::env::var("ADL_PICTURES") {
                let svg = std::path::Path::new(&dir).join(format!("cell{i}.svg"));
                std::fs::write(&svg, &drawing.svg).unwrap();
                png_beside(&svg).unwrap();
            }
            assert_eq!(drawing.edges_through_nodes(), vec![], "cell {i}: {:?}", drawing.boxes);
        }
    }
}
