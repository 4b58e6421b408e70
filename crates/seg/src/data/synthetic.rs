//! A synthetic street-scene data set in exactly the Cityscapes layout and encoding (label ids,
//! not train ids), generated from a seed: the built-in data for demos and tests.
//!
//! It is a real segmentation problem rather than a colour lookup: scenes have sky, buildings,
//! walls, vegetation, terrain, road, sidewalk, poles with traffic signs and lights, cars and
//! people (12 of the 19 classes) of varied size, shape and position, with textures (windows,
//! paving, foliage, lane marks) and noise, and several classes draw from the same colours
//! (grey road, sidewalk, buildings, walls, poles, cars and overcast sky; green vegetation and
//! terrain; red cars and clothing), so that a per-pixel colour classifier cannot solve it.
//! Same seed, same bytes: every image has its own ChaCha8 stream derived from the seed.
//!
//! A second task, [`SynthTask::Context`], is built so that the architecture matters (the demo
//! compares a searched network with random ones on it): rectangular regions whose insides are
//! drawn from one texture for every class and whose class (car, building, wall) shows only in a
//! coloured frame along their border, so that most of a region's pixels can only be told apart
//! with context wider than their neighbourhood (up to half the region, 10 to 25 pixels at the
//! demo's size); one-pixel-wide poles and sign wires that need fine resolution; and a textured
//! background (terrain).

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::seed::mix_seed;

/// Label ids used by the generator (facts §8).
pub(super) mod id {
    pub const ROAD: u8 = 7;
    pub const SIDEWALK: u8 = 8;
    pub const BUILDING: u8 = 11;
    pub const WALL: u8 = 12;
    pub const POLE: u8 = 17;
    pub const TRAFFIC_LIGHT: u8 = 19;
    pub const TRAFFIC_SIGN: u8 = 20;
    pub const VEGETATION: u8 = 21;
    pub const TERRAIN: u8 = 22;
    pub const SKY: u8 = 23;
    pub const PERSON: u8 = 24;
    pub const CAR: u8 = 26;
}

/// Which scenes to draw.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SynthTask {
    /// Street scenes with 12 classes (the default).
    #[default]
    Street,
    /// Regions told apart only by wide context, and thin structures (see the module
    /// documentation).
    Context,
    /// Blobs of one texture whose class is their size (`synth_tasks::render_scale`).
    Scale,
    /// Shapes of shared colours whose class is their outline (`synth_tasks::render_shape`).
    Shape,
    /// Twelve classes told apart by stripe textures, most of them rare
    /// (`synth_tasks::render_rare`).
    Rare,
    // `SynthTask::render`, which dispatches to every task's renderer, lives in `synth_tasks`.
}

impl SynthTask {
    /// Every task, for listings.
    pub const ALL: [SynthTask; 5] =
        [SynthTask::Street, SynthTask::Context, SynthTask::Scale, SynthTask::Shape, SynthTask::Rare];

    /// The task's name on the command line and in files.
    pub fn name(self) -> &'static str {
        match self {
            SynthTask::Street => "street",
            SynthTask::Context => "context",
            SynthTask::Scale => "scale",
            SynthTask::Shape => "shape",
            SynthTask::Rare => "rare",
        }
    }
}

/// What to generate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SynthConfig {
    pub seed: u64,
    pub train: usize,
    pub val: usize,
    pub width: u32,
    pub height: u32,
    pub task: SynthTask,
}

/// The classes (label ids) the generator draws, for tests and docs.
pub const DRAWN_LABEL_IDS: [u8; 12] = [
    id::ROAD,
    id::SIDEWALK,
    id::BUILDING,
    id::WALL,
    id::POLE,
    id::TRAFFIC_LIGHT,
    id::TRAFFIC_SIGN,
    id::VEGETATION,
    id::TERRAIN,
    id::SKY,
    id::PERSON,
    id::CAR,
];

/// Deterministic per-pixel noise in [0, 1).
pub(super) fn hash_noise(seed: u64, x: i64, y: i64) -> f32 {
    let h = mix_seed(seed, x as u64, y as u64);
    (h >> 40) as f32 / (1u64 << 24) as f32
}

/// One rendered scene: RGB bytes and label ids.
pub struct Scene {
    pub rgb: Vec<u8>,
    pub label: Vec<u8>,
}

pub(super) struct Canvas {
    pub(super) w: i64,
    pub(super) h: i64,
    pub(super) rgb: Vec<[f32; 3]>,
    pub(super) label: Vec<u8>,
}

impl Canvas {
    pub(super) fn put(&mut self, x: i64, y: i64, color: [f32; 3], label: u8) {
        if x >= 0 && y >= 0 && x < self.w && y < self.h {
            let i = (y * self.w + x) as usize;
            self.rgb[i] = color;
            self.label[i] = label;
        }
    }

    pub(super) fn rect(&mut self, x0: i64, y0: i64, x1: i64, y1: i64, label: u8, color: impl Fn(i64, i64) -> [f32; 3]) {
        for y in y0.max(0)..y1.min(self.h) {
            for x in x0.max(0)..x1.min(self.w) {
                self.put(x, y, color(x, y), label);
            }
        }
    }

    pub(super) fn ellipse(
        &mut self,
        cx: f32,
        cy: f32,
        rx: f32,
        ry: f32,
        label: u8,
        color: impl Fn(i64, i64) -> [f32; 3],
    ) {
        let (rx, ry) = (rx.max(0.5), ry.max(0.5));
        for y in (cy - ry).floor() as i64..=(cy + ry).ceil() as i64 {
            for x in (cx - rx).floor() as i64..=(cx + rx).ceil() as i64 {
                let (dx, dy) = ((x as f32 - cx) / rx, (y as f32 - cy) / ry);
                if dx * dx + dy * dy <= 1.0 {
                    self.put(x, y, color(x, y), label);
                }
            }
        }
    }

    /// The scene: a lighting gradient and sensor noise over the colours, rounded to bytes.
    pub(super) fn finish(self, rng: &mut ChaCha8Rng) -> Scene {
        let light = rng.random_range(0.8..1.15);
        let noise_seed = rng.random::<u64>();
        let mut rgb = Vec::with_capacity(self.rgb.len() * 3);
        for (i, px) in self.rgb.iter().enumerate() {
            let (x, y) = (i as i64 % self.w, i as i64 / self.w);
            let gain = light * (1.0 - 0.15 * x as f32 / self.w as f32);
            for (ch, v) in px.iter().enumerate() {
                let n = (hash_noise(noise_seed ^ ch as u64, x, y) - 0.5) * 24.0;
                rgb.push((v * gain + n).round().clamp(0.0, 255.0) as u8);
            }
        }
        Scene { rgb, label: self.label }
    }

    /// Fills rows `y0..y1` between `left(y)` and `right(y)`.
    fn span(
        &mut self,
        y0: i64,
        y1: i64,
        left: impl Fn(i64) -> f32,
        right: impl Fn(i64) -> f32,
        label: u8,
        color: impl Fn(i64, i64) -> [f32; 3],
    ) {
        for y in y0.max(0)..y1.min(self.h) {
            for x in left(y).round() as i64..right(y).round() as i64 {
                self.put(x, y, color(x, y), label);
            }
        }
    }
}

pub(super) fn gray(v: f32) -> [f32; 3] {
    [v, v, v]
}

pub(super) fn shade(c: [f32; 3], f: f32) -> [f32; 3] {
    [c[0] * f, c[1] * f, c[2] * f]
}

/// A colour from the grey range shared by road, sidewalk, buildings, walls, poles and cars.
pub(super) fn shared_gray(rng: &mut ChaCha8Rng) -> [f32; 3] {
    let v = rng.random_range(85.0..165.0);
    let tint = rng.random_range(-8.0..8.0);
    [v + tint, v, v - tint]
}

/// Renders one scene of `w x h` from `seed`.
pub fn render(w: u32, h: u32, seed: u64) -> Scene {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let (wi, hi) = (w as i64, h as i64);
    let (wf, hf) = (w as f32, h as f32);
    let mut c = Canvas { w: wi, h: hi, rgb: vec![[0.0; 3]; (w * h) as usize], label: vec![id::SKY; (w * h) as usize] };
    let tex = rng.random::<u64>();

    // Sky: blue, or an overcast grey from the shared range.
    let horizon = hf * rng.random_range(0.38..0.52);
    let sky_top = if rng.random_bool(0.5) { [95.0, 140.0, 200.0] } else { shade(shared_gray(&mut rng), 1.2) };
    c.rect(0, 0, wi, horizon as i64 + 1, id::SKY, |_, y| shade(sky_top, 1.0 + 0.25 * y as f32 / hf));

    // Buildings along the horizon, with window grids; walls in front of some.
    let mut x = -rng.random_range(0.0..0.1) * wf;
    while x < wf {
        let bw = wf * rng.random_range(0.08..0.25);
        let top = hf * rng.random_range(0.05..0.35);
        let base = shared_gray(&mut rng);
        let (win_w, win_h) = (rng.random_range(0.01..0.025) * wf, rng.random_range(0.02..0.05) * hf);
        let win = shade(base, rng.random_range(0.35..0.7));
        let (x0, x1) = (x as i64, (x + bw) as i64);
        c.rect(x0, top as i64, x1, (horizon + 0.05 * hf) as i64, id::BUILDING, |px, py| {
            let (u, v) = ((px as f32 - x) % (2.0 * win_w), (py as f32 - top) % (2.0 * win_h));
            if u > win_w * 0.5 && u < win_w * 1.5 && v > win_h * 0.5 && v < win_h * 1.5 {
                win
            } else {
                base
            }
        });
        if rng.random_bool(0.3) {
            let wall_top = horizon - hf * rng.random_range(0.02..0.08);
            let wall = shared_gray(&mut rng);
            c.rect(x0, wall_top as i64, x1, (horizon + 0.06 * hf) as i64, id::WALL, |_, _| wall);
        }
        x += bw;
    }

    // Ground: terrain strip, sidewalks, then the road (a trapezoid to a vanishing point).
    let ground_top = horizon + 0.04 * hf;
    let terrain = [rng.random_range(70.0..110.0), rng.random_range(110.0..150.0), rng.random_range(40.0..70.0)];
    c.rect(0, ground_top as i64, wi, hi, id::TERRAIN, |px, py| {
        shade(terrain, 0.85 + 0.3 * hash_noise(tex ^ 1, px / 3, py / 3))
    });
    let sidewalk = shared_gray(&mut rng);
    let tile = (0.03 * wf).max(3.0) as i64;
    let walk_top = ground_top + 0.02 * hf;
    let vanish_x = wf * rng.random_range(0.35..0.65);
    let depth = |y: i64| ((y as f32 - walk_top) / (hf - walk_top)).clamp(0.0, 1.0);
    let walk_half = |y: i64| wf * (0.03 + 0.9 * depth(y));
    c.span(
        walk_top as i64,
        hi,
        |y| vanish_x - walk_half(y),
        |y| vanish_x + walk_half(y),
        id::SIDEWALK,
        |px, py| {
            if px % tile == 0 || py % tile == 0 {
                shade(sidewalk, 0.8)
            } else {
                sidewalk
            }
        },
    );
    let road = shade(shared_gray(&mut rng), 0.8);
    let road_half = |y: i64| wf * (0.01 + 0.55 * depth(y));
    let dash = (0.04 * hf).max(2.0) as i64;
    c.span(
        walk_top as i64 + 1,
        hi,
        |y| vanish_x - road_half(y),
        |y| vanish_x + road_half(y),
        id::ROAD,
        |px, py| {
            let lane = (px as f32 - vanish_x).abs() < 0.004 * wf * (1.0 + 3.0 * depth(py)) && (py / dash) % 2 == 0;
            if lane {
                gray(225.0)
            } else {
                shade(road, 0.9 + 0.2 * hash_noise(tex ^ 2, px, py))
            }
        },
    );

    // Trees: trunks and foliage blobs, textured; some stand on the terrain in front.
    for _ in 0..rng.random_range(2..6) {
        let tx = rng.random_range(0.0..wf);
        let base_y = ground_top + rng.random_range(0.0..0.1) * hf;
        let size = hf * rng.random_range(0.08..0.2);
        let green = [rng.random_range(60.0..110.0), rng.random_range(100.0..150.0), rng.random_range(30.0..60.0)];
        c.rect(
            (tx - 0.06 * size) as i64,
            (base_y - size) as i64,
            (tx + 0.06 * size) as i64,
            base_y as i64,
            id::VEGETATION,
            |_, _| [90.0, 70.0, 50.0],
        );
        for _ in 0..rng.random_range(3..7) {
            let (ox, oy) = (rng.random_range(-0.6..0.6) * size, rng.random_range(-1.6..-0.8) * size);
            let r = size * rng.random_range(0.3..0.6);
            c.ellipse(tx + ox, base_y + oy, r, r * 0.9, id::VEGETATION, |px, py| {
                shade(green, 0.6 + 0.8 * hash_noise(tex ^ 3, px, py))
            });
        }
    }

    // Poles with a traffic sign or a traffic light.
    for _ in 0..rng.random_range(1..4) {
        let side = if rng.random_bool(0.5) { -1.0 } else { 1.0 };
        let py = rng.random_range(walk_top + 0.1 * (hf - walk_top)..hf);
        let px = vanish_x + side * (road_half(py as i64) + 0.5 * (walk_half(py as i64) - road_half(py as i64)));
        let height = (py - horizon) * rng.random_range(1.8..3.0);
        let pw = (0.004 * wf * (1.0 + depth(py as i64) * 2.0)).max(1.0);
        let pole = shared_gray(&mut rng);
        let top = py - height;
        c.rect((px - pw) as i64, top as i64, (px + pw) as i64 + 1, py as i64, id::POLE, |_, _| pole);
        let s = pw * rng.random_range(4.0..7.0);
        if rng.random_bool(0.5) {
            let sign = if rng.random_bool(0.5) { [220.0, 210.0, 30.0] } else { [200.0, 40.0, 40.0] };
            c.ellipse(px, top, s, s, id::TRAFFIC_SIGN, |_, _| sign);
        } else {
            c.rect(
                (px - s * 0.6) as i64,
                (top - 1.5 * s) as i64,
                (px + s * 0.6) as i64,
                (top + 1.5 * s) as i64,
                id::TRAFFIC_LIGHT,
                |_, _| gray(35.0),
            );
            let lit = [[230.0, 40.0, 30.0], [240.0, 180.0, 30.0], [40.0, 220.0, 80.0]][rng.random_range(0..3)];
            c.ellipse(px, top, s * 0.4, s * 0.4, id::TRAFFIC_LIGHT, |_, _| lit);
        }
    }

    // Cars on the road, far to near, grey or coloured (red shared with clothing).
    let mut cars: Vec<f32> =
        (0..rng.random_range(1..6)).map(|_| rng.random_range(walk_top + 0.05 * hf..hf + 0.05 * hf)).collect();
    cars.sort_by(f32::total_cmp);
    for cy in cars {
        let scale = depth(cy as i64).max(0.05);
        let (cw, ch) = (wf * 0.22 * scale * rng.random_range(0.8..1.3), hf * 0.16 * scale * rng.random_range(0.8..1.2));
        let cx = vanish_x + rng.random_range(-0.8..0.8) * road_half(cy as i64);
        let body = match rng.random_range(0..4) {
            0 => [rng.random_range(150.0..220.0), 30.0, 35.0],
            1 => [30.0, 50.0, rng.random_range(120.0..200.0)],
            _ => shared_gray(&mut rng),
        };
        let (x0, x1, y0, y1) = (cx - cw / 2.0, cx + cw / 2.0, cy - ch, cy);
        c.rect(x0 as i64, (y0 + ch * 0.35) as i64, x1 as i64, (y1 - ch * 0.1) as i64, id::CAR, |_, _| body);
        c.rect(
            (x0 + cw * 0.15) as i64,
            y0 as i64,
            (x1 - cw * 0.15) as i64,
            (y0 + ch * 0.4) as i64,
            id::CAR,
            |px, _| {
                if (px as f32 - x0) < cw * 0.2 || (x1 - px as f32) < cw * 0.2 {
                    body
                } else {
                    [50.0, 60.0, 75.0]
                }
            },
        );
        for wx in [x0 + cw * 0.2, x1 - cw * 0.2] {
            c.ellipse(wx, y1 - ch * 0.1, ch * 0.18, ch * 0.18, id::CAR, |_, _| gray(25.0));
        }
    }

    // People on the sidewalks.
    for _ in 0..rng.random_range(0..5) {
        let py = rng.random_range(walk_top + 0.05 * hf..hf);
        let side = if rng.random_bool(0.5) { -1.0 } else { 1.0 };
        let reach = road_half(py as i64) + rng.random_range(0.1..0.9) * (walk_half(py as i64) - road_half(py as i64));
        let px = vanish_x + side * reach;
        let tall = hf * 0.25 * depth(py as i64).max(0.08) * rng.random_range(0.8..1.2);
        let shirt =
            if rng.random_bool(0.3) { [rng.random_range(150.0..220.0), 30.0, 35.0] } else { shared_gray(&mut rng) };
        let trousers = [rng.random_range(20.0..90.0), rng.random_range(20.0..90.0), rng.random_range(40.0..120.0)];
        c.rect(
            (px - tall * 0.09) as i64,
            (py - tall * 0.45) as i64,
            (px + tall * 0.09) as i64,
            py as i64,
            id::PERSON,
            |_, _| trousers,
        );
        c.ellipse(px, py - tall * 0.6, tall * 0.14, tall * 0.2, id::PERSON, |_, _| shirt);
        c.ellipse(px, py - tall * 0.88, tall * 0.08, tall * 0.1, id::PERSON, |_, _| [205.0, 160.0, 130.0]);
    }

    c.finish(&mut rng)
}

/// Renders one scene of the context task (see the module documentation) of `w x h` from `seed`.
pub fn render_context(w: u32, h: u32, seed: u64) -> Scene {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let (wi, hi) = (w as i64, h as i64);
    let (wf, hf) = (w as f32, h as f32);
    let mut c =
        Canvas { w: wi, h: hi, rgb: vec![[0.0; 3]; (w * h) as usize], label: vec![id::TERRAIN; (w * h) as usize] };
    let tex = rng.random::<u64>();
    // Background: green-brown terrain with a coarse texture.
    let terrain = [rng.random_range(70.0..110.0), rng.random_range(105.0..140.0), rng.random_range(50.0..80.0)];
    c.rect(0, 0, wi, hi, id::TERRAIN, |px, py| shade(terrain, 0.8 + 0.4 * hash_noise(tex ^ 1, px / 2, py / 2)));
    // Regions: the same grey texture inside whatever the class; the frame's colour is the class.
    let frame = (0.012 * wf).round().max(1.0) as i64;
    for _ in 0..rng.random_range(3..7) {
        let (rw, rh) = ((wf * rng.random_range(0.12..0.3)) as i64, (hf * rng.random_range(0.2..0.55)) as i64);
        let (x0, y0) = (rng.random_range(-rw / 4..wi - rw / 2), rng.random_range(-rh / 4..hi - rh / 2));
        let (x1, y1) = (x0 + rw, y0 + rh);
        let (label, rim) = match rng.random_range(0..3) {
            0 => (id::CAR, [200.0, 45.0, 40.0]),
            1 => (id::BUILDING, [45.0, 70.0, 200.0]),
            _ => (id::WALL, [210.0, 190.0, 45.0]),
        };
        let inside = shared_gray(&mut rng);
        let grain = rng.random::<u64>();
        c.rect(x0, y0, x1, y1, label, |px, py| {
            let border = px < x0 + frame || px >= x1 - frame || py < y0 + frame || py >= y1 - frame;
            if border {
                rim
            } else {
                shade(inside, 0.75 + 0.5 * hash_noise(grain, px, py))
            }
        });
    }
    // Thin structures on top: one-pixel poles (vertical) and sign wires (horizontal).
    for _ in 0..rng.random_range(2..6) {
        let (x, len) = (rng.random_range(0..wi), (hf * rng.random_range(0.3..0.9)) as i64);
        let y0 = rng.random_range(0..(hi - len).max(1));
        let pole = gray(rng.random_range(185.0..225.0));
        c.rect(x, y0, x + 1, y0 + len, id::POLE, |_, _| pole);
    }
    for _ in 0..rng.random_range(1..4) {
        let (y, len) = (rng.random_range(0..hi), (wf * rng.random_range(0.2..0.6)) as i64);
        let x0 = rng.random_range(0..(wi - len).max(1));
        c.rect(x0, y, x0 + len, y + 1, id::TRAFFIC_SIGN, |_, _| [225.0, 215.0, 60.0]);
    }
    c.finish(&mut rng)
}
