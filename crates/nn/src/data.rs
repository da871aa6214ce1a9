//! FFJORD's toy 2-D data sets, seeded.
//!
//! The definitions follow FFJORD's `lib/toy_data.py` (and scikit-learn's `make_circles`,
//! `make_moons`, `make_swiss_roll`, which three of them call), with every random draw taken from
//! one [`Rng`]: the same seed gives the same samples on every machine and version. The streams
//! differ from NumPy's, so individual points differ from FFJORD's; the distributions are the same.

use crate::error::{NnError, Result};
use crate::rng::Rng;
use std::f64::consts::PI;
use std::str::FromStr;

/// A toy data set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Toy {
    /// Five spiral arms (`radial_std = 0.3`, `tangential_std = 0.1`, `rate = 0.25`), scaled by 2.
    Pinwheel,
    /// Two interleaved spirals.
    TwoSpirals,
    /// Two half circles (`noise = 0.1`), scaled by 2 and shifted by `(−1, −0.2)`.
    Moons,
    /// Two concentric circles (`factor = 0.5`, `noise = 0.08`), scaled by 3.
    Circles,
    /// Eight Gaussians (std 0.5) on a circle of radius 4, divided by 1.414.
    EightGaussians,
    /// A 4 × 4 checkerboard on `[−4, 4]²`.
    Checkerboard,
    /// A Swiss roll (`noise = 1`), the (x, z) plane divided by 5.
    SwissRoll,
}

impl Toy {
    /// Every data set.
    pub const ALL: [Toy; 7] = [
        Toy::Pinwheel,
        Toy::TwoSpirals,
        Toy::Moons,
        Toy::Circles,
        Toy::EightGaussians,
        Toy::Checkerboard,
        Toy::SwissRoll,
    ];

    /// FFJORD's name.
    pub fn name(self) -> &'static str {
        match self {
            Toy::Pinwheel => "pinwheel",
            Toy::TwoSpirals => "2spirals",
            Toy::Moons => "moons",
            Toy::Circles => "circles",
            Toy::EightGaussians => "8gaussians",
            Toy::Checkerboard => "checkerboard",
            Toy::SwissRoll => "swissroll",
        }
    }

    /// `n` samples, row-major `n × 2`.
    pub fn sample(self, rng: &mut Rng, n: usize) -> Vec<f64> {
        let mut out = Vec::with_capacity(2 * n);
        match self {
            Toy::Pinwheel => {
                let classes = 5;
                let per = n / classes;
                let mut pts = Vec::with_capacity(n);
                for i in 0..classes * per {
                    let label = i / per.max(1);
                    let r = rng.normal() * 0.3 + 1.0;
                    let tng = rng.normal() * 0.1;
                    let angle = 2.0 * PI * label as f64 / classes as f64 + 0.25 * r.exp();
                    let (s, c) = angle.sin_cos();
                    pts.push([2.0 * (r * c - tng * s), 2.0 * (r * s + tng * c)]);
                }
                // FFJORD draws n // 5 per class; top up with more draws to return exactly n.
                while pts.len() < n {
                    let label = rng.below(classes);
                    let r = rng.normal() * 0.3 + 1.0;
                    let tng = rng.normal() * 0.1;
                    let angle = 2.0 * PI * label as f64 / classes as f64 + 0.25 * r.exp();
                    let (s, c) = angle.sin_cos();
                    pts.push([2.0 * (r * c - tng * s), 2.0 * (r * s + tng * c)]);
                }
                for i in rng.permutation(n) {
                    out.extend_from_slice(&pts[i]);
                }
            }
            Toy::TwoSpirals => {
                for i in 0..n {
                    let m = (rng.uniform()).sqrt() * 540.0 * (2.0 * PI) / 360.0;
                    let sign = if i % 2 == 0 { 1.0 } else { -1.0 };
                    let x = sign * (-m.cos() * m + rng.uniform() * 0.5) / 3.0 + rng.normal() * 0.1;
                    let y = sign * (m.sin() * m + rng.uniform() * 0.5) / 3.0 + rng.normal() * 0.1;
                    out.extend_from_slice(&[x, y]);
                }
            }
            Toy::Moons => {
                let n_out = n / 2;
                let n_in = n - n_out;
                let mut pts = Vec::with_capacity(n);
                for i in 0..n_out {
                    let a = PI * i as f64 / (n_out.max(2) - 1) as f64;
                    pts.push([a.cos(), a.sin()]);
                }
                for i in 0..n_in {
                    let a = PI * i as f64 / (n_in.max(2) - 1) as f64;
                    pts.push([1.0 - a.cos(), 1.0 - a.sin() - 0.5]);
                }
                for i in rng.permutation(n) {
                    let [x, y] = pts[i];
                    out.push((x + 0.1 * rng.normal()) * 2.0 - 1.0);
                    out.push((y + 0.1 * rng.normal()) * 2.0 - 0.2);
                }
            }
            Toy::Circles => {
                let n_out = n / 2;
                let n_in = n - n_out;
                let mut pts = Vec::with_capacity(n);
                for i in 0..n_out {
                    let a = 2.0 * PI * i as f64 / n_out as f64;
                    pts.push([a.cos(), a.sin()]);
                }
                for i in 0..n_in {
                    let a = 2.0 * PI * i as f64 / n_in as f64;
                    pts.push([0.5 * a.cos(), 0.5 * a.sin()]);
                }
                for i in rng.permutation(n) {
                    let [x, y] = pts[i];
                    out.push(3.0 * (x + 0.08 * rng.normal()));
                    out.push(3.0 * (y + 0.08 * rng.normal()));
                }
            }
            Toy::EightGaussians => {
                let s = 1.0 / 2f64.sqrt();
                let centers = [
                    (1.0, 0.0),
                    (-1.0, 0.0),
                    (0.0, 1.0),
                    (0.0, -1.0),
                    (s, s),
                    (s, -s),
                    (-s, s),
                    (-s, -s),
                ];
                for _ in 0..n {
                    let (px, py) = (rng.normal() * 0.5, rng.normal() * 0.5);
                    let (cx, cy) = centers[rng.below(8)];
                    out.push((px + 4.0 * cx) / 1.414);
                    out.push((py + 4.0 * cy) / 1.414);
                }
            }
            Toy::Checkerboard => {
                for _ in 0..n {
                    let x1 = rng.uniform() * 4.0 - 2.0;
                    let x2_ = rng.uniform() - (rng.below(2) as f64) * 2.0;
                    let x2 = x2_ + x1.floor().rem_euclid(2.0);
                    out.push(2.0 * x1);
                    out.push(2.0 * x2);
                }
            }
            Toy::SwissRoll => {
                for _ in 0..n {
                    let t = 1.5 * PI * (1.0 + 2.0 * rng.uniform());
                    let x = t * t.cos() + rng.normal();
                    let _y = 21.0 * rng.uniform() + rng.normal();
                    let z = t * t.sin() + rng.normal();
                    out.push(x / 5.0);
                    out.push(z / 5.0);
                }
            }
        }
        out
    }
}

impl FromStr for Toy {
    type Err = NnError;
    fn from_str(s: &str) -> Result<Self> {
        Toy::ALL
            .into_iter()
            .find(|t| t.name() == s)
            .ok_or_else(|| NnError::Invalid {
                name: "data set".into(),
                reason: format!(
                    "unknown {s:?}; expected one of {}",
                    Toy::ALL.map(|t| t.name()).join(", ")
                ),
            })
    }
}
