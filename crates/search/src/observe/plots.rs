//! Pictures of a search, written at its end into `arch/`: the decoded cell laid out by the
//! graph-layout engine (`cell.dot`, `cell.svg`; `observe::graph`), the network path on the
//! trellis (`path.svg`), softmax(α) of the last epoch as one panel per block (`alpha.svg`),
//! normalised β of the last epoch with impossible moves hatched (`beta.svg`), and how far each
//! edge's softmax(α) and each node's β are from uniform over the epochs (`entropy.svg`:
//! normalised entropy, 1 = uniform, 0 = decided); and the pictures of an evaluation
//! (`confusion_svg`, `iou_svg`) and of a comparison (`strip_plot`).

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
    let (lw, lh, legend) = rasterize(seg::palette::legend_svg(table, ids).as_bytes())?;
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
    // The last epoch's softmax(α) and normalised β, as the decisions read them.
    let last = history.last();
    let alpha: Vec<Vec<f64>> = last
        .and_then(|h| h["alpha"].as_array())
        .into_iter()
        .flatten()
        .map(|row| row.as_array().into_iter().flatten().filter_map(|v| v.as_f64()).collect())
        .collect();
    write_file(&dir.path("arch/alpha.svg"), alpha_svg(&alpha, architecture).as_bytes())?;
    let beta: Vec<Vec<Vec<f64>>> = last
        .and_then(|h| h["beta"].as_array())
        .into_iter()
        .flatten()
        .map(|layer| {
            layer
                .as_array()
                .into_iter()
                .flatten()
                .map(|level| level.as_array().into_iter().flatten().filter_map(|v| v.as_f64()).collect())
                .collect()
        })
        .collect();
    write_file(&dir.path("arch/beta.svg"), beta_svg(&beta, architecture).as_bytes())?;
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

/// The one heat scale of every picture: white (0) to dark blue (1), as RGB.
fn heat_rgb(v: f64) -> (u8, u8, u8) {
    let v = v.clamp(0.0, 1.0);
    ((255.0 * (1.0 - 0.85 * v)) as u8, (255.0 * (1.0 - 0.65 * v)) as u8, (255.0 - 90.0 * v) as u8)
}

/// White (0) to dark blue (`high`), the colour of a heat-map cell.
fn heat(v: f64, high: f64) -> String {
    let (r, g, b) = heat_rgb(if high > 0.0 { v / high } else { 0.0 });
    format!("rgb({r},{g},{b})")
}

/// Text colour readable on `heat(v, high)`.
fn ink(v: f64, high: f64) -> &'static str {
    if high > 0.0 && v / high > 0.6 {
        "white"
    } else {
        "#222"
    }
}

/// A heat-map cell at (x, y) of size w x h holding the value `v` (colour on 0..`high`).
fn value_cell(x: f64, y: f64, w: f64, h: f64, v: f64, high: f64) -> String {
    format!(
        "<rect x=\"{x:.0}\" y=\"{y:.0}\" width=\"{w}\" height=\"{h}\" fill=\"{}\" stroke=\"white\"/>\n\
         <text x=\"{:.0}\" y=\"{:.0}\" text-anchor=\"middle\" font-size=\"12\" fill=\"{}\">{v:.2}</text>\n",
        heat(v, high),
        x + w / 2.0,
        y + h / 2.0 + 4.0,
        ink(v, high)
    )
}

/// The red frame of a decided cell.
fn frame(x: f64, y: f64, w: f64, h: f64) -> String {
    format!(
        "<rect x=\"{x:.0}\" y=\"{y:.0}\" width=\"{w}\" height=\"{h}\" fill=\"none\" stroke=\"#d22\" stroke-width=\"3\"/>\n"
    )
}

/// The grey hatching of impossible cells, and the SVG header every panel picture shares.
fn panel_header(w: f64, h: f64, title: &str, subtitle: &str) -> String {
    // Wide enough for the subtitle (about 7.5 px per character at 14 px).
    let w = w.max(40.0 + 7.5 * subtitle.chars().count() as f64);
    format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w:.0}\" height=\"{h:.0}\" font-family=\"sans-serif\" \
         font-size=\"14\">\n<defs><pattern id=\"hatch\" width=\"8\" height=\"8\" patternUnits=\"userSpaceOnUse\" \
         patternTransform=\"rotate(45)\"><rect width=\"8\" height=\"8\" fill=\"#e6e6e6\"/><line x1=\"0\" y1=\"0\" \
         x2=\"0\" y2=\"8\" stroke=\"#aaa\" stroke-width=\"3\"/></pattern></defs>\n\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n\
         <text x=\"20\" y=\"30\" font-size=\"18\" font-weight=\"bold\">{title}</text>\n\
         <text x=\"20\" y=\"52\" fill=\"#444\">{subtitle}</text>\n"
    )
}

/// Short op names for panel columns, in `Primitive::ALL`'s order.
const OP_SHORT: [&str; 8] = ["none", "max", "avg", "skip", "sep3", "sep5", "dil3", "dil5"];

/// softmax(α) of the last epoch as one small panel per block: rows are the block's inputs,
/// columns the eight ops, every cell holding its weight; the decoded edges (top-2 inputs, their
/// argmax op without `none`) are framed in red.
pub fn alpha_svg(alpha: &[Vec<f64>], architecture: &Architecture) -> String {
    let blocks = architecture.cell.num_blocks();
    let (cw, ch, label_w) = (50.0, 28.0, 80.0);
    let panel_w = label_w + 8.0 * cw + 30.0;
    let per_row = 2usize;
    let panel_h = |b: usize| 40.0 + ch * (b + 2) as f64;
    let rows_of_panels = blocks.div_ceil(per_row);
    let row_h: Vec<f64> = (0..rows_of_panels).map(|r| panel_h(((r + 1) * per_row).min(blocks) - 1) + 20.0).collect();
    let high = alpha.iter().flatten().copied().fold(0.0, f64::max);
    let mut svg = panel_header(
        20.0 + per_row as f64 * panel_w,
        80.0 + row_h.iter().sum::<f64>(),
        "softmax(α) of the last epoch, one panel per block",
        &format!("rows: the block's inputs; columns: ops; red frame: decoded edge; colour 0 (white) to {high:.3}"),
    );
    let mut offset = 0;
    for b in 0..blocks {
        let (px, py) = (20.0 + (b % per_row) as f64 * panel_w, 80.0 + row_h[..b / per_row].iter().sum::<f64>());
        svg.push_str(&format!("<text x=\"{px}\" y=\"{:.0}\" font-weight=\"bold\">block {b}</text>\n", py + 16.0));
        for (k, op) in OP_SHORT.iter().enumerate() {
            svg.push_str(&format!(
                "<text x=\"{:.0}\" y=\"{:.0}\" text-anchor=\"middle\" fill=\"#444\">{op}</text>\n",
                px + label_w + (k as f64 + 0.5) * cw,
                py + 34.0
            ));
        }
        let chosen = architecture.cell.blocks().get(b).copied();
        for input in 0..b + 2 {
            let y = py + 40.0 + input as f64 * ch;
            svg.push_str(&format!(
                "<text x=\"{:.0}\" y=\"{:.0}\" text-anchor=\"end\">{}</text>\n",
                px + label_w - 8.0,
                y + ch / 2.0 + 5.0,
                input_name(input)
            ));
            let row = alpha.get(offset + input);
            for k in 0..8 {
                let x = px + label_w + k as f64 * cw;
                let v = row.and_then(|r| r.get(k)).copied().unwrap_or(f64::NAN);
                svg.push_str(&value_cell(x, y, cw, ch, v, high));
            }
            for edge in chosen.iter().flatten().filter(|e| e.input == input) {
                svg.push_str(&frame(px + label_w + edge.op.index() as f64 * cw, y, cw, ch));
            }
        }
        offset += b + 2;
    }
    svg.push_str("</svg>\n");
    svg
}

/// Normalised β of the last epoch: columns are layers, rows the moves out of each source level
/// (rate r → r/2, r, 2r), every cell holding its weight; moves that do not exist (off the
/// trellis, or from a node no path reaches) are hatched grey, and the decoded path's moves are
/// framed in red.
pub fn beta_svg(beta: &[Vec<Vec<f64>>], architecture: &Architecture) -> String {
    let layers = beta.len();
    let (cw, ch, label_w, top) = (54.0, 26.0, 130.0, 100.0);
    let high = beta.iter().flatten().flatten().copied().fold(0.0, f64::max);
    let mut svg = panel_header(
        label_w + cw * layers.max(1) as f64 + 40.0,
        top + ch * 12.0 + 50.0,
        "normalised β of the last epoch",
        &format!(
            "columns: layers 0..{}; rows: moves out of each source level; hatched: impossible; red frame: decoded \
             path; colour 0 to {high:.3}",
            layers.saturating_sub(1)
        ),
    );
    let levels = architecture.path.levels();
    for l in 0..layers {
        svg.push_str(&format!(
            "<text x=\"{:.0}\" y=\"{:.0}\" text-anchor=\"middle\" fill=\"#444\">{l}</text>\n",
            label_w + (l as f64 + 0.5) * cw,
            top - 10.0
        ));
    }
    for source in 0..4 {
        for (d, transition) in trellis::space::Transition::ALL.iter().enumerate() {
            let row = source * 3 + d;
            let y = top + row as f64 * ch;
            let rate = 4 << source;
            let target = match d {
                0 => rate / 2,
                1 => rate,
                _ => rate * 2,
            };
            svg.push_str(&format!(
                "<text x=\"{:.0}\" y=\"{:.0}\" text-anchor=\"end\">rate {rate} → {target}</text>\n",
                label_w - 8.0,
                y + ch / 2.0 + 5.0
            ));
            for (l, layer) in beta.iter().enumerate() {
                let x = label_w + l as f64 * cw;
                if !trellis::space::transition_valid(l, source, *transition) {
                    svg.push_str(&format!(
                        "<rect x=\"{x:.0}\" y=\"{y:.0}\" width=\"{cw}\" height=\"{ch}\" fill=\"url(#hatch)\" stroke=\"white\"/>\n"
                    ));
                    continue;
                }
                let v = layer.get(source).and_then(|r| r.get(d)).copied().unwrap_or(f64::NAN);
                svg.push_str(&value_cell(x, y, cw, ch, v, high));
                let from = if l == 0 { Some(0) } else { levels.get(l - 1).map(|&x| x as usize) };
                let on_path = from == Some(source) && levels.get(l).is_some_and(|&to| to as usize + 1 == source + d);
                if on_path {
                    svg.push_str(&frame(x, y, cw, ch));
                }
            }
        }
        // A rule between source levels.
        let y = top + (source * 3 + 3) as f64 * ch;
        svg.push_str(&format!(
            "<line x1=\"20\" y1=\"{y:.0}\" x2=\"{:.0}\" y2=\"{y:.0}\" stroke=\"#888\"/>\n",
            label_w + cw * layers as f64
        ));
    }
    svg.push_str("</svg>\n");
    svg
}

/// The network path drawn on the trellis of layers (columns) and downsample rates (rows). The
/// trellis's coordinates are its information (a row is a rate), so it is drawn as a chart rather
/// than laid out as a graph; its edges join adjacent columns only, so none can cross a node.
pub fn path_svg(architecture: &Architecture) -> String {
    let levels = architecture.path.levels();
    let layers = levels.len() as i64;
    let (dx, dy, left, top) = (56, 56, 110, 90);
    let (w, h) = ((left + dx * (layers + 1)).max(560), top + dy * 4 + 40);
    let at = |column: i64, level: i64| (left + dx * column, top + dy * level);
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" font-family=\"sans-serif\" \
         font-size=\"14\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n\
         <text x=\"20\" y=\"30\" font-size=\"18\" font-weight=\"bold\">network path: downsample rate per layer</text>\n\
         <text x=\"20\" y=\"52\" fill=\"#444\">Viterbi over β; columns: the stem, then layers 0..{}</text>\n",
        layers - 1
    );
    for level in 0..4 {
        let (_, y) = at(0, level);
        svg.push_str(&format!("<text x=\"20\" y=\"{}\">rate {}</text>\n", y + 5, 4 << level));
        for column in 0..=layers {
            let (x, y) = at(column, level);
            svg.push_str(&format!("<circle cx=\"{x}\" cy=\"{y}\" r=\"5\" fill=\"#ccc\"/>\n"));
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
        svg.push_str(&format!("<circle cx=\"{x}\" cy=\"{y}\" r=\"7\" fill=\"#c33\"/>\n"));
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

/// The confusion matrix of an evaluation, each row normalised by its ground-truth pixels (so the
/// diagonal is each class's recall), with the pixel count of every row; `counts` is row-major
/// `[n, n + 1]` (the last column: predicted values that are no class), as `eval --json` writes.
pub fn confusion_svg(names: &[String], counts: &[u64]) -> String {
    let n = names.len();
    let cell = if n > 30 { 16.0 } else { 34.0 };
    let label_w = 20.0 + 8.0 * names.iter().map(|s| s.chars().count()).max().unwrap_or(4) as f64;
    let top = 80.0 + label_w;
    let grid = cell * (n + 1) as f64;
    let mut svg = panel_header(
        label_w + grid + 140.0,
        top + grid + 30.0,
        "confusion matrix",
        "rows: ground truth (pixels at right); columns: prediction, last: no class; each row sums to 1",
    );
    for (p, name) in names.iter().map(String::as_str).chain(["(no class)"]).enumerate() {
        let x = label_w + (p as f64 + 0.5) * cell;
        svg.push_str(&format!(
            "<text transform=\"translate({x:.0},{:.0}) rotate(-60)\" fill=\"#444\">{}</text>\n",
            top - 6.0,
            seg::palette::escape_xml(name)
        ));
    }
    for (g, name) in names.iter().enumerate() {
        let row = &counts[g * (n + 1)..(g + 1) * (n + 1)];
        let total: u64 = row.iter().sum();
        let y = top + g as f64 * cell;
        svg.push_str(&format!(
            "<text x=\"{:.0}\" y=\"{:.0}\" text-anchor=\"end\">{}</text>\n",
            label_w - 6.0,
            y + cell / 2.0 + 5.0,
            seg::palette::escape_xml(name)
        ));
        for (p, &c) in row.iter().enumerate() {
            let v = if total > 0 { c as f64 / total as f64 } else { 0.0 };
            let x = label_w + p as f64 * cell;
            svg.push_str(&format!(
                "<rect x=\"{x:.0}\" y=\"{y:.0}\" width=\"{cell}\" height=\"{cell}\" fill=\"{}\" stroke=\"white\"/>\n",
                heat(v, 1.0)
            ));
            if cell >= 30.0 && c > 0 {
                svg.push_str(&format!(
                    "<text x=\"{:.0}\" y=\"{:.0}\" text-anchor=\"middle\" font-size=\"11\" fill=\"{}\">{:.0}</text>\n",
                    x + cell / 2.0,
                    y + cell / 2.0 + 4.0,
                    ink(v, 1.0),
                    100.0 * v
                ));
            }
        }
        // The diagonal (correct pixels) framed, over its neighbours' borders.
        svg.push_str(&format!(
            "<rect x=\"{:.0}\" y=\"{y:.0}\" width=\"{cell}\" height=\"{cell}\" fill=\"none\" stroke=\"#d22\" \
             stroke-width=\"2\"/>\n",
            label_w + g as f64 * cell
        ));
        svg.push_str(&format!(
            "<text x=\"{:.0}\" y=\"{:.0}\" fill=\"#444\">{total}</text>\n",
            label_w + grid + 8.0,
            y + cell / 2.0 + 5.0
        ));
    }
    svg.push_str("</svg>\n");
    svg
}

/// Per-class IoU of an evaluation as horizontal bars (in %, two decimals), the mIoU as a dashed
/// line; classes without an IoU (absent from prediction and ground truth) are listed as such.
pub fn iou_svg(names: &[String], ious: &[Option<f64>], miou: f64) -> String {
    let n = names.len();
    let (bar_h, scale) = (24.0, 4.0);
    let label_w = 20.0 + 8.0 * names.iter().map(|s| s.chars().count()).max().unwrap_or(4) as f64;
    let top = 80.0;
    let mut svg = panel_header(
        label_w + 100.0 * scale + 100.0,
        top + bar_h * n as f64 + 50.0,
        &format!("IoU per class (mIoU {:.2} %)", 100.0 * miou),
        "bars: IoU in %; dashed: the mean over the classes that have one",
    );
    for (i, (name, iou)) in names.iter().zip(ious).enumerate() {
        let y = top + i as f64 * bar_h;
        svg.push_str(&format!(
            "<text x=\"{:.0}\" y=\"{:.0}\" text-anchor=\"end\">{}</text>\n",
            label_w - 8.0,
            y + bar_h / 2.0 + 5.0,
            seg::palette::escape_xml(name)
        ));
        match iou {
            Some(v) if *v > 0.0 => svg.push_str(&format!(
                "<rect x=\"{label_w:.0}\" y=\"{:.0}\" width=\"{:.1}\" height=\"{:.0}\" fill=\"#4a78b5\"/>\n\
                 <text x=\"{:.0}\" y=\"{:.0}\" font-size=\"13\">{:.2}</text>\n",
                y + 3.0,
                100.0 * v * scale,
                bar_h - 6.0,
                label_w + 100.0 * v * scale + 6.0,
                y + bar_h / 2.0 + 5.0,
                100.0 * v
            )),
            _ => svg.push_str(&format!(
                "<text x=\"{:.0}\" y=\"{:.0}\" font-size=\"13\" fill=\"#888\">{}</text>\n",
                label_w + 6.0,
                y + bar_h / 2.0 + 5.0,
                if iou.is_some() { "0.00" } else { "absent" }
            )),
        }
    }
    if miou.is_finite() {
        let x = label_w + 100.0 * miou * scale;
        svg.push_str(&format!(
            "<line x1=\"{x:.1}\" y1=\"{:.0}\" x2=\"{x:.1}\" y2=\"{:.0}\" stroke=\"#d22\" stroke-dasharray=\"6,4\" \
             stroke-width=\"2\"/>\n",
            top - 6.0,
            top + bar_h * n as f64 + 6.0
        ));
    }
    svg.push_str(&format!(
        "<line x1=\"{label_w:.0}\" y1=\"{:.0}\" x2=\"{label_w:.0}\" y2=\"{:.0}\" stroke=\"#333\"/>\n</svg>\n",
        top,
        top + bar_h * n as f64
    ));
    svg
}

/// Writes the evaluation pictures beside `json` (`<stem>.confusion.svg`, `<stem>.iou.svg`, each
/// with a PNG); returns their paths.
pub fn write_eval_pictures(
    json: &std::path::Path,
    names: &[String],
    counts: &[u64],
    ious: &[Option<f64>],
    miou: f64,
) -> Result<Vec<std::path::PathBuf>> {
    let stem = json.file_stem().and_then(|s| s.to_str()).unwrap_or("eval");
    let mut written = Vec::new();
    for (kind, svg) in [("confusion", confusion_svg(names, counts)), ("iou", iou_svg(names, ious, miou))] {
        let path = json.with_file_name(format!("{stem}.{kind}.svg"));
        write_file(&path, svg.as_bytes())?;
        png_beside(&path)?;
        written.push(path.with_extension("png"));
        written.push(path);
    }
    Ok(written)
}

/// A heat map: one row per label (every row labelled), one column per epoch, coloured on the
/// data's own range (white = its minimum, dark blue = its maximum, shown in a colour bar), so
/// that softmax(α) near 1/8 is not a blank picture.
fn heat_map(path: &std::path::Path, title: &str, rows: &[String], columns: &[Vec<f64>]) -> Result<()> {
    let (n_rows, n_cols) = (rows.len().max(1), columns.len().max(1));
    let height = (18 * n_rows + 110) as u32;
    let width = (330 + 24 * n_cols).max(490) as u32;
    let finite = || columns.iter().flatten().copied().filter(|v| v.is_finite());
    let (low, high) = (finite().fold(f64::INFINITY, f64::min), finite().fold(f64::NEG_INFINITY, f64::max));
    let (low, high) = if low.is_finite() && high > low { (low, high) } else { (0.0, 1.0) };
    let colour = |v: f64| {
        let (r, g, b) = heat_rgb((v - low) / (high - low));
        RGBColor(r, g, b)
    };
    seg::atomic::write_atomic_with(path, |tmp| -> Result<()> {
        let root = SVGBackend::new(tmp, (width, height)).into_drawing_area();
        root.fill(&WHITE).context("drawing")?;
        let (map_area, bar_area) = root.split_horizontally(width - 70);
        let mut chart = ChartBuilder::on(&map_area)
            .caption(title, ("sans-serif", 18))
            .margin(10)
            .x_label_area_size(30)
            .y_label_area_size(220)
            .build_cartesian_2d(0..n_cols, 0..n_rows)
            .context("drawing")?;
        chart
            .configure_mesh()
            .disable_mesh()
            .x_desc("epoch")
            .y_labels(n_rows)
            .y_label_style(("sans-serif", 13))
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
            .y_label_style(("sans-serif", 13))
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

    /// The evaluation pictures: one cell per (ground truth, prediction) pair and the no-class
    /// column, each row's pixel count, one bar per class with an IoU.
    #[test]
    fn eval_pictures_show_every_class() {
        let names: Vec<String> = ["road", "car", "sky"].map(String::from).to_vec();
        let counts = [90, 5, 5, 0, 10, 30, 0, 0, 0, 0, 0, 0];
        let c = confusion_svg(&names, &counts);
        assert_eq!(c.matches("<rect x=").count(), 12 + 3, "12 cells and 3 diagonal frames");
        assert!(c.contains(">100</text>") && c.contains(">40</text>") && c.contains(">0</text>"));
        let i = iou_svg(&names, &[Some(0.8), Some(0.55), None], 0.675);
        assert!(i.contains("mIoU 67.50 %") && i.contains(">80.00<") && i.contains(">55.00<") && i.contains(">absent<"));
        if let Ok(dir) = std::env::var("ADL_PICTURES") {
            let json = std::path::Path::new(&dir).join("eval.json");
            let written = write_eval_pictures(&json, &names, &counts, &[Some(0.8), Some(0.55), None], 0.675).unwrap();
            assert_eq!(written.len(), 4);
        }
    }

    /// α panels and β's grid: every value shown, the decoded choices framed, impossible moves
    /// hatched. `ADL_PICTURES=DIR` also writes them as PNGs.
    #[test]
    fn alpha_and_beta_pictures_show_values_decisions_and_impossible_moves() {
        let architecture = Architecture::paper();
        let alpha: Vec<Vec<f64>> =
            (0..20).map(|e| (0..8).map(|k| ((e * 8 + k) % 11) as f64 / 40.0).collect()).collect();
        let beta: Vec<Vec<Vec<f64>>> = (0..12)
            .map(|l| (0..4).map(|i| (0..3).map(|d| ((l + i + d) % 5) as f64 / 5.0).collect()).collect())
            .collect();
        let a = alpha_svg(&alpha, &architecture);
        // 20 rows of 8 values; 10 decoded edges framed.
        assert_eq!(a.matches("font-size=\"12\"").count(), 160);
        assert_eq!(a.matches("stroke=\"#d22\"").count(), 10);
        let b = beta_svg(&beta, &architecture);
        let impossible: usize = (0..12)
            .map(|l| {
                (0..4)
                    .flat_map(|i| trellis::Transition::ALL.map(|t| (i, t)))
                    .filter(|&(i, t)| !trellis::space::transition_valid(l, i, t))
                    .count()
            })
            .sum();
        assert_eq!(b.matches("url(#hatch)\"").count(), impossible);
        assert_eq!(b.matches("font-size=\"12\"").count(), 12 * 12 - impossible);
        // One framed move per layer: the decoded path.
        assert_eq!(b.matches("stroke=\"#d22\"").count(), 12);
        if let Ok(dir) = std::env::var("ADL_PICTURES") {
            for (name, svg) in [("alpha", a), ("beta", b)] {
                let file = std::path::Path::new(&dir).join(format!("{name}.svg"));
                std::fs::write(&file, svg).unwrap();
                png_beside(&file).unwrap();
            }
        }
    }
}
