//! Random option structs — every field drawn from finite, non-finite, negative, zero and tiny
//! values — never make a solve panic, and every solve ends (with a solution or a typed error)
//! within its step budget: the number of right-hand-side evaluations stays below
//! `stages × (max_steps + 2)`.

mod common;

use common::Test2;
use proptest::prelude::*;
use rk::{Controller, Method, Options, Rhs, solve};

/// Counts evaluations of [`Test2`].
struct Counted {
    nfe: usize,
}

impl Rhs<Vec<f64>> for Counted {
    fn eval(&mut self, t: f64, y: &Vec<f64>, p: &Vec<f64>, dy: &mut Vec<f64>) {
        self.nfe += 1;
        Test2.eval(t, y, p, dy);
    }
}

fn special() -> impl Strategy<Value = f64> {
    prop_oneof![
        Just(0.0),
        Just(-1.0),
        Just(f64::NAN),
        Just(f64::INFINITY),
        Just(f64::NEG_INFINITY),
        Just(1e-300),
        Just(f64::MIN_POSITIVE),
        Just(1e300),
        1e-12f64..1.0,
        0.5f64..20.0,
    ]
}

fn controller() -> impl Strategy<Value = Controller> {
    prop_oneof![
        (special(), special(), special()).prop_map(|(safety, ifactor, dfactor)| {
            Controller::Integral {
                safety,
                ifactor,
                dfactor,
            }
        }),
        (special(), special(), special(), special()).prop_map(
            |(safety, ifactor, dfactor, beta)| Controller::Pi {
                safety,
                ifactor,
                dfactor,
                beta,
            }
        ),
    ]
}

fn method() -> impl Strategy<Value = Method> {
    prop_oneof![
        Just(Method::Dopri5),
        Just(Method::Tsit5),
        Just(Method::Bosh3),
        Just(Method::Rk4),
        Just(Method::Euler),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn random_options_end_in_a_result_within_the_step_budget(
        rtol in special(),
        atol in special(),
        first_step in proptest::option::of(special()),
        min_step in special(),
        max_step in special(),
        max_steps in 1usize..2000,
        adaptive in any::<bool>(),
        controller in controller(),
        method in method(),
    ) {
        let mut options = Options::new(rtol, atol)
            .with_controller(controller)
            .with_max_steps(max_steps);
        options.first_step = first_step;
        options.min_step = min_step;
        options.max_step = max_step;
        options.adaptive = adaptive;
        let mut f = Counted { nfe: 0 };
        let result = solve(&mut f, &vec![], method, &options, &[0.0, 0.5, 1.0], &vec![1.0, 1.0]);
        let stages = method.tableau().stages();
        prop_assert!(
            f.nfe <= stages * (max_steps + 2),
            "{} evaluations for max_steps {max_steps} ({result:?})",
            f.nfe
        );
        if let Ok(sol) = result {
            prop_assert!(sol.ys.iter().flatten().all(|y| y.is_finite()));
        }
    }
}
