//! Hand-written VJPs against central finite differences (f64), by property testing over shapes,
//! activations, layer kinds and values; the CNF's divergence against a finite-difference Jacobian
//! trace; Hutchinson's estimator unbiased.

use adjoint::Vjp;
use nn::{Activation, Cnf, Divergence, LayerKind, NetRhs, Noise, OdeNet, Rng};
use proptest::prelude::*;

fn activation() -> impl Strategy<Value = Activation> {
    prop_oneof![
        Just(Activation::Tanh),
        Just(Activation::Softplus),
        Just(Activation::Elu),
        Just(Activation::Sigmoid),
    ]
}

fn kind() -> impl Strategy<Value = LayerKind> {
    prop_oneof![Just(LayerKind::ConcatSquash), Just(LayerKind::Linear)]
}

fn randv(rng: &mut Rng, n: usize, scale: f64) -> Vec<f64> {
    (0..n).map(|_| scale * rng.normal()).collect()
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// Checks `⟨a, (F(x + εv) − F(x − εv))/2ε⟩ = ⟨vjp, v⟩` for the state and the parameters.
fn check_vjp<F: Vjp<f64>>(
    f: &mut F,
    t: f64,
    x: &[f64],
    p: &[f64],
    rng: &mut Rng,
    tol: f64,
) -> Result<(), TestCaseError> {
    let (n, m) = (f.state_len(), f.param_len());
    let a = randv(rng, n, 1.0);
    let (mut adj_z, mut adj_p, mut value) = (vec![0.0; n], vec![0.0; m], vec![0.0; n]);
    f.vjp(t, x, p, &a, Some(&mut value), &mut adj_z, &mut adj_p);
    let mut direct = vec![0.0; n];
    f.eval(t, &x.to_vec(), &p.to_vec(), &mut direct);
    for (u, w) in value.iter().zip(&direct) {
        prop_assert!(
            (u - w).abs() <= 1e-12 * (1.0 + w.abs()),
            "value {u} vs eval {w}"
        );
    }
    // Central differences at two step sizes: a ReLU kink (conv block) within ε of the point
    // spoils one of them (seen: a pre-activation between 1e-7 and 1e-6 away); a wrong VJP
    // matches neither.
    let steps = [1e-6, 1e-6 / 8.0];
    let mut eval = |xx: &[f64], pp: &[f64]| {
        let mut out = vec![0.0; n];
        f.eval(t, &xx.to_vec(), &pp.to_vec(), &mut out);
        dot(&a, &out)
    };
    let v = randv(rng, n, 1.0);
    let an = dot(&adj_z, &v);
    let fds: Vec<f64> = steps
        .iter()
        .map(|&eps| {
            let xp: Vec<f64> = x.iter().zip(&v).map(|(x, v)| x + eps * v).collect();
            let xm: Vec<f64> = x.iter().zip(&v).map(|(x, v)| x - eps * v).collect();
            (eval(&xp, p) - eval(&xm, p)) / (2.0 * eps)
        })
        .collect();
    prop_assert!(
        fds.iter()
            .any(|fd| (fd - an).abs() <= tol * (1.0 + an.abs())),
        "state: fd {fds:?} vs vjp {an}"
    );
    let w = randv(rng, m, 1.0);
    let an = dot(&adj_p, &w);
    let fds: Vec<f64> = steps
        .iter()
        .map(|&eps| {
            let pp: Vec<f64> = p.iter().zip(&w).map(|(x, v)| x + eps * v).collect();
            let pm: Vec<f64> = p.iter().zip(&w).map(|(x, v)| x - eps * v).collect();
            (eval(x, &pp) - eval(x, &pm)) / (2.0 * eps)
        })
        .collect();
    prop_assert!(
        fds.iter()
            .any(|fd| (fd - an).abs() <= tol * (1.0 + an.abs())),
        "params: fd {fds:?} vs vjp {an}"
    );
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// torchdiffeq's MNIST ODE block (group norm, ReLU, 3×3 time-concatenated convolutions).
    /// ReLU kinks make central differences wrong where a pre-activation sits within ε of zero,
    /// hence the two step sizes of `check_vjp`.
    #[test]
    fn conv_block_vjp_matches_finite_differences(
        batch in 1usize..3, channels in 1usize..5, h in 1usize..6, w in 1usize..6,
        t in -1.0f64..1.0, seed in any::<u64>(),
    ) {
        let f = nn::ConvOdeFunc::<f64>::new(batch, channels, h, w).unwrap();
        let mut rng = Rng::new(seed);
        let mut p = f.init_params(&mut rng);
        // Non-trivial affine parameters.
        for v in p.iter_mut() {
            *v += 0.3 * rng.normal();
        }
        let mut f = f;
        let x = randv(&mut rng, batch * channels * h * w, 1.0);
        check_vjp(&mut f, t, &x, &p, &mut rng, 1e-5)?;
    }

    #[test]
    fn net_vjp_matches_finite_differences(
        act in activation(), kind in kind(), d in 1usize..4, hidden in prop::collection::vec(1usize..9, 0..3),
        batch in 1usize..5, t in -1.0f64..1.0, seed in any::<u64>(),
    ) {
        let mut dims = vec![d];
        dims.extend(&hidden);
        dims.push(d);
        let net = OdeNet::<f64>::new(&dims, kind, act).unwrap();
        let mut rng = Rng::new(seed);
        let p = net.init_params(&mut rng);
        let mut f = NetRhs::new(net, batch).unwrap();
        let x = randv(&mut rng, batch * d, 1.0);
        check_vjp(&mut f, t, &x, &p, &mut rng, 1e-6)?;
    }

    #[test]
    fn cnf_vjp_matches_finite_differences(
        act in activation(), d in 1usize..4, h in 1usize..9, batch in 1usize..4,
        hutchinson in any::<bool>(), t in 0.0f64..1.0, seed in any::<u64>(),
    ) {
        let net = OdeNet::<f64>::new(&[d, h, h, d], LayerKind::ConcatSquash, act).unwrap();
        let mut rng = Rng::new(seed);
        let p = net.init_params(&mut rng);
        let div = if hutchinson { Divergence::Hutchinson } else { Divergence::Exact };
        let mut cnf = Cnf::new(net, batch, div).unwrap();
        cnf.sample_noise(&mut rng, Noise::Gaussian);
        let x = randv(&mut rng, batch * (d + 1), 1.0);
        check_vjp(&mut cnf, t, &x, &p, &mut rng, 1e-6)?;
    }

    /// The exact divergence equals the trace of a central-difference Jacobian.
    #[test]
    fn exact_divergence_is_the_jacobian_trace(
        act in activation(), d in 1usize..5, h in 1usize..9, batch in 1usize..4, seed in any::<u64>(),
    ) {
        let net = OdeNet::<f64>::new(&[d, h, d], LayerKind::ConcatSquash, act).unwrap();
        let mut rng = Rng::new(seed);
        let p = net.init_params(&mut rng);
        let mut cnf = Cnf::new(net, batch, Divergence::Exact).unwrap();
        let z = randv(&mut rng, batch * d, 1.0);
        let (mut dz, mut div) = (vec![0.0; batch * d], vec![0.0; batch]);
        cnf.eval_with_divergence(0.3, &z, &p, &mut dz, &mut div).unwrap();
        let eps = 1e-6;
        for b in 0..batch {
            let mut trace = 0.0;
            for j in 0..d {
                let (mut zp, mut zm) = (z.clone(), z.clone());
                zp[b * d + j] += eps;
                zm[b * d + j] -= eps;
                let (mut fp, mut fm, mut scratch) = (vec![0.0; batch * d], vec![0.0; batch * d], vec![0.0; batch]);
                cnf.eval_with_divergence(0.3, &zp, &p, &mut fp, &mut scratch).unwrap();
                cnf.eval_with_divergence(0.3, &zm, &p, &mut fm, &mut scratch).unwrap();
                trace += (fp[b * d + j] - fm[b * d + j]) / (2.0 * eps);
            }
            prop_assert!((trace - div[b]).abs() < 1e-6 * (1.0 + trace.abs()), "{trace} vs {}", div[b]);
        }
    }
}

/// Hutchinson's estimate is unbiased: its mean over many noise draws approaches the exact
/// divergence, within a few standard errors, for Gaussian and Rademacher noise.
#[test]
fn hutchinson_is_unbiased() {
    let d = 4;
    let net = OdeNet::<f64>::new(&[d, 16, d], LayerKind::ConcatSquash, Activation::Tanh).unwrap();
    let mut rng = Rng::new(42);
    let p: Vec<f64> = net.init_params(&mut rng).iter().map(|x| 2.0 * x).collect();
    let z = randv(&mut rng, d, 1.0);
    let mut exact = Cnf::new(net.clone(), 1, Divergence::Exact).unwrap();
    let (mut dz, mut div) = (vec![0.0; d], vec![0.0]);
    exact
        .eval_with_divergence(0.2, &z, &p, &mut dz, &mut div)
        .unwrap();
    for noise in [Noise::Gaussian, Noise::Rademacher] {
        let mut h = Cnf::new(net.clone(), 1, Divergence::Hutchinson).unwrap();
        let draws = 20_000;
        let (mut sum, mut sum2) = (0.0, 0.0);
        let mut est = vec![0.0];
        for _ in 0..draws {
            h.sample_noise(&mut rng, noise);
            h.eval_with_divergence(0.2, &z, &p, &mut dz, &mut est)
                .unwrap();
            sum += est[0];
            sum2 += est[0] * est[0];
        }
        let mean = sum / draws as f64;
        let var = sum2 / draws as f64 - mean * mean;
        let se = (var / draws as f64).sqrt();
        assert!(var > 0.0, "{noise:?}: the estimate must vary");
        assert!(
            (mean - div[0]).abs() < 4.0 * se,
            "{noise:?}: mean {mean} vs exact {} (se {se})",
            div[0]
        );
    }
}

/// The vectorized f32 tanh stays within a few ulps of the standard library everywhere.
#[test]
fn fast_f32_tanh_is_accurate() {
    use nn::Float;
    let xs: Vec<f32> = (-200_000..=200_000)
        .map(|i| i as f32 * 1e-4)
        .chain([1e-30, -1e-8, 0.0, 50.0, -1e4])
        .collect();
    let mut ys = vec![0.0f32; xs.len()];
    f32::tanh_into(&xs, &mut ys);
    for (&x, &y) in xs.iter().zip(&ys) {
        let want = f64::from(x).tanh();
        let err = (f64::from(y) - want).abs();
        assert!(
            err <= 4.0 * f64::from(f32::EPSILON) * want.abs().max(1e-30) + 1e-45,
            "tanh({x}) = {y}, want {want}"
        );
    }
}

/// With 64 channels group norm has 32 groups of two channels (torchdiffeq's `min(32, C)`).
#[test]
fn conv_block_with_multichannel_groups() {
    let mut f = nn::ConvOdeFunc::<f64>::new(1, 64, 3, 2).unwrap();
    let mut rng = Rng::new(5);
    let mut p = f.init_params(&mut rng);
    for v in p.iter_mut() {
        *v += 0.3 * rng.normal();
    }
    assert_eq!(
        f.layout().get("conv1._layer.weight").unwrap().shape,
        vec![64, 65, 3, 3]
    );
    let x = randv(&mut rng, 64 * 6, 1.0);
    check_vjp(&mut f, 0.4, &x, &p, &mut rng, 1e-5).unwrap();
    assert!(nn::ConvOdeFunc::<f64>::new(1, 0, 3, 3).is_err());
}
