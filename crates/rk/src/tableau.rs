//! Butcher tableaux with embedded error estimates and continuous extensions.
//!
//! A step of size `h` from `(t, y)` computes stages `k_i = f(t + c_i h, y + h Σ_{j<i} a_ij k_j)`,
//! the new state `y1 = y + h Σ b_i k_i`, the local error estimate `err = h Σ e_i k_i` with
//! `e = b − b̂` (the difference to the embedded lower-order weights), and the dense output
//! `y(t + θh) = y + h Σ b_i(θ) k_i`, `θ ∈ [0, 1]`, with `b_i(1) = b_i`. For FSAL tableaux
//! ("first same as last") the last stage is evaluated at `(t + h, y1)` and serves as the first
//! stage of the next step.
//!
//! | method | order | embedded | dense | stages (new per step) | source |
//! |---|---|---|---|---|---|
//! | Dormand–Prince 5(4) | 5 | 4 | 4 | 7 (6, FSAL) | Dormand & Prince, J. Comput. Appl. Math. 6 (1980); dense output: Hairer, Nørsett & Wanner, *Solving ODEs I*, §II.6 (code `DOPRI5`, `CONTD5`) |
//! | Tsitouras 5(4) | 5 | 4 | 4 | 7 (6, FSAL) | Ch. Tsitouras, Comput. Math. Appl. 62 (2011) 770–775, incl. its interpolant |
//! | Bogacki–Shampine 3(2) | 3 | 2 | 3 | 4 (3, FSAL) | Bogacki & Shampine, Appl. Math. Lett. 2 (1989); dense output: cubic Hermite |
//! | Euler | 1 | – | 1 | 1 | linear interpolation |
//! | explicit midpoint | 2 | – | 2 | 2 | dense `b_1 = θ − θ², b_2 = θ²` |
//! | classical RK4 | 4 | – | 3 | 4 | dense: Hairer, Nørsett & Wanner I, §II.6 |

// Coefficients are written as published, even where that is more digits than f64 holds.
#![allow(clippy::excessive_precision)]

/// Coefficients of one explicit Runge–Kutta method (in `f64`; solvers convert once).
#[derive(Debug)]
pub struct Tableau {
    /// Short name (`"dopri5"`, `"tsit5"`, …).
    pub name: &'static str,
    /// Order of the propagated solution.
    pub order: u32,
    /// Order of the embedded solution, `None` for fixed-step methods.
    pub embedded_order: Option<u32>,
    /// Order of the dense output.
    pub dense_order: u32,
    /// Nodes `c_i`.
    pub c: &'static [f64],
    /// Strictly lower-triangular `a`: `a[i]` holds `a_i0 … a_i,i−1`.
    pub a: &'static [&'static [f64]],
    /// Weights `b_i` of the propagated solution.
    pub b: &'static [f64],
    /// Error weights `e_i = b_i − b̂_i`, `None` for fixed-step methods.
    pub e: Option<&'static [f64]>,
    /// Whether the last stage equals `f(t + h, y1)` (first same as last).
    pub fsal: bool,
    /// Writes the dense-output weights `b_i(θ)` into `out` (one per stage).
    pub dense: fn(f64, &mut [f64]),
}

impl Tableau {
    /// Number of stages.
    pub fn stages(&self) -> usize {
        self.c.len()
    }

    /// Right-hand-side evaluations per step attempt once running (one less for FSAL).
    pub fn evals_per_step(&self) -> usize {
        self.stages() - usize::from(self.fsal)
    }
}

const DOPRI5_B: [f64; 7] = [
    35.0 / 384.0,
    0.0,
    500.0 / 1113.0,
    125.0 / 192.0,
    -2187.0 / 6784.0,
    11.0 / 84.0,
    0.0,
];

/// Dormand–Prince 5(4), the default: FSAL, 4th-order dense output.
pub static DOPRI5: Tableau = Tableau {
    name: "dopri5",
    order: 5,
    embedded_order: Some(4),
    dense_order: 4,
    c: &[0.0, 1.0 / 5.0, 3.0 / 10.0, 4.0 / 5.0, 8.0 / 9.0, 1.0, 1.0],
    a: &[
        &[],
        &[1.0 / 5.0],
        &[3.0 / 40.0, 9.0 / 40.0],
        &[44.0 / 45.0, -56.0 / 15.0, 32.0 / 9.0],
        &[
            19372.0 / 6561.0,
            -25360.0 / 2187.0,
            64448.0 / 6561.0,
            -212.0 / 729.0,
        ],
        &[
            9017.0 / 3168.0,
            -355.0 / 33.0,
            46732.0 / 5247.0,
            49.0 / 176.0,
            -5103.0 / 18656.0,
        ],
        &[
            35.0 / 384.0,
            0.0,
            500.0 / 1113.0,
            125.0 / 192.0,
            -2187.0 / 6784.0,
            11.0 / 84.0,
        ],
    ],
    b: &DOPRI5_B,
    // b − b̂ with the alternative embedded weights b̂ = (1951/21600, 0, 22642/50085, 451/720,
    // −12231/42400, 649/6300, 1/60) of Shampine, Math. Comp. 46 (1986), the pair torchdiffeq
    // uses; Dormand & Prince's own b̂ (5179/57600, …) is a valid 4th-order estimate too, but the
    // step sequences (and so NFE) then differ from torchdiffeq's.
    e: Some(&[
        35.0 / 384.0 - 1951.0 / 21600.0,
        0.0,
        500.0 / 1113.0 - 22642.0 / 50085.0,
        125.0 / 192.0 - 451.0 / 720.0,
        -2187.0 / 6784.0 + 12231.0 / 42400.0,
        11.0 / 84.0 - 649.0 / 6300.0,
        -1.0 / 60.0,
    ]),
    fsal: true,
    dense: dopri5_dense,
};

/// Hairer's `CONTD5` written as weights: with `Δ = Σ b_i k_i`,
/// `y(θ) = y0 + h[θΔ + θ(1−θ)(k_1 − Δ) + θ²(1−θ)(2Δ − k_1 − k_7) + θ²(1−θ)² Σ d_i k_i]`.
fn dopri5_dense(theta: f64, out: &mut [f64]) {
    const D: [f64; 7] = [
        -12715105075.0 / 11282082432.0,
        0.0,
        87487479700.0 / 32700410799.0,
        -10690763975.0 / 1880347072.0,
        701980252875.0 / 199316789632.0,
        -1453857185.0 / 822651844.0,
        69997945.0 / 29380423.0,
    ];
    let t = theta;
    let (p1, p2, p3, p4) = (
        t,
        t * (1.0 - t),
        t * t * (1.0 - t),
        t * t * (1.0 - t) * (1.0 - t),
    );
    for i in 0..7 {
        let first = if i == 0 { 1.0 } else { 0.0 };
        let last = if i == 6 { 1.0 } else { 0.0 };
        let b = DOPRI5_B[i];
        out[i] = p1 * b + p2 * (first - b) + p3 * (2.0 * b - first - last) + p4 * D[i];
    }
}

/// Tsitouras 5(4): FSAL, 4th-order dense output.
pub static TSIT5: Tableau = Tableau {
    name: "tsit5",
    order: 5,
    embedded_order: Some(4),
    dense_order: 4,
    c: &[0.0, 0.161, 0.327, 0.9, 0.980_025_540_904_509_7, 1.0, 1.0],
    a: &[
        &[],
        &[0.161],
        &[-0.008_480_655_492_356_989, 0.335_480_655_492_357],
        &[
            2.897_153_057_105_493,
            -6.359_448_489_975_075,
            4.362_295_432_869_581_5,
        ],
        &[
            5.325_864_828_439_257,
            -11.748_883_564_062_828,
            7.495_539_342_889_836_5,
            -0.092_495_066_361_755_25,
        ],
        &[
            5.861_455_442_946_42,
            -12.920_969_317_847_11,
            8.159_367_898_576_159,
            -0.071_584_973_281_401,
            -0.028_269_050_394_068_383,
        ],
        &[
            0.096_460_766_818_065_23,
            0.01,
            0.479_889_650_414_499_6,
            1.379_008_574_103_742,
            -3.290_069_515_436_081,
            2.324_710_524_099_774,
        ],
    ],
    b: &[
        0.096_460_766_818_065_23,
        0.01,
        0.479_889_650_414_499_6,
        1.379_008_574_103_742,
        -3.290_069_515_436_081,
        2.324_710_524_099_774,
        0.0,
    ],
    e: Some(&[
        0.001_780_011_052_226,
        0.000_816_434_459_657,
        -0.007_880_878_010_262,
        0.144_711_007_173_263,
        -0.582_357_165_452_555,
        0.458_082_105_929_187,
        -1.0 / 66.0,
    ]),
    fsal: true,
    dense: tsit5_dense,
};

/// Tsitouras' interpolant, his eq. (8) coefficients in factored form.
fn tsit5_dense(t: f64, out: &mut [f64]) {
    let t2 = t * t;
    out[0] = -1.053_088_497_729_021_6
        * t
        * (t - 1.329_989_018_975_141_2)
        * (t2 - 1.436_402_854_171_635_1 * t + 0.713_981_691_707_420_9);
    out[1] = 0.1017 * t2 * (t2 - 2.196_656_833_824_975_4 * t + 1.294_985_250_737_463_1);
    out[2] =
        2.490_627_285_651_252_8 * t2 * (t2 - 2.385_356_454_720_616_6 * t + 1.578_034_682_080_924_9);
    out[3] = -16.548_102_889_244_903
        * (t - 1.217_129_272_955_332_4)
        * (t - 0.616_204_060_378_000_9)
        * t2;
    out[4] =
        47.379_521_962_819_28 * (t - 1.203_071_208_372_362_6) * (t - 0.658_047_292_653_547_4) * t2;
    out[5] = -34.870_657_861_496_61 * (t - 1.2) * (t - 2.0 / 3.0) * t2;
    out[6] = 2.5 * (t - 1.0) * (t - 0.6) * t2;
}

/// Bogacki–Shampine 3(2): FSAL, cubic Hermite dense output.
pub static BOSH3: Tableau = Tableau {
    name: "bosh3",
    order: 3,
    embedded_order: Some(2),
    dense_order: 3,
    c: &[0.0, 0.5, 0.75, 1.0],
    a: &[
        &[],
        &[0.5],
        &[0.0, 0.75],
        &[2.0 / 9.0, 1.0 / 3.0, 4.0 / 9.0],
    ],
    b: &[2.0 / 9.0, 1.0 / 3.0, 4.0 / 9.0, 0.0],
    e: Some(&[
        2.0 / 9.0 - 7.0 / 24.0,
        1.0 / 3.0 - 1.0 / 4.0,
        4.0 / 9.0 - 1.0 / 3.0,
        -1.0 / 8.0,
    ]),
    fsal: true,
    dense: bosh3_dense,
};

/// Cubic Hermite through `y0, y1, f0 = k_1, f1 = k_4`, with `y1 − y0 = h Σ b_i k_i`.
fn bosh3_dense(t: f64, out: &mut [f64]) {
    const B: [f64; 4] = [2.0 / 9.0, 1.0 / 3.0, 4.0 / 9.0, 0.0];
    let h01 = 3.0 * t * t - 2.0 * t * t * t;
    let h10 = t - 2.0 * t * t + t * t * t;
    let h11 = t * t * t - t * t;
    for i in 0..4 {
        out[i] = h01 * B[i];
    }
    out[0] += h10;
    out[3] += h11;
}

/// Forward Euler (fixed step).
pub static EULER: Tableau = Tableau {
    name: "euler",
    order: 1,
    embedded_order: None,
    dense_order: 1,
    c: &[0.0],
    a: &[&[]],
    b: &[1.0],
    e: None,
    fsal: false,
    dense: |t, out| out[0] = t,
};

/// Explicit midpoint rule (fixed step).
pub static MIDPOINT: Tableau = Tableau {
    name: "midpoint",
    order: 2,
    embedded_order: None,
    dense_order: 2,
    c: &[0.0, 0.5],
    a: &[&[], &[0.5]],
    b: &[0.0, 1.0],
    e: None,
    fsal: false,
    dense: |t, out| {
        out[0] = t - t * t;
        out[1] = t * t;
    },
};

/// The classical fourth-order Runge–Kutta method (fixed step).
pub static RK4: Tableau = Tableau {
    name: "rk4",
    order: 4,
    embedded_order: None,
    dense_order: 3,
    c: &[0.0, 0.5, 0.5, 1.0],
    a: &[&[], &[0.5], &[0.0, 0.5], &[0.0, 0.0, 1.0]],
    b: &[1.0 / 6.0, 1.0 / 3.0, 1.0 / 3.0, 1.0 / 6.0],
    e: None,
    fsal: false,
    dense: |t, out| {
        let (t2, t3) = (t * t, t * t * t);
        out[0] = t - 1.5 * t2 + 2.0 / 3.0 * t3;
        out[1] = t2 - 2.0 / 3.0 * t3;
        out[2] = t2 - 2.0 / 3.0 * t3;
        out[3] = -0.5 * t2 + 2.0 / 3.0 * t3;
    },
};

/// The methods available, by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Method {
    /// Dormand–Prince 5(4) ([`DOPRI5`]), the default.
    #[default]
    Dopri5,
    /// Tsitouras 5(4) ([`TSIT5`]).
    Tsit5,
    /// Bogacki–Shampine 3(2) ([`BOSH3`]).
    Bosh3,
    /// Forward Euler ([`EULER`]), fixed step.
    Euler,
    /// Explicit midpoint ([`MIDPOINT`]), fixed step.
    Midpoint,
    /// Classical RK4 ([`RK4`]), fixed step.
    Rk4,
}

impl Method {
    /// Every method, in a fixed order.
    pub const ALL: [Method; 6] = [
        Method::Dopri5,
        Method::Tsit5,
        Method::Bosh3,
        Method::Euler,
        Method::Midpoint,
        Method::Rk4,
    ];

    /// The coefficients.
    pub fn tableau(self) -> &'static Tableau {
        match self {
            Method::Dopri5 => &DOPRI5,
            Method::Tsit5 => &TSIT5,
            Method::Bosh3 => &BOSH3,
            Method::Euler => &EULER,
            Method::Midpoint => &MIDPOINT,
            Method::Rk4 => &RK4,
        }
    }

    /// Whether the method carries an error estimate (and so can adapt its step).
    pub fn is_adaptive(self) -> bool {
        self.tableau().e.is_some()
    }
}
