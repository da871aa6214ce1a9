//! PNG plots of a benchmark run (plotters, bitmap backend).
//!
//! Text needs a TrueType font: `$IRDM_FONT`, else DejaVu Sans or Liberation Sans from the usual
//! Debian paths (`apt-get install fonts-dejavu-core`). Without one, plots are skipped and the
//! report says so.

use crate::results::{
    ClassPoint, ClassRun, GradientError, LongHorizon, NfePoint, Results, Run, Stability, first_seen,
};
use crate::toy::NODE_COUNTS;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use std::path::{Path, PathBuf};

type PlotResult = Result<(), Box<dyn std::error::Error>>;

const FONT_PATHS: [&str; 3] = [
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
];

/// Registers a font for plot text; `Err` says why plots cannot be drawn.
pub fn register_font() -> Result<(), String> {
    let candidates: Vec<PathBuf> = std::env::var_os("IRDM_FONT")
        .map(PathBuf::from)
        .into_iter()
        .chain(FONT_PATHS.iter().map(PathBuf::from))
        .collect();
    for path in &candidates {
        if let Ok(bytes) = std::fs::read(path) {
            let leaked: &'static [u8] = Box::leak(bytes.into_boxed_slice());
            return plotters::style::register_font("sans-serif", FontStyle::Normal, leaked)
                .map_err(|_| format!("{} is not a usable TrueType font", path.display()));
        }
    }
    Err(format!(
        "no TrueType font found (tried $IRDM_FONT and {}); install fonts-dejavu-core or set IRDM_FONT",
        FONT_PATHS.join(", ")
    ))
}

const COLORS: [RGBColor; 12] = [
    RGBColor(0, 0, 0),
    RGBColor(120, 120, 120),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(31, 119, 180),
    RGBColor(44, 160, 44),
    RGBColor(255, 127, 14),
    RGBColor(23, 190, 207),
    RGBColor(188, 189, 34),
    RGBColor(227, 119, 194),
    RGBColor(140, 86, 75),
    RGBColor(0, 80, 160),
];

/// The runs shown in curve plots: baselines, seminorm IRDM at every N, automatic IRDM.
fn shown(runs: &[&Run]) -> Vec<Run> {
    runs.iter()
        .filter(|r| r.method != "irdm" || r.seminorm)
        .map(|r| (*r).clone())
        .collect()
}

fn curve_plot(
    path: &Path,
    title: &str,
    x_desc: &str,
    y_desc: &str,
    series: &[(String, Vec<(f64, f64)>)],
    log_y: bool,
) -> PlotResult {
    let root = BitMapBackend::new(path, (1000, 650)).into_drawing_area();
    root.fill(&WHITE)?;
    let pts = series.iter().flat_map(|(_, p)| p.iter());
    let (mut x0, mut x1, mut y0, mut y1) = (
        f64::INFINITY,
        f64::NEG_INFINITY,
        f64::INFINITY,
        f64::NEG_INFINITY,
    );
    for &(x, y) in pts {
        if x.is_finite() && y.is_finite() && (!log_y || y > 0.0) {
            x0 = x0.min(x);
            x1 = x1.max(x);
            y0 = y0.min(y);
            y1 = y1.max(y);
        }
    }
    // No finite points (or a single value): fall back to a unit range.
    if !x0.is_finite() || x1 <= x0 {
        x0 = if x0.is_finite() { x0 } else { 0.0 };
        x1 = x0 + 1.0;
    }
    if !y0.is_finite() || y1 <= y0 {
        y0 = if y0.is_finite() { y0 } else { 0.0 };
        y1 = y0 + 1.0;
    }
    let pad = 0.05 * (y1 - y0);
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 22))
        .margin(12)
        .x_label_area_size(45)
        .y_label_area_size(70)
        .build_cartesian_2d(x0..x1, (y0 - pad)..(y1 + pad))?;
    chart
        .configure_mesh()
        .x_desc(x_desc)
        .y_desc(y_desc)
        .label_style(("sans-serif", 14))
        .draw()?;
    for (i, (name, points)) in series.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        chart
            .draw_series(LineSeries::new(
                points.iter().copied(),
                color.stroke_width(2),
            ))?
            .label(name.clone())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2))
            });
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .label_font(("sans-serif", 13))
        .position(SeriesLabelPosition::UpperRight)
        .draw()?;
    root.present()?;
    Ok(())
}

/// Test NLL against training time (Figures 3/7) and NFE against iteration (Figures 4/8).
fn toy_plots(dir: &Path, runs: &[Run], written: &mut Vec<String>) -> PlotResult {
    let mut datasets: Vec<&str> = runs.iter().map(|r| r.dataset.as_str()).collect();
    datasets.dedup();
    for ds in datasets {
        let these: Vec<&Run> = runs.iter().filter(|r| r.dataset == ds).collect();
        let chosen = shown(&these);
        let loss: Vec<(String, Vec<(f64, f64)>)> = chosen
            .iter()
            .map(|r| {
                (
                    r.label.clone(),
                    r.test_curve
                        .iter()
                        .map(|c| (c.train_time_s, c.test_nll))
                        .collect(),
                )
            })
            .collect();
        let name = format!("toy_{ds}_loss.png");
        curve_plot(
            &dir.join(&name),
            &format!("{ds}: test NLL against training time"),
            "training time (s)",
            "test NLL (nats)",
            &loss,
            false,
        )?;
        written.push(name);
        let nfe = evaluation_series(chosen.iter().map(|r| (&r.label, &r.nfe_curve[..])));
        let name = format!("toy_{ds}_nfe.png");
        curve_plot(
            &dir.join(&name),
            &format!("{ds}: evaluations per iteration (forward + backward)"),
            "iteration",
            "f evaluations + VJPs",
            &nfe,
            false,
        )?;
        written.push(name);
    }
    Ok(())
}

/// Colour for `log10` error in `[lo, hi]`: dark blue (small) to yellow (large).
fn heat(v: f64, lo: f64, hi: f64) -> RGBColor {
    let s = ((v - lo) / (hi - lo)).clamp(0.0, 1.0);
    let lerp = |a: f64, b: f64| (a + (b - a) * s) as u8;
    RGBColor(lerp(30.0, 250.0), lerp(40.0, 220.0), lerp(120.0, 40.0))
}

/// The gradient-error map (Figure 2): one panel per grid, stored nodes against tolerance.
fn gradient_plot(dir: &Path, cells: &[GradientError], written: &mut Vec<String>) -> PlotResult {
    if cells.is_empty() {
        return Ok(());
    }
    let name = "gradient_error.png";
    let path = dir.join(name);
    let root = BitMapBackend::new(&path, (1500, 560)).into_drawing_area();
    root.fill(&WHITE)?;
    let (title_area, body) = root.split_vertically(40);
    title_area.titled(
        "relative ℓ2 error of IRDM's dL/dθ (log10) against Direct at 1e-11",
        ("sans-serif", 22),
    )?;
    let panels = body.split_evenly((1, 3));
    let logs: Vec<f64> = cells.iter().map(|c| c.rel_l2.max(1e-16).log10()).collect();
    let (lo, hi) = (
        logs.iter().copied().fold(f64::INFINITY, f64::min),
        logs.iter().copied().fold(f64::NEG_INFINITY, f64::max),
    );
    let tols = crate::results::loosest_first(cells.iter().map(|c| c.tol));
    for (panel, grid) in panels.iter().zip(["lobatto", "first", "mismatched"]) {
        let mut chart = ChartBuilder::on(panel)
            .caption(grid, ("sans-serif", 18))
            .margin(10)
            .x_label_area_size(40)
            .y_label_area_size(50)
            .build_cartesian_2d(
                (0..tols.len()).into_segmented(),
                (0..NODE_COUNTS.len()).into_segmented(),
            )?;
        let tl = tols.clone();
        chart
            .configure_mesh()
            .disable_mesh()
            .x_desc("tolerance")
            .y_desc("stored nodes")
            .x_labels(tols.len() + 1)
            .y_labels(NODE_COUNTS.len() + 1)
            .x_label_formatter(&move |v| match v {
                SegmentValue::CenterOf(i) => {
                    tl.get(*i).map_or(String::new(), |t| format!("{t:.0e}"))
                }
                _ => String::new(),
            })
            .y_label_formatter(&|v| match v {
                SegmentValue::CenterOf(j) => {
                    NODE_COUNTS.get(*j).map_or(String::new(), |n| n.to_string())
                }
                _ => String::new(),
            })
            .draw()?;
        for c in cells.iter().filter(|c| c.grid == grid) {
            let i = tols.iter().position(|&t| t == c.tol).unwrap_or(0);
            let j = NODE_COUNTS
                .iter()
                .position(|&n| n == c.n_nodes)
                .unwrap_or(0);
            let v = c.rel_l2.max(1e-16).log10();
            let (x0, x1) = (SegmentValue::Exact(i), SegmentValue::Exact(i + 1));
            let (y0, y1) = (SegmentValue::Exact(j), SegmentValue::Exact(j + 1));
            chart.draw_series(std::iter::once(Rectangle::new(
                [(x0, y0), (x1, y1)],
                heat(v, lo, hi).filled(),
            )))?;
            let style = ("sans-serif", 15)
                .into_font()
                .color(&BLACK)
                .pos(Pos::new(HPos::Center, VPos::Center));
            chart.draw_series(std::iter::once(Text::new(
                format!("{v:.1}"),
                (SegmentValue::CenterOf(i), SegmentValue::CenterOf(j)),
                style,
            )))?;
        }
    }
    root.present()?;
    written.push(name.into());
    Ok(())
}

/// Gradient error against backward evaluations, per method (stability suite).
fn stability_plot(dir: &Path, rows: &[Stability], written: &mut Vec<String>) -> PlotResult {
    if rows.is_empty() {
        return Ok(());
    }
    let mut labels: Vec<&str> = rows.iter().map(|r| r.label.as_str()).collect();
    labels.sort();
    labels.dedup();
    let series: Vec<(String, Vec<(f64, f64)>)> = labels
        .iter()
        .map(|l| {
            (
                l.to_string(),
                rows.iter()
                    .filter(|r| r.label == *l)
                    .map(|r| ((r.bwd_evals as f64).log10(), r.rel_l2.max(1e-16).log10()))
                    .collect(),
            )
        })
        .collect();
    let name = "stability.png";
    curve_plot(
        &dir.join(name),
        "contracting system: log10 gradient error against log10 backward evaluations",
        "log10 backward evaluations",
        "log10 relative error",
        &series,
        false,
    )?;
    written.push(name.into());
    Ok(())
}

/// Long horizon: gradient error against stored floats, one curve per method over the
/// tolerances (cells that returned an error are left out).
fn long_horizon_plot(dir: &Path, cells: &[LongHorizon], written: &mut Vec<String>) -> PlotResult {
    let labels = first_seen(cells.iter().map(|c| c.label.as_str()));
    let series: Vec<(String, Vec<(f64, f64)>)> = labels
        .iter()
        .map(|l| {
            let points = cells
                .iter()
                .filter(|c| c.label == *l && c.stored_floats > 0)
                .filter_map(|c| {
                    c.rel_l2
                        .map(|e| ((c.stored_floats as f64).log10(), e.max(1e-16).log10()))
                })
                .collect();
            (l.to_string(), points)
        })
        .filter(|(_, p): &(String, Vec<_>)| !p.is_empty())
        .collect();
    if series.is_empty() {
        return Ok(());
    }
    let name = "long_horizon.png";
    curve_plot(
        &dir.join(name),
        "spiral on [0, 25]: log10 gradient error against log10 stored floats",
        "log10 stored floats",
        "log10 relative error",
        &series,
        false,
    )?;
    written.push(name.into());
    Ok(())
}

/// Draws every plot of `results` into `dir`; returns the files written.
pub fn draw_all(dir: &Path, results: &Results) -> Result<Vec<String>, Box<dyn std::error::Error>> {
    let mut written = Vec::new();
    toy_plots(dir, &results.runs, &mut written)?;
    gradient_plot(dir, &results.gradient_error, &mut written)?;
    long_horizon_plot(dir, &results.long_horizon, &mut written)?;
    stability_plot(dir, &results.stability, &mut written)?;
    classification_plots(dir, &results.classification, &mut written)?;
    tabular_plots(dir, &results.tabular, &mut written)?;
    vae_plots(dir, &results.vae, &mut written)?;
    Ok(written)
}

/// Test accuracy against training time (Figure 6a) and against epochs (Figure 6b: barycentric
/// against piecewise-linear interpolation), and evaluations per iteration.
fn classification_plots(dir: &Path, runs: &[ClassRun], written: &mut Vec<String>) -> PlotResult {
    if runs.is_empty() {
        return Ok(());
    }
    let series = |x: fn(&ClassPoint) -> f64| -> Vec<(String, Vec<(f64, f64)>)> {
        runs.iter()
            .map(|r| {
                (
                    r.label.clone(),
                    r.test_curve
                        .iter()
                        .map(|c| (x(c), c.test_accuracy))
                        .collect(),
                )
            })
            .collect()
    };
    let name = "classification_accuracy_time.png";
    curve_plot(
        &dir.join(name),
        "Fashion-MNIST: test accuracy against training time (Fig. 6a)",
        "training time (s)",
        "test accuracy",
        &series(|c| c.train_time_s),
        false,
    )?;
    written.push(name.into());
    let name = "classification_accuracy_epoch.png";
    curve_plot(
        &dir.join(name),
        "Fashion-MNIST: test accuracy against epochs (Fig. 6b)",
        "epoch",
        "test accuracy",
        &series(|c| c.epoch),
        false,
    )?;
    written.push(name.into());
    let nfe = evaluation_series(runs.iter().map(|r| (&r.label, &r.nfe_curve[..])));
    let name = "classification_nfe.png";
    curve_plot(
        &dir.join(name),
        "Fashion-MNIST: evaluations per iteration (forward + backward)",
        "iteration",
        "f evaluations + VJPs",
        &nfe,
        false,
    )?;
    written.push(name.into());
    Ok(())
}

/// Forward plus backward evaluations against iteration, one series per labelled run.
fn evaluation_series<'a>(
    runs: impl Iterator<Item = (&'a String, &'a [NfePoint])>,
) -> Vec<(String, Vec<(f64, f64)>)> {
    runs.map(|(label, curve)| {
        (
            label.clone(),
            curve
                .iter()
                .map(|p| (p.iter as f64, p.nfe_fwd + p.nfe_bwd_total))
                .collect(),
        )
    })
    .collect()
}

/// One labelled training curve: `(iteration, training time, test loss)` points and the run's
/// evaluations per iteration.
struct LossCurve<'a> {
    label: &'a String,
    points: Vec<(f64, f64, f64)>,
    nfe: &'a [NfePoint],
}

/// `{prefix}_time.png` and `{prefix}_iter.png` (the test loss against training time and against
/// iteration) and `{prefix}_nfe.png` (forward + backward evaluations per iteration).
fn loss_curve_plots(
    dir: &Path,
    prefix: &str,
    title: &str,
    y_desc: &str,
    curves: &[LossCurve<'_>],
    written: &mut Vec<String>,
) -> PlotResult {
    if curves.is_empty() {
        return Ok(());
    }
    let series = |by_time: bool| -> Vec<(String, Vec<(f64, f64)>)> {
        curves
            .iter()
            .map(|c| {
                let pts = c
                    .points
                    .iter()
                    .map(|&(iter, time, y)| (if by_time { time } else { iter }, y))
                    .collect();
                (c.label.clone(), pts)
            })
            .collect()
    };
    for (suffix, x_desc, by_time) in [
        ("time", "training time (s)", true),
        ("iter", "iteration", false),
    ] {
        let name = format!("{prefix}_{suffix}.png");
        curve_plot(
            &dir.join(&name),
            &format!("{title} against {x_desc}"),
            x_desc,
            y_desc,
            &series(by_time),
            false,
        )?;
        written.push(name);
    }
    let nfe = evaluation_series(curves.iter().map(|c| (c.label, c.nfe)));
    let name = format!("{prefix}_nfe.png");
    curve_plot(
        &dir.join(&name),
        &format!("{title}: evaluations per iteration (forward + backward)"),
        "iteration",
        "f evaluations + VJPs",
        &nfe,
        false,
    )?;
    written.push(name);
    Ok(())
}

/// Test NLL against training time and against iteration (Fig. 3), and evaluations per
/// iteration (all blocks), for the tabular suite.
fn tabular_plots(
    dir: &Path,
    runs: &[crate::results::TabularRun],
    written: &mut Vec<String>,
) -> PlotResult {
    let curves: Vec<LossCurve<'_>> = runs
        .iter()
        .map(|r| LossCurve {
            label: &r.label,
            points: r
                .test_curve
                .iter()
                .map(|c| (c.iter as f64, c.train_time_s, c.test_nll))
                .collect(),
            nfe: &r.summary.nfe_curve,
        })
        .collect();
    loss_curve_plots(
        dir,
        "tabular_nll",
        "Tabular (Fig. 3): test NLL",
        "test NLL (nats)",
        &curves,
        written,
    )
}

/// Test negative ELBO against training time and against iteration (Fig. 5), and evaluations
/// per iteration, for the VAE suite.
fn vae_plots(dir: &Path, runs: &[crate::results::VaeRun], written: &mut Vec<String>) -> PlotResult {
    let curves: Vec<LossCurve<'_>> = runs
        .iter()
        .map(|r| LossCurve {
            label: &r.label,
            points: r
                .test_curve
                .iter()
                .map(|c| (c.iter as f64, c.train_time_s, c.test_neg_elbo))
                .collect(),
            nfe: &r.summary.nfe_curve,
        })
        .collect();
    loss_curve_plots(
        dir,
        "vae_elbo",
        "VAE (Fig. 5): test negative ELBO",
        "test −ELBO (nats per image)",
        &curves,
        written,
    )
}
