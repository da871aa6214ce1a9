//! Test right-hand sides with hand-written VJPs, a matrix exponential, and small helpers.
#![allow(dead_code)]

#[allow(unused_imports)]
pub use adjoint::toy::{Linear, Mlp};

/// Deterministic values in [-1, 1).
pub fn lcg(len: usize, seed: u64) -> Vec<f64> {
    let mut s = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..len)
        .map(|_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((s >> 11) as f64 / (1u64 << 53) as f64) * 2.0 - 1.0
        })
        .collect()
}

/// `‖x − y‖₂ / ‖y‖₂`.
pub fn rel_err(x: &[f64], y: &[f64]) -> f64 {
    let num: f64 = x
        .iter()
        .zip(y)
        .map(|(a, b)| (a - b).powi(2))
        .sum::<f64>()
        .sqrt();
    let den: f64 = y.iter().map(|b| b * b).sum::<f64>().sqrt();
    num / den
}

fn matmul(a: &[f64], b: &[f64], n: usize) -> Vec<f64> {
    let mut c = vec![0.0; n * n];
    for i in 0..n {
        for k in 0..n {
            let aik = a[i * n + k];
            for j in 0..n {
                c[i * n + j] += aik * b[k * n + j];
            }
        }
    }
    c
}

/// `exp(M)` by scaling and squaring with a degree-24 Taylor polynomial (f64, small `n`).
pub fn expm(m: &[f64], n: usize) -> Vec<f64> {
    let norm = m.iter().fold(0.0f64, |a, x| a.max(x.abs())) * n as f64;
    let s = if norm > 0.25 {
        (norm / 0.25).log2().ceil() as i32
    } else {
        0
    };
    let scaled: Vec<f64> = m.iter().map(|x| x / 2f64.powi(s)).collect();
    let mut result = vec![0.0; n * n];
    let mut term = vec![0.0; n * n];
    for i in 0..n {
        result[i * n + i] = 1.0;
        term[i * n + i] = 1.0;
    }
    for k in 1..=24 {
        term = matmul(&term, &scaled, n)
            .into_iter()
            .map(|x| x / k as f64)
            .collect();
        for (r, t) in result.iter_mut().zip(&term) {
            *r += t;
        }
    }
    for _ in 0..s {
        result = matmul(&result, &result, n);
    }
    result
}

/// The exact gradient of `L = Σ_k w_kᵀ z(s_k)` for `dz/dt = A z`, `z(0) = z0`:
/// `dL/dz0 = Σ_k e^{Aᵀ s_k} w_k` and `dL/dA_ij = Σ_k w_kᵀ D_ij(s_k) z0`, where `D_ij(s)` is the
/// Fréchet derivative of `exp` at `A s` in direction `E_ij s`, read off the upper-right block of
/// `exp([[A s, E_ij s], [0, A s]])` (Van Loan 1978).
pub fn linear_exact_gradient(
    a: &[f64],
    n: usize,
    z0: &[f64],
    outs: &[(f64, Vec<f64>)],
) -> (Vec<f64>, Vec<f64>) {
    let mut dz0 = vec![0.0; n];
    let mut da = vec![0.0; n * n];
    for (s, w) in outs {
        let e = expm(&a.iter().map(|x| x * s).collect::<Vec<_>>(), n);
        for j in 0..n {
            dz0[j] += (0..n).map(|i| e[i * n + j] * w[i]).sum::<f64>();
        }
        let m = 2 * n;
        for i in 0..n {
            for j in 0..n {
                let mut big = vec![0.0; m * m];
                for r in 0..n {
                    for c in 0..n {
                        big[r * m + c] = a[r * n + c] * s;
                        big[(r + n) * m + c + n] = a[r * n + c] * s;
                    }
                }
                big[i * m + j + n] = *s;
                let eb = expm(&big, m);
                let mut acc = 0.0;
                for r in 0..n {
                    for c in 0..n {
                        acc += w[r] * eb[r * m + c + n] * z0[c];
                    }
                }
                da[i * n + j] += acc;
            }
        }
    }
    (dz0, da)
}

/// Every method, as `(label, method)`.
pub fn all_methods() -> Vec<(&'static str, adjoint::Method)> {
    use adjoint::{BackwardNorm::*, Checkpoints, IrdmGrid, Method};
    use cheb::Kind;
    vec![
        ("direct", Method::Direct),
        ("rdm", Method::Rdm { norm: Full }),
        ("rdm-seminorm", Method::Rdm { norm: Seminorm }),
        (
            "anode-k3",
            Method::Anode {
                checkpoints: Checkpoints::EveryKSteps(3),
            },
        ),
        (
            "anode-c4",
            Method::Anode {
                checkpoints: Checkpoints::Count(4),
            },
        ),
        (
            "irdm-lobatto32",
            Method::Irdm {
                grid: IrdmGrid::Fixed {
                    kind: Kind::Lobatto,
                    n: 32,
                },
                norm: Full,
            },
        ),
        (
            "irdm-lobatto32-semi",
            Method::Irdm {
                grid: IrdmGrid::Fixed {
                    kind: Kind::Lobatto,
                    n: 32,
                },
                norm: Seminorm,
            },
        ),
        (
            "irdm-first32",
            Method::Irdm {
                grid: IrdmGrid::Fixed {
                    kind: Kind::First,
                    n: 32,
                },
                norm: Full,
            },
        ),
        (
            "irdm-auto",
            Method::Irdm {
                grid: IrdmGrid::Auto {
                    n_max: 64,
                    rel_tol: 1e-13,
                    abs_tol: 1e-14,
                },
                norm: Full,
            },
        ),
    ]
}
