//! Toy data sets: seeded, of the requested size, with the documented geometry.

use nn::Rng;
use nn::data::Toy;

fn mean_radius(x: &[f64]) -> f64 {
    x.chunks(2)
        .map(|p| (p[0] * p[0] + p[1] * p[1]).sqrt())
        .sum::<f64>()
        / (x.len() / 2) as f64
}

#[test]
fn seeded_sized_and_finite() {
    for toy in Toy::ALL {
        let a = toy.sample(&mut Rng::new(7), 1001);
        let b = toy.sample(&mut Rng::new(7), 1001);
        let c = toy.sample(&mut Rng::new(8), 1001);
        assert_eq!(a.len(), 2002, "{}", toy.name());
        assert_eq!(a, b, "{}: same seed, same data", toy.name());
        assert_ne!(a, c, "{}: other seed, other data", toy.name());
        assert!(
            a.iter().all(|v| v.is_finite() && v.abs() < 20.0),
            "{}",
            toy.name()
        );
        assert_eq!(toy.name().parse::<Toy>().unwrap(), toy);
    }
    assert!("spirals".parse::<Toy>().is_err());
}

#[test]
fn geometry() {
    let mut rng = Rng::new(1);
    // Circles: half the points near radius 3, half near 1.5.
    let c = Toy::Circles.sample(&mut rng, 4000);
    let radii: Vec<f64> = c
        .chunks(2)
        .map(|p| (p[0] * p[0] + p[1] * p[1]).sqrt())
        .collect();
    let outer = radii.iter().filter(|&&r| r > 2.25).count();
    assert!((1900..=2100).contains(&outer), "{outer}");
    // Eight Gaussians: mean radius ≈ 4/1.414.
    let g = Toy::EightGaussians.sample(&mut rng, 8000);
    assert!((mean_radius(&g) - 4.0 / 1.414).abs() < 0.1);
    // Checkerboard: every point in [−4, 4]² on a black square (⌊x1/2⌋ + ⌊x2/2⌋ even).
    let cb = Toy::Checkerboard.sample(&mut rng, 4000);
    for p in cb.chunks(2) {
        assert!(p[0].abs() <= 4.0 && p[1].abs() <= 4.0);
        let parity = ((p[0] / 2.0).floor() + (p[1] / 2.0).floor()).rem_euclid(2.0);
        assert_eq!(parity, 0.0, "{p:?}");
    }
    // Moons and pinwheel: centred near the origin.
    for toy in [Toy::Moons, Toy::Pinwheel] {
        let x = toy.sample(&mut rng, 5000);
        let mx = x.iter().step_by(2).sum::<f64>() / 5000.0;
        assert!(mx.abs() < 0.3, "{}: mean x {mx}", toy.name());
    }
}
