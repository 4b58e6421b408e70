//! Graph pictures laid out by a graph-layout engine, the `layout-rs` crate (a Sugiyama-style
//! layered layout, as Graphviz's `dot`: ranks, crossing minimisation, and every edge longer than
//! one rank routed through dummy nodes of its own rank, so that no edge runs through a node),
//! drawn in the project's style by a backend of our own ([`Canvas`]): sans-serif text at 16 px,
//! rounded boxes filled per kind, grey arrows. The decoded cell (paper §4.3) is drawn with it:
//! inputs, one node per kept edge's op, blocks and the concatenation (`observe::plots`).
//!
//! [`Drawing`] keeps the geometry it drew, so tests check that no edge crosses a node.

use layout::core::base::Orientation;
use layout::core::color::Color;
use layout::core::format::{ClipHandle, RenderBackend};
use layout::core::geometry::Point;
use layout::core::style::StyleAttr;
use layout::std_shapes::shapes::{Arrow, Element, ShapeKind};
use layout::topo::layout::VisualGraph;

/// Text size of every label.
pub const FONT_PX: f64 = 16.0;

/// One node: its label (lines split at `\n`) and its fill colour (`0xRRGGBB`).
#[derive(Debug, Clone)]
pub struct Node {
    pub label: String,
    pub fill: u32,
}

/// A laid-out, drawn graph: the SVG and the geometry it holds.
#[derive(Debug, Clone)]
pub struct Drawing {
    pub svg: String,
    /// Each node's box: (top-left, size), in the SVG's coordinates.
    pub boxes: Vec<(Point, Point)>,
    /// Each edge as points sampled along its drawn curve.
    pub edges: Vec<Vec<Point>>,
}

impl Drawing {
    /// Pairs (edge, node) where the edge's curve enters the node's box (shrunk by 2 px, so that
    /// an edge's own ends, which touch their boxes' borders, do not count).
    pub fn edges_through_nodes(&self) -> Vec<(usize, usize)> {
        let mut out = Vec::new();
        for (e, points) in self.edges.iter().enumerate() {
            for (n, (at, size)) in self.boxes.iter().enumerate() {
                let inside = |p: &Point| {
                    p.x > at.x + 2.0 && p.x < at.x + size.x - 2.0 && p.y > at.y + 2.0 && p.y < at.y + size.y - 2.0
                };
                if points.iter().any(inside) {
                    out.push((e, n));
                }
            }
        }
        out
    }
}

/// Lays out `nodes` and `edges` (indices into `nodes`, drawn as arrows) from left to right and
/// draws them, with `title` above.
pub fn layered(title: &str, nodes: &[Node], edges: &[(usize, usize)]) -> Drawing {
    let mut graph = VisualGraph::new(Orientation::LeftToRight);
    let handles: Vec<_> = nodes
        .iter()
        .map(|node| {
            let look = StyleAttr::new(Color::new(0x333355ff), 1, Some(Color::new((node.fill << 8) | 0xff)), 6, 16);
            let lines = node.label.lines().count().max(1) as f64;
            let chars = node.label.lines().map(|l| l.chars().count()).max().unwrap_or(1) as f64;
            let size = Point::new(chars * 0.6 * FONT_PX + 24.0, lines * 1.25 * FONT_PX + 14.0);
            graph.add_node(Element::create(ShapeKind::new_box(&node.label), look, Orientation::LeftToRight, size))
        })
        .collect();
    for &(from, to) in edges {
        graph.add_edge(Arrow::simple(""), handles[from], handles[to]);
    }
    let mut canvas = Canvas::default();
    graph.do_it(false, false, false, &mut canvas);
    canvas.finish(title)
}

/// Our SVG backend: collects what the layout draws, then writes it framed by its bounding box.
#[derive(Default)]
struct Canvas {
    body: String,
    boxes: Vec<(Point, Point)>,
    /// Each arrow's points on its curve (its ends and the dummy nodes it passes), its colour and
    /// style; drawn when every box is known ([`Canvas::finish`]).
    arrows: Vec<(Vec<Point>, String, &'static str)>,
    low: Option<Point>,
    high: Option<Point>,
}

impl Canvas {
    fn grow(&mut self, p: Point) {
        let low = self.low.get_or_insert(p);
        *low = Point::new(low.x.min(p.x), low.y.min(p.y));
        let high = self.high.get_or_insert(p);
        *high = Point::new(high.x.max(p.x), high.y.max(p.y));
    }

    /// The box whose border is nearest to `p`.
    fn nearest_box(&self, p: Point) -> Option<(Point, Point)> {
        let distance = |(at, size): &(Point, Point)| {
            let dx = (at.x - p.x).max(p.x - at.x - size.x).max(0.0);
            let dy = (at.y - p.y).max(p.y - at.y - size.y).max(0.0);
            dx.hypot(dy)
        };
        self.boxes.iter().copied().min_by(|a, b| distance(a).total_cmp(&distance(b)))
    }

    /// The x range of the rank whose boxes span `x` (the narrowest point when none does: a rank
    /// of dummy nodes only).
    fn rank_span(&self, x: f64) -> (f64, f64) {
        self.boxes
            .iter()
            .filter(|(at, size)| at.x <= x && x <= at.x + size.x)
            .fold((x, x), |(l, r), (at, size)| (l.min(at.x), r.max(at.x + size.x)))
    }

    /// An arrow through `points` (its ends, near its boxes, and the dummy nodes of a long edge)
    /// from left to right, as a layered drawing routes it: a straight run through each rank it
    /// touches (out of its first box from the middle of its right side, through each dummy
    /// node's slot, into its last box at the middle of its left side), joined by cubics with
    /// horizontal tangents that stay in the gaps between ranks, where there are no boxes. Returns
    /// the SVG path and points sampled along it.
    fn route(&self, points: &[Point]) -> (String, Vec<Point>) {
        let last = points.len() - 1;
        let runs: Vec<(f64, f64, f64)> = points
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let snapped = if i == 0 || i == last { self.nearest_box(*p) } else { None };
                match (i, snapped) {
                    (0, Some((at, size))) => {
                        let centre = at.x + size.x / 2.0;
                        (at.x + size.x, self.rank_span(centre).1, at.y + size.y / 2.0)
                    }
                    (_, Some((at, size))) => {
                        let centre = at.x + size.x / 2.0;
                        (self.rank_span(centre).0, at.x, at.y + size.y / 2.0)
                    }
                    _ => {
                        let (left, right) = self.rank_span(p.x);
                        (left, right, p.y)
                    }
                }
            })
            .collect();
        let mut d = format!("M{:.1},{:.1}", runs[0].0, runs[0].2);
        let mut samples = Vec::new();
        let line = |(x0, x1, y): (f64, f64, f64), samples: &mut Vec<Point>| {
            samples.extend((0..=8).map(|k| Point::new(x0 + (x1 - x0) * k as f64 / 8.0, y)));
        };
        for (i, run) in runs.iter().enumerate() {
            if i > 0 {
                let p = Point::new(runs[i - 1].1, runs[i - 1].2);
                let q = Point::new(run.0, run.2);
                let half = (q.x - p.x) / 2.0;
                let (c1, c2) = (Point::new(p.x + half, p.y), Point::new(q.x - half, q.y));
                d.push_str(&format!(" C{:.1},{:.1} {:.1},{:.1} {:.1},{:.1}", c1.x, c1.y, c2.x, c2.y, q.x, q.y));
                cubic(p, c1, c2, q, &mut samples);
            }
            d.push_str(&format!(" L{:.1},{:.1}", run.1, run.2));
            line(*run, &mut samples);
        }
        (d, samples)
    }

    fn finish(mut self, title: &str) -> Drawing {
        let mut edges = Vec::new();
        for (points, stroke, marks) in std::mem::take(&mut self.arrows) {
            if points.len() < 2 {
                continue;
            }
            let (d, samples) = self.route(&points);
            for p in &samples {
                self.grow(*p);
            }
            self.body.push_str(&format!(
                "<path d=\"{d}\" fill=\"none\" stroke=\"{stroke}\" stroke-width=\"1.5\"{marks}/>\n"
            ));
            edges.push(samples);
        }
        let (margin, head) = (20.0, 36.0);
        let low = self.low.unwrap_or(Point::zero());
        let high = self.high.unwrap_or(Point::zero());
        // Shift everything so that the picture starts at (margin, margin + head).
        let (dx, dy) = (margin - low.x, margin + head - low.y);
        let (w, h) = (high.x - low.x + 2.0 * margin, high.y - low.y + 2.0 * margin + head);
        let shift = |p: &Point| Point::new(p.x + dx, p.y + dy);
        let mut svg = format!(
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w:.0}\" height=\"{h:.0}\" font-family=\"sans-serif\" \
             font-size=\"{FONT_PX}\">\n<defs><marker id=\"arrow\" viewBox=\"0 0 10 10\" refX=\"10\" refY=\"5\" \
             markerWidth=\"8\" markerHeight=\"8\" orient=\"auto\"><path d=\"M0,0 L10,5 L0,10 z\" fill=\"#556\"/>\
             </marker></defs>\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n\
             <text x=\"{margin}\" y=\"{:.0}\" font-size=\"18\" font-weight=\"bold\">{}</text>\n\
             <g transform=\"translate({dx:.1},{dy:.1})\">\n",
            margin + 18.0,
            seg::palette::escape_xml(title)
        );
        svg.push_str(&self.body);
        svg.push_str("</g>\n</svg>\n");
        Drawing {
            svg,
            boxes: self.boxes.iter().map(|(at, size)| (shift(at), *size)).collect(),
            edges: edges.iter().map(|points| points.iter().map(shift).collect()).collect(),
        }
    }
}

fn web(color: Color) -> String {
    // `to_web_color` is #RRGGBBAA; SVG renderers take #RRGGBB everywhere.
    color.to_web_color().chars().take(7).collect()
}

/// Points along a cubic Bézier curve.
fn cubic(p0: Point, p1: Point, p2: Point, p3: Point, out: &mut Vec<Point>) {
    for i in 0..=24 {
        let t = i as f64 / 24.0;
        let u = 1.0 - t;
        let (a, b, c, d) = (u * u * u, 3.0 * u * u * t, 3.0 * u * t * t, t * t * t);
        out.push(Point::new(a * p0.x + b * p1.x + c * p2.x + d * p3.x, a * p0.y + b * p1.y + c * p2.y + d * p3.y));
    }
}

impl RenderBackend for Canvas {
    fn draw_rect(&mut self, xy: Point, size: Point, look: &StyleAttr, _: Option<String>, _: Option<ClipHandle>) {
        self.grow(xy);
        self.grow(xy.add(size));
        self.boxes.push((xy, size));
        let fill = look.fill_color.map_or("none".to_owned(), web);
        self.body.push_str(&format!(
            "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{:.1}\" rx=\"{}\" fill=\"{fill}\" stroke=\"{}\"/>\n",
            xy.x,
            xy.y,
            size.x,
            size.y,
            look.rounded,
            web(look.line_color)
        ));
    }

    fn draw_line(&mut self, start: Point, stop: Point, look: &StyleAttr, _: Option<String>) {
        self.grow(start);
        self.grow(stop);
        self.body.push_str(&format!(
            "<line x1=\"{:.1}\" y1=\"{:.1}\" x2=\"{:.1}\" y2=\"{:.1}\" stroke=\"{}\"/>\n",
            start.x,
            start.y,
            stop.x,
            stop.y,
            web(look.line_color)
        ));
    }

    fn draw_circle(&mut self, xy: Point, size: Point, look: &StyleAttr, _: Option<String>) {
        self.grow(xy.sub(size.scale(0.5)));
        self.grow(xy.add(size.scale(0.5)));
        self.body.push_str(&format!(
            "<ellipse cx=\"{:.1}\" cy=\"{:.1}\" rx=\"{:.1}\" ry=\"{:.1}\" fill=\"{}\" stroke=\"{}\"/>\n",
            xy.x,
            xy.y,
            size.x / 2.0,
            size.y / 2.0,
            look.fill_color.map_or("none".to_owned(), web),
            web(look.line_color)
        ));
    }

    fn draw_text(&mut self, xy: Point, text: &str, _: &StyleAttr) {
        let lines: Vec<&str> = text.lines().collect();
        // Centred on `xy`, one line every 1.25 em.
        let top = xy.y - (lines.len() as f64 - 1.0) * 0.625 * FONT_PX;
        for (i, line) in lines.iter().enumerate() {
            self.body.push_str(&format!(
                "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\" dominant-baseline=\"central\">{}</text>\n",
                xy.x,
                top + i as f64 * 1.25 * FONT_PX,
                seg::palette::escape_xml(line)
            ));
        }
    }

    fn draw_arrow(
        &mut self,
        path: &[(Point, Point)],
        dashed: bool,
        head: (bool, bool),
        look: &StyleAttr,
        _: Option<String>,
        _: &str,
    ) {
        // The path as layout-rs gives it: "M a C b, c, d" for the first two pairs, then "S e, f"
        // per further piece; its points on the curve are a, d and each f (the dummy nodes a
        // long edge passes). Routed in `finish`, once every box is known.
        let mut points = Vec::new();
        if path.len() >= 2 {
            points.push(path[0].0);
            points.extend(path[1..].iter().map(|(_, to)| *to));
        }
        let marks = match (dashed, head) {
            (true, _) => " stroke-dasharray=\"5,4\" marker-end=\"url(#arrow)\"",
            (false, (_, true)) => " marker-end=\"url(#arrow)\"",
            (false, (_, false)) => "",
        };
        self.arrows.push((points, web(look.line_color), marks));
    }

    fn create_clip(&mut self, _: Point, _: Point, _: usize) -> ClipHandle {
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_layered_graph_keeps_its_edges_out_of_its_nodes() {
        // A skip across two ranks must be routed around the middle nodes.
        let nodes: Vec<Node> =
            ["in", "a", "b", "out"].iter().map(|l| Node { label: (*l).into(), fill: 0xeeeeff }).collect();
        let drawing = layered("t", &nodes, &[(0, 1), (1, 2), (2, 3), (0, 3), (0, 2)]);
        assert_eq!(drawing.boxes.len(), 4);
        assert_eq!(drawing.edges.len(), 5);
        assert!(drawing.edges.iter().all(|e| !e.is_empty()));
        assert_eq!(drawing.edges_through_nodes(), vec![]);
        assert!(drawing.svg.contains(">in</text>") && drawing.svg.contains("marker-end"));
    }
}
