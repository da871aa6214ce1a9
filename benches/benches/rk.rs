//! Solver overhead per step with a trivial right-hand side (`dz/dt = −z`) for state sizes
//! 2 … 10⁶, and dopri5 on torchdiffeq's spiral problem.

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use rk::{FnRhs, Method, Options, Rhs, Solver, solve};
use std::hint::black_box;

/// `dz/dt = −z`: as cheap as a right-hand side gets, so the time is the solver's own.
struct Decay;

impl Rhs<Vec<f32>> for Decay {
    fn eval(&mut self, _t: f32, z: &Vec<f32>, _p: &Vec<f32>, dz: &mut Vec<f32>) {
        for (d, &v) in dz.iter_mut().zip(z.iter()) {
            *d = -v;
        }
    }
}

/// Ten fixed-size dopri5 steps (adaptive machinery on, every step accepted).
fn overhead_per_step(c: &mut Criterion) {
    let mut group = c.benchmark_group("rk/dopri5_10_steps");
    group.sample_size(20);
    for n in [2usize, 1_000, 100_000, 1_000_000] {
        let y0 = vec![1.0f32; n];
        let options = Options::new(1e3f32, 1e3).with_first_step(0.01);
        let mut solver = Solver::new(Method::Dopri5, options, &y0).expect("valid options");
        group.throughput(Throughput::Elements(10));
        group.bench_with_input(BenchmarkId::from_parameter(n), &n, |b, _| {
            b.iter(|| {
                solver
                    .init(&mut Decay, &vec![], 0.0, 0.1, &y0)
                    .expect("init");
                while !solver.is_finished() {
                    solver.step(&mut Decay, &vec![]).expect("step");
                }
                black_box(solver.state()[0])
            })
        });
    }
    group.finish();
}

fn spiral(c: &mut Criterion) {
    let mut rhs = FnRhs(|_t: f64, y: &[f64], _p: &[f64], dy: &mut [f64]| {
        let (a, b) = (y[0].powi(3), y[1].powi(3));
        dy[0] = -0.1 * a - 2.0 * b;
        dy[1] = 2.0 * a - 0.1 * b;
    });
    let options = Options::new(1e-7, 1e-9);
    c.bench_function("rk/spiral_dopri5", |b| {
        b.iter(|| {
            let sol = solve(
                &mut rhs,
                &vec![],
                Method::Dopri5,
                &options,
                &[0.0, 25.0],
                &vec![2.0, 0.0],
            )
            .expect("solve");
            black_box(sol.stats.nfe)
        })
    });
}

criterion_group!(benches, overhead_per_step, spiral);
criterion_main!(benches);
