//! Batch sharding over threads changes nothing but floating-point reassociation: the CNF's and
//! the ODE net's values and VJPs on 2, 3 and 4 shards (odd batch, uneven shards) equal the
//! sequential ones, and training for a few iterations gives the same losses, NFE and
//! parameters on 1 and 2 threads (f32, 1e-5 relative).

use adjoint::{BackwardNorm, Method, Vjp};
use nn::train::{TrainConfig, Trainer};
use nn::{Activation, Cnf, Divergence, LayerKind, NetRhs, Noise, OdeNet, Rng};

fn rel(x: &[f32], y: &[f32]) -> f64 {
    let num: f64 = x.iter().zip(y).map(|(a, b)| f64::from(a - b).powi(2)).sum();
    let den: f64 = y.iter().map(|b| f64::from(*b).powi(2)).sum();
    (num / den.max(f64::MIN_POSITIVE)).sqrt()
}

fn random(rng: &mut Rng, n: usize) -> Vec<f32> {
    (0..n).map(|_| rng.normal() as f32).collect()
}

/// `(f, vjp's value, adj_z, adj_p)` of a right-hand side on one input.
fn evaluate<R: Vjp<f32>>(rhs: &mut R, z: &[f32], params: &[f32], a: &[f32]) -> [Vec<f32>; 4] {
    let n = rhs.state_len();
    let mut f = vec![0.0; n];
    rhs.eval(0.3, &z.to_vec(), &params.to_vec(), &mut f);
    let (mut value, mut adj_z, mut adj_p) = (vec![0.0; n], vec![0.0; n], vec![0.0; params.len()]);
    rhs.vjp(0.3, z, params, a, Some(&mut value), &mut adj_z, &mut adj_p);
    // The VJP without its value gives the same cotangents.
    let (mut adj_z2, mut adj_p2) = (vec![1.0; n], vec![1.0; params.len()]);
    rhs.vjp(0.3, z, params, a, None, &mut adj_z2, &mut adj_p2);
    assert_eq!((&adj_z, &adj_p), (&adj_z2, &adj_p2));
    [f, value, adj_z, adj_p]
}

fn assert_close(label: &str, got: &[Vec<f32>; 4], want: &[Vec<f32>; 4]) {
    for (k, name) in ["f", "value", "adj_z", "adj_p"].iter().enumerate() {
        let e = rel(&got[k], &want[k]);
        assert!(e <= 1e-5, "{label}: {name} differs by {e:e}");
    }
}

#[test]
fn sharded_cnf_matches_sequential() {
    let batch = 3 * nn::shards::MIN_POINTS_PER_SHARD + 1;
    for divergence in [Divergence::Exact, Divergence::Hutchinson] {
        let net =
            OdeNet::<f32>::new(&[2, 16, 16, 2], LayerKind::ConcatSquash, Activation::Tanh).unwrap();
        let mut rng = Rng::new(3);
        let params = net.init_params(&mut rng);
        let mut cnf = Cnf::new(net, batch, divergence).unwrap();
        cnf.sample_noise(&mut Rng::new(9), Noise::Gaussian);
        let z = random(&mut rng, cnf.state_len());
        let a = random(&mut rng, cnf.state_len());
        let want = evaluate(&mut cnf, &z, &params, &a);
        for threads in [2, 3] {
            cnf.set_threads(threads);
            assert_eq!(cnf.shards(), threads);
            let got = evaluate(&mut cnf, &z, &params, &a);
            assert_close(&format!("{divergence:?} on {threads}"), &got, &want);
            // Δlogp's cotangent row is zero, as in the sequential VJP.
            assert!(got[2][2 * batch..].iter().all(|&x| x == 0.0));
        }
        // Noise drawn while sharded reaches every shard: same as drawing it sequentially.
        cnf.sample_noise(&mut Rng::new(10), Noise::Rademacher);
        let sharded = evaluate(&mut cnf, &z, &params, &a);
        cnf.set_threads(1);
        assert_eq!(cnf.shards(), 1);
        let sequential = evaluate(&mut cnf, &z, &params, &a);
        assert_close(
            &format!("{divergence:?} fresh noise"),
            &sharded,
            &sequential,
        );
        // A new batch size keeps the thread setting.
        cnf.set_threads(2);
        cnf.set_batch(2 * nn::shards::MIN_POINTS_PER_SHARD).unwrap();
        assert_eq!(cnf.shards(), 2);
        // Too small a batch to shard: sequential.
        cnf.set_batch(nn::shards::MIN_POINTS_PER_SHARD).unwrap();
        assert_eq!(cnf.shards(), 1);
    }
}

#[test]
fn sharded_net_rhs_matches_sequential() {
    let batch = 4 * nn::shards::MIN_POINTS_PER_SHARD + 3;
    let net = OdeNet::<f32>::new(&[3, 20, 3], LayerKind::Linear, Activation::Softplus).unwrap();
    let mut rng = Rng::new(5);
    let params = net.init_params(&mut rng);
    let mut rhs = NetRhs::new(net, batch).unwrap();
    let z = random(&mut rng, rhs.state_len());
    let a = random(&mut rng, rhs.state_len());
    let want = evaluate(&mut rhs, &z, &params, &a);
    for threads in [2, 3, 4] {
        rhs.set_threads(threads);
        assert_eq!(rhs.shards(), threads);
        assert_close(
            &format!("net on {threads}"),
            &evaluate(&mut rhs, &z, &params, &a),
            &want,
        );
    }
    // Too few points for more shards: capped, never empty shards.
    rhs.set_threads(64);
    assert_eq!(rhs.shards(), batch / nn::shards::MIN_POINTS_PER_SHARD);
}

#[test]
fn training_on_two_threads_matches_one() {
    for method in [
        Method::irdm_auto(1e-5, 1e-5, BackwardNorm::Seminorm),
        Method::irdm_lobatto(16, BackwardNorm::Seminorm),
        Method::Rdm {
            norm: BackwardNorm::Full,
        },
    ] {
        let run = |threads| {
            let config = TrainConfig {
                batch: 2 * nn::shards::MIN_POINTS_PER_SHARD,
                test_size: 200,
                threads,
                ..TrainConfig::default()
            };
            let mut t = Trainer::<f32>::new(config, method, None).unwrap();
            let records: Vec<_> = (0..5).map(|_| t.step().unwrap()).collect();
            (records, t.params().to_vec(), t.test_nll().unwrap())
        };
        let (r1, p1, nll1) = run(1);
        let (r2, p2, nll2) = run(2);
        for (a, b) in r1.iter().zip(&r2) {
            assert!(
                (a.loss - b.loss).abs() <= 1e-5 * a.loss.abs(),
                "{}: loss {} vs {}",
                method.name(),
                a.loss,
                b.loss
            );
            assert_eq!(
                (a.nfe_forward, a.nfe_backward, a.vjp_backward),
                (b.nfe_forward, b.nfe_backward, b.vjp_backward)
            );
        }
        assert!(rel(&p2, &p1) <= 1e-5, "{}: params", method.name());
        assert!((nll1 - nll2).abs() <= 1e-5 * nll1.abs());
    }
}
