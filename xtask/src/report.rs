//! `report.md`: the paper's tables from a [`Results`] record.

use crate::results::{
    ClassRun, GpuPeak, LongHorizon, ProfiledKernel, Results, Run, first_seen, loosest_first,
};
use crate::toy::NODE_COUNTS;
use std::fmt::Write as _;

fn find<'a>(runs: &'a [Run], dataset: &str, label: &str) -> Option<&'a Run> {
    runs.iter()
        .find(|r| r.dataset == dataset && r.label == label)
}

fn datasets(runs: &[Run]) -> Vec<String> {
    let mut v: Vec<String> = Vec::new();
    for r in runs {
        if !v.contains(&r.dataset) {
            v.push(r.dataset.clone());
        }
    }
    v
}

fn labels(runs: &[Run]) -> Vec<String> {
    let mut v: Vec<String> = Vec::new();
    for r in runs {
        if !v.contains(&r.label) {
            v.push(r.label.clone());
        }
    }
    v
}

/// A table with one row per method label and, per data set, one column per entry of `columns`
/// (`cell` returns that many `|`-separated cells; it also gets the data set's RDM run).
fn method_table(
    md: &mut String,
    runs: &[Run],
    ds: &[String],
    columns: &[&str],
    cell: impl Fn(&Run, Option<&Run>) -> String,
) {
    let _ = write!(md, "| method |");
    for d in ds {
        for c in columns {
            let _ = write!(md, " {d}{c} |");
        }
    }
    let _ = writeln!(md, "\n|---|{}", "---|".repeat(ds.len() * columns.len()));
    for l in labels(runs) {
        let _ = write!(md, "| {l} |");
        for d in ds {
            let text = match find(runs, d, &l) {
                Some(r) => cell(r, find(runs, d, "rdm")),
                None => vec!["–"; columns.len()].join(" | "),
            };
            let _ = write!(md, " {text} |");
        }
        let _ = writeln!(md);
    }
}

/// The best IRDM speedup over `baseline` among IRDM runs whose final test NLL is within
/// `±0.05` nats of the baseline's: `(label, speedup)` by median time per iteration.
pub fn best_speedup<'a>(runs: &'a [Run], dataset: &str, baseline: &str) -> Option<(&'a str, f64)> {
    let base = find(runs, dataset, baseline)?;
    runs.iter()
        .filter(|r| {
            r.dataset == dataset
                && r.method == "irdm"
                && (r.final_test_nll - base.final_test_nll).abs() <= 0.05
        })
        .map(|r| {
            (
                r.label.as_str(),
                base.time_per_iter_median_s / r.time_per_iter_median_s,
            )
        })
        .max_by(|a, b| a.1.total_cmp(&b.1))
}

/// Writes the report.
pub fn render(res: &Results, plots: &[String], plot_note: Option<&str>) -> String {
    let mut md = String::new();
    let m = &res.machine;
    let s = &res.settings;
    let _ = writeln!(md, "# IRDM benchmark report\n");
    let _ = writeln!(
        md,
        "Machine: {} ({} logical CPUs, {} thread used), {}, {}, commit `{}`, backend `{}`.\n",
        m.cpu, m.logical_cpus, m.threads, m.os, m.rustc, m.commit, m.backend
    );
    let _ = writeln!(
        md,
        "Settings: mode `{}`, suites {:?}, {} iterations, batch {}, rtol {:e}, atol {:e}, test NLL every {} iterations on {} held-out samples, seed {}, {} weights{}.\n",
        s.mode,
        s.suites,
        s.iters,
        s.batch,
        s.rtol,
        s.atol,
        s.eval_every,
        s.test_size,
        s.seed,
        s.float,
        s.from_weights
            .as_ref()
            .map_or(String::new(), |w| format!(", initial weights from `{w}`"))
    );
    if let Some(wall) = res.wall_time_s {
        let _ = writeln!(
            md,
            "Wall time of the run: {:.0} s ({:.1} min).\n",
            wall,
            wall / 60.0
        );
    }
    let runs = &res.runs;
    if !runs.is_empty() {
        let ds = datasets(runs);
        for (title, suffix) in [("seminorm", "-semi"), ("full norm", "")] {
            let _ = writeln!(
                md,
                "## Table 1 — time for {} iterations (s), IRDM with {title}\n",
                s.iters
            );
            let _ = write!(md, "| data set | RDM | RDM-semi |");
            for n in NODE_COUNTS {
                let _ = write!(md, " IRDM {n} |");
            }
            let _ = writeln!(md, " best IRDM/RDM (same NLL ±0.05) |");
            let _ = writeln!(md, "|---|---|---|{}---|", "---|".repeat(NODE_COUNTS.len()));
            for d in &ds {
                let cell = |label: &str| {
                    find(runs, d, label).map_or("–".into(), |r| format!("{:.1}", r.time_total_s))
                };
                let _ = write!(md, "| {d} | {} | {} |", cell("rdm"), cell("rdm-semi"));
                for n in NODE_COUNTS {
                    let _ = write!(md, " {} |", cell(&format!("irdm{n}{suffix}")));
                }
                let best = best_speedup(runs, d, "rdm")
                    .map_or("–".into(), |(l, x)| format!("{x:.2}× ({l})"));
                let _ = writeln!(md, " {best} |");
            }
            let _ = writeln!(md);
        }
        let _ = writeln!(md, "## Median time per iteration (ms) and speedups\n");
        method_table(&mut md, runs, &ds, &[""], |r, rdm| match rdm {
            Some(b) => format!(
                "{:.2} ({:.2}×)",
                1e3 * r.time_per_iter_median_s,
                b.time_per_iter_median_s / r.time_per_iter_median_s
            ),
            None => format!("{:.2}", 1e3 * r.time_per_iter_median_s),
        });
        let _ = writeln!(
            md,
            "\n(×: RDM's median time divided by this method's; above 1 is faster than RDM.)\n"
        );
        let _ = writeln!(
            md,
            "## Evaluations per iteration (mean): forward NFE / backward NFE / backward VJPs\n"
        );
        method_table(&mut md, runs, &ds, &[""], |r, _| {
            format!(
                "{:.1} / {:.1} / {:.1}",
                r.nfe_fwd_mean, r.nfe_bwd_mean, r.vjp_bwd_mean
            )
        });
        let _ = writeln!(
            md,
            "\n## Final test NLL (nats) and peak floats held for the backward pass\n"
        );
        method_table(&mut md, runs, &ds, &[" NLL", " floats"], |r, _| {
            format!("{:.3} | {}", r.final_test_nll, r.peak_stored_floats)
        });
        if let Some(rss) = runs.iter().filter_map(|r| r.peak_rss_bytes).max() {
            let _ = writeln!(
                md,
                "\nPeak resident memory of the whole benchmark process: {:.1} MiB.",
                rss as f64 / 1048576.0
            );
        }
        let _ = writeln!(md);
    }
    if !res.gradient_error.is_empty() {
        let _ = writeln!(
            md,
            "## Gradient error (Figure 2): relative ℓ2 error of IRDM's dL/dθ against Direct at 1e-11\n"
        );
        let tols = loosest_first(res.gradient_error.iter().map(|c| c.tol));
        for grid in ["lobatto", "first", "mismatched"] {
            let _ = writeln!(md, "### {grid}\n");
            let _ = write!(md, "| nodes |");
            for t in &tols {
                let _ = write!(md, " {t:.0e} |");
            }
            let _ = writeln!(md, "\n|---|{}", "---|".repeat(tols.len()));
            for n in NODE_COUNTS {
                let _ = write!(md, "| {n} |");
                for t in &tols {
                    let c = res
                        .gradient_error
                        .iter()
                        .find(|c| c.grid == grid && c.n_nodes == n && c.tol == *t);
                    let _ = write!(
                        md,
                        " {} |",
                        c.map_or("–".into(), |c| format!("{:.1e}", c.rel_l2))
                    );
                }
                let _ = writeln!(md);
            }
            let _ = writeln!(md);
        }
    }
    if !res.long_horizon.is_empty() {
        long_horizon_table(&mut md, &res.long_horizon);
    }
    if !res.stability.is_empty() {
        let _ = writeln!(
            md,
            "## Stability: contracting linear system, relative error / backward evaluations\n\n\
             ⚠: RDM's check of its reverse-time `z` against the forward solution flagged the \
             gradient (by default such a gradient is an error, `AdjointError::Reconstruction`).\n"
        );
        let tols = loosest_first(res.stability.iter().map(|c| c.tol));
        let labels = first_seen(res.stability.iter().map(|c| c.label.as_str()));
        let _ = write!(md, "| tol |");
        for l in &labels {
            let _ = write!(md, " {l} |");
        }
        let _ = writeln!(md, "\n|---|{}", "---|".repeat(labels.len()));
        for t in &tols {
            let _ = write!(md, "| {t:.0e} |");
            for l in &labels {
                let c = res.stability.iter().find(|c| c.label == *l && c.tol == *t);
                let _ = write!(
                    md,
                    " {} |",
                    c.map_or("–".into(), |c| format!(
                        "{:.1e} / {}{}",
                        c.rel_l2,
                        c.bwd_evals,
                        if c.flagged { " ⚠" } else { "" }
                    ))
                );
            }
            let _ = writeln!(md);
        }
        let _ = writeln!(md);
    }
    if !res.classification.is_empty() {
        classification_section(&mut md, &res.classification);
    }
    if !res.vae.is_empty() {
        vae_section(&mut md, &res.vae);
    }
    if !res.tabular.is_empty() {
        tabular_section(&mut md, &res.tabular);
    }
    if !res.mpi.is_empty() {
        let _ = writeln!(
            md,
            "## Data-parallel training over MPI\n\nToy CNF, global batch {}, one thread per rank, `mpirun -n R … train --mpi` (docs/mpi.md); medians over the iterations.\n\n| ranks | method | samples/s | × 1 rank | allreduce share of an iteration |\n|---|---|---|---|---|",
            res.mpi[0].batch
        );
        for r in &res.mpi {
            let _ = writeln!(
                md,
                "| {} | {} | {:.0} | {:.2} | {:.2} % |",
                r.ranks,
                r.method,
                r.samples_per_second,
                r.speedup_vs_first,
                100.0 * r.allreduce_share
            );
        }
        let _ = writeln!(md);
    }
    if !res.gpu_runs.is_empty() || !res.gpu_kernels.is_empty() {
        gpu_section(&mut md, res);
    }
    let _ = writeln!(md, "## Plots\n");
    if let Some(note) = plot_note {
        let _ = writeln!(md, "Plots were not drawn: {note}\n");
    }
    for p in plots {
        let _ = writeln!(md, "![{p}]({p})\n");
    }
    md
}

/// The classification suite (§4.3): final accuracy, cost per iteration, speedup against RDM.
fn classification_section(md: &mut String, runs: &[ClassRun]) {
    let r0 = &runs[0];
    let _ = writeln!(
        md,
        "## Classification (§4.3): Fashion-MNIST, odenet_mnist width {}, batch {}, {} training / {} test images, {} epochs\n",
        r0.channels, r0.batch, r0.train_images, r0.test_images, r0.epochs
    );
    let _ = writeln!(
        md,
        "| method | test accuracy | test loss | median ms / iteration | speedup vs rdm | training time (s) | NFE fwd | NFE bwd | VJP bwd | peak stored floats |"
    );
    let _ = writeln!(md, "|---|---|---|---|---|---|---|---|---|---|");
    let rdm = runs
        .iter()
        .find(|r| r.label == "rdm")
        .map(|r| r.time_per_iter_median_s);
    for r in runs {
        let speedup = speedup_vs_rdm(rdm, r.time_per_iter_median_s);
        let _ = writeln!(
            md,
            "| {} | {:.3} | {:.3} | {:.1} | {} | {:.1} | {:.1} | {:.1} | {:.1} | {} |",
            r.label,
            r.final_test_accuracy,
            r.final_test_loss,
            1e3 * r.time_per_iter_median_s,
            speedup,
            r.time_total_s,
            r.nfe_fwd_mean,
            r.nfe_bwd_mean,
            r.vjp_bwd_mean,
            r.peak_stored_floats
        );
    }
    let _ = writeln!(md);
    for r in runs.iter().filter(|r| r.rdm_max_discrepancy.is_some()) {
        let _ = writeln!(
            md,
            "{}: RDM's reverse-time z drifted from the forward solution by up to {:.1e} (relative); \
             its check flagged {} of {} iterations (an error by default; this suite opts in to \
             flagged gradients to reproduce the paper's baseline).\n",
            r.label,
            r.rdm_max_discrepancy.unwrap_or(f64::NAN),
            r.rdm_flagged_iters,
            r.iters
        );
    }
}

/// Where the device time of one GPU iteration goes: the kernel time (timestamp queries) against
/// the iteration's wall time, and the kernels that take most of it.
fn gpu_profile_table(md: &mut String, res: &Results) {
    if res.gpu_runs.iter().all(|r| r.profile.is_empty()) {
        return;
    }
    let _ = writeln!(
        md,
        "\nDevice time per iteration in kernels (one further iteration with every dispatch timed; the rest of the wall time is recording, launches, barriers and readbacks), and the four kernels that take most of it (calls, ms):\n"
    );
    let _ = writeln!(
        md,
        "| batch | method | kernels: ms | of the median iteration | slowest kernels |"
    );
    let _ = writeln!(md, "|---|---|---|---|---|");
    for r in res.gpu_runs.iter().filter(|r| !r.profile.is_empty()) {
        let total: f64 = r.profile.iter().map(|k| k.seconds).sum();
        let top: Vec<String> = r
            .profile
            .iter()
            .take(4)
            .map(|k| format!("{} {}× {:.2}", k.kernel, k.calls, 1e3 * k.seconds))
            .collect();
        let _ = writeln!(
            md,
            "| {} | {} | {:.2} | {:.0} % | {} |",
            r.batch,
            r.label,
            1e3 * total,
            100.0 * total / r.time_per_iter_median_s,
            top.join(", ")
        );
    }
}

/// The GPU toy suite: time per iteration per batch size and method, and kernel throughput.
fn gpu_section(md: &mut String, res: &Results) {
    let _ = writeln!(
        md,
        "## Toy CNF on the GPU ({})\n\nMedian seconds per training iteration (forward, NLL, backward, Adam), speedup of each method over RDM at the same batch, mean NFE forward / VJPs backward, training loss first → last timed iteration.\n",
        res.machine.backend
    );
    let _ = writeln!(
        md,
        "| batch | method | s / iteration | vs rdm | NFE fwd | backward NFE + VJP | loss | dispatches / submissions / readbacks | readbacks / accepted step | kernels |"
    );
    let _ = writeln!(md, "|---|---|---|---|---|---|---|---|---|---|");
    for r in &res.gpu_runs {
        let rdm = res
            .gpu_runs
            .iter()
            .find(|b| b.batch == r.batch && b.label == "rdm");
        let _ = writeln!(
            md,
            "| {} | {} | {:.4} | {} | {:.1} | {:.1} | {:.3} → {:.3} | {:.0} / {:.0} / {:.1} | {} | {} |",
            r.batch,
            r.label,
            r.time_per_iter_median_s,
            rdm.map_or("–".into(), |b| format!(
                "{:.2}×",
                b.time_per_iter_median_s / r.time_per_iter_median_s
            )),
            r.nfe_fwd_mean,
            r.nfe_bwd_mean + r.vjp_bwd_mean,
            r.loss_first,
            r.loss_last,
            r.dispatches_per_iter,
            r.submissions_per_iter,
            r.readbacks_per_iter,
            if r.accepted_steps_per_iter > 0.0 {
                format!("{:.2}", r.readbacks_per_iter / r.accepted_steps_per_iter)
            } else {
                "–".into()
            },
            if r.kernels.is_empty() {
                "–"
            } else {
                &r.kernels
            }
        );
    }
    gpu_profile_table(md, res);
    let _ = writeln!(
        md,
        "\nKernel throughput (matrix-product FLOPs; an adjoint right-hand side counts 3 × an evaluation):\n"
    );
    let peak = res.gpu_peak.clone().unwrap_or_default();
    let _ = writeln!(md, "{}\n", peak_line(&peak));
    let _ = writeln!(
        md,
        "| batch | kernels | MFLOP (f / adjoint RHS) | f: ms | f: GFLOP/s | adjoint RHS: ms | adjoint RHS: GFLOP/s | of published peak (f / adjoint) | of measured peak (f / adjoint) |"
    );
    let _ = writeln!(md, "|---|---|---|---|---|---|---|---|---|");
    let measured = peak.measured.map(|m| m.gflops);
    for k in &res.gpu_kernels {
        let share = |p: Option<f64>| {
            p.map_or("–".into(), |p| {
                format!(
                    "{:.2} % / {:.2} %",
                    100.0 * k.eval_gflops / p,
                    100.0 * k.vjp_gflops / p
                )
            })
        };
        let _ = writeln!(
            md,
            "| {} | {} | {:.2} / {:.2} | {:.3} | {:.1} | {:.3} | {:.1} | {} | {} |",
            k.batch,
            if k.tiled { "tiled" } else { "simple" },
            // GFLOP/s × s = GFLOP: the counted FLOPs of one call.
            1e3 * k.eval_gflops * k.eval_s,
            1e3 * k.vjp_gflops * k.vjp_s,
            1e3 * k.eval_s,
            k.eval_gflops,
            1e3 * k.vjp_s,
            k.vjp_gflops,
            share(k.peak_gflops.or(peak.published_gflops)),
            share(measured)
        );
    }
    gpu_kernel_profile_table(md, res);
    let _ = writeln!(md);
}

/// The sentence naming the f32 peaks the kernel table's shares are of.
fn peak_line(peak: &GpuPeak) -> String {
    let published = match (peak.published_gflops, &peak.published_source) {
        (Some(p), Some(src)) => format!("published {p:.0} GFLOP/s ({src})"),
        (Some(p), None) => format!("published {p:.0} GFLOP/s"),
        _ => "no published figure for this adapter (`--peak-gflops` gives one)".into(),
    };
    let measured = match (&peak.measured, &peak.measured_error) {
        (Some(m), _) => format!(
            "measured {:.1} GFLOP/s (`gpu::measure_f32_peak`: {} invocations × {} trips of 128 checked multiply-add FLOP, median of {} runs of {:.3} s; a lower bound, the round trip included)",
            m.gflops, m.invocations, m.trips, m.runs, m.seconds
        ),
        (None, Some(e)) => format!("the measurement failed: {e}"),
        (None, None) => "not measured (`--peak-seconds 0`)".into(),
    };
    format!("f32 peak of the adapter: {published}; {measured}.")
}

/// Device time per kernel of one evaluation and one adjoint right-hand side, per batch and
/// kernel choice (where the adapter has timestamp queries).
fn gpu_kernel_profile_table(md: &mut String, res: &Results) {
    if res
        .gpu_kernels
        .iter()
        .all(|k| k.eval_profile.is_empty() && k.vjp_profile.is_empty())
    {
        return;
    }
    let _ = writeln!(
        md,
        "
Device time per kernel of one evaluation and one adjoint right-hand side (timestamp queries; kernel calls× µs, slowest first):
"
    );
    let _ = writeln!(md, "| batch | kernels | f | adjoint RHS |");
    let _ = writeln!(md, "|---|---|---|---|");
    let list = |p: &[ProfiledKernel]| -> String {
        let total: f64 = p.iter().map(|k| k.seconds).sum();
        let each: Vec<String> = p
            .iter()
            .map(|k| format!("{} {}× {:.1}", k.kernel, k.calls, 1e6 * k.seconds))
            .collect();
        format!("{:.1} µs: {}", 1e6 * total, each.join(", "))
    };
    for k in &res.gpu_kernels {
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} |",
            k.batch,
            if k.tiled { "tiled" } else { "simple" },
            list(&k.eval_profile),
            list(&k.vjp_profile)
        );
    }
}

/// The long-horizon table: per method, error / stored floats at each tolerance, and IRDM's
/// estimate, segments and flag.
fn long_horizon_table(md: &mut String, cells: &[LongHorizon]) {
    let _ = writeln!(
        md,
        "## Long horizon: the `ode_demo` spiral on [0, 25], 1000 outputs, L = Σ y(25)²\n\n\
         Relative ℓ2 error of [dL/dy0, dL/dA] against Direct at 1e-12, then the floats held for \
         the backward pass and, for IRDM, its own estimate of the interpolation error of `z` \
         (largest over segments; it bounds the error of `z`, not of the gradient). `-single` rows are the paper's one grid over the whole solve; the \
         others are piecewise (N nodes per segment of N/2 steps, or the automatic grid per \
         segment of 8 steps). ⚠ marks a grid flagged under-resolved: it could not reach its \
         tolerance within its cap, and the gradient cannot be trusted.\n"
    );
    let tols = loosest_first(cells.iter().map(|c| c.tol));
    let labels = first_seen(cells.iter().map(|c| c.label.as_str()));
    let _ = write!(md, "| method |");
    for t in &tols {
        let _ = write!(md, " {t:.0e} |");
    }
    let _ = writeln!(md, "\n|---|{}", "---|".repeat(tols.len()));
    for label in labels {
        let _ = write!(md, "| {label} |");
        for t in &tols {
            let cell = cells.iter().find(|c| c.label == label && c.tol == *t);
            let text = match cell {
                None => "–".to_string(),
                Some(c) => match (&c.error, c.rel_l2) {
                    (Some(_), _) | (None, None) => "error".to_string(),
                    (None, Some(e)) => format!(
                        "{e:.1e} / {}{}{}",
                        c.stored_floats,
                        c.error_estimate
                            .map_or(String::new(), |est| format!(" (est. {est:.0e})")),
                        if c.under_resolved { " ⚠" } else { "" }
                    ),
                },
            };
            let _ = write!(md, " {text} |");
        }
        let _ = writeln!(md);
    }
    let _ = writeln!(md);
    let errors: Vec<&LongHorizon> = cells.iter().filter(|c| c.error.is_some()).collect();
    for c in errors {
        let _ = writeln!(
            md,
            "- {} at {:.0e}: {}",
            c.label,
            c.tol,
            c.error.as_deref().unwrap_or_default()
        );
    }
}

fn tabular_section(md: &mut String, runs: &[crate::results::TabularRun]) {
    let r0 = &runs[0];
    let _ = writeln!(md, "## Tabular density estimation (Fig. 3): {}\n", r0.data);
    if r0.stand_in {
        let _ = writeln!(
            md,
            "**A stand-in, not miniboone**: Fashion-MNIST's training images projected on their first {} principal components (faer's SVD), split and standardized as MAF/FFJORD do. Pass `--data miniboone.npy` (MAF's file) for the real data set.\n",
            r0.dim
        );
    }
    let _ = writeln!(
        md,
        "{} CNF block(s), hidden {:?}, softplus, Hutchinson trace (Rademacher noise, the same draw for every method), batch {}, {} training rows, test NLL on {} test rows, dopri5 at rtol {:e} / atol {:e}, Adam lr 1e-3, f64; IRDM on one Lobatto grid per block's solve (the paper's). These are the quick settings unless the mode is `full` (the paper's: 10 blocks of 860-860, batch 10 000, early stopping after 30 epochs without a better validation NLL).\n",
        r0.blocks, r0.hidden, r0.batch, r0.train_rows, r0.test_rows, r0.rtol, r0.atol
    );
    let _ = writeln!(
        md,
        "| method | test NLL | median ms / iteration | speedup vs rdm | training time (s) | NFE fwd | NFE bwd | VJP bwd |\n|---|---|---|---|---|---|---|---|"
    );
    let rdm = runs
        .iter()
        .find(|r| r.label == "rdm")
        .map(|r| r.summary.time_per_iter_median_s);
    for r in runs {
        let speedup = speedup_vs_rdm(rdm, r.summary.time_per_iter_median_s);
        let _ = writeln!(
            md,
            "| {} | {:.3} | {:.1} | {} | {:.1} | {:.1} | {:.1} | {:.1} |",
            r.label,
            r.final_test_nll,
            1e3 * r.summary.time_per_iter_median_s,
            speedup,
            r.summary.time_total_s,
            r.summary.nfe_fwd_mean,
            r.summary.nfe_bwd_mean,
            r.summary.vjp_bwd_mean
        );
    }
    for r in runs {
        if let Some(at) = r.stopped_at {
            let _ = writeln!(
                md,
                "\n{}: early stopping ended training after iteration {at} (no better validation NLL for the patience's epochs).",
                r.label
            );
        }
    }
    let _ = writeln!(
        md,
        "\nRDM's backward VJP returns `f` in the same pass (its NFE bwd equals its VJPs), so IRDM saves only the `z` part of RDM's backward state here; where the two take the same backward steps, IRDM's interpolation (N + 1 node rows per evaluation) is the difference, and RDM can be as fast or faster.\n"
    );
}

/// `rdm`'s median iteration time over `seconds`, as `1.23×` (`–` without an `rdm` run).
fn speedup_vs_rdm(rdm: Option<f64>, seconds: f64) -> String {
    rdm.map_or("–".into(), |b| format!("{:.2}×", b / seconds))
}

fn vae_section(md: &mut String, runs: &[crate::results::VaeRun]) {
    let r0 = &runs[0];
    let _ = writeln!(
        md,
        "## VAE with a CNF posterior (§4.2, Fig. 5): {}
",
        r0.data
    );
    let _ = writeln!(
        md,
        "FFJORD's construction: an MLP encoder (784 → {h} → 2·{d} + {c}) gives the Gaussian base `N(μ, σ²)` of a {d}-dimensional latent and a context of {c} values that conditions the flow (concat-squash, hidden {fh:?}, softplus, exact trace, `T = 0.5`); the decoder (MLP {d} → {h} → 784) gives Bernoulli logits. Binarized Fashion-MNIST (the shape of caltech silhouettes), {tr} training images, batch {b}, Adam lr 1e-3, f32, dopri5 at rtol {rt:e} / atol {at:e}; every method sees the same weights, batches and base noise. Test −ELBO on {te} test images with fixed noise; the importance-weighted NLL uses {k} samples per image. IRDM on one Lobatto grid over the flow's solve.\n",
        h = r0.hidden,
        d = r0.latent,
        c = r0.context,
        fh = r0.flow_hidden,
        tr = r0.train_images,
        b = r0.batch,
        rt = r0.rtol,
        at = r0.atol,
        te = r0.test_images,
        k = r0.iw_samples,
    );
    let _ = writeln!(
        md,
        "| method | test −ELBO | IW test NLL | median ms / iteration | speedup vs rdm | training time (s) | NFE fwd | NFE bwd | VJP bwd |\n|---|---|---|---|---|---|---|---|---|"
    );
    let rdm = runs
        .iter()
        .find(|r| r.label == "rdm")
        .map(|r| r.summary.time_per_iter_median_s);
    for r in runs {
        let _ = writeln!(
            md,
            "| {} | {:.2} | {:.2} | {:.1} | {} | {:.1} | {:.1} | {:.1} | {:.1} |",
            r.label,
            r.final_test_neg_elbo,
            r.final_test_iw_nll,
            1e3 * r.summary.time_per_iter_median_s,
            speedup_vs_rdm(rdm, r.summary.time_per_iter_median_s),
            r.summary.time_total_s,
            r.summary.nfe_fwd_mean,
            r.summary.nfe_bwd_mean,
            r.summary.vjp_bwd_mean
        );
    }
    let _ = writeln!(
        md,
        "\nThe time per iteration includes the encoder and decoder, which every method shares; the paper, too, saw only a minor gain for the VAE. RDM's backward VJP returns `f` in the same pass, so IRDM saves only the `z` part of RDM's backward state and pays for interpolating N + 1 node rows per evaluation.\n"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The peak sentence names each source, and says why a figure is missing.
    #[test]
    fn the_peak_line_names_its_sources() {
        let none = peak_line(&GpuPeak::default());
        assert!(none.contains("no published figure"), "{none}");
        assert!(none.contains("not measured (`--peak-seconds 0`)"), "{none}");
        let failed = GpuPeak {
            published_gflops: Some(66_900.0),
            published_source: Some("data sheet".into()),
            measured: None,
            measured_error: Some("invocation 0 gave NaN".into()),
        };
        let line = peak_line(&failed);
        assert!(
            line.contains("published 66900 GFLOP/s (data sheet)"),
            "{line}"
        );
        assert!(
            line.contains("the measurement failed: invocation 0 gave NaN"),
            "{line}"
        );
    }

    #[test]
    fn speedup_is_taken_at_equal_test_nll() {
        let run = |label: &str, method: &str, t: f64, nll: f64| crate::results::Run {
            suite: "toy".into(),
            dataset: "d".into(),
            method: method.into(),
            label: label.into(),
            n_nodes: None,
            grid: None,
            seminorm: false,
            iters: 1,
            time_per_iter_median_s: t,
            time_total_s: t,
            nfe_fwd_mean: 0.0,
            nfe_bwd_mean: 0.0,
            vjp_bwd_mean: 0.0,
            final_test_nll: nll,
            peak_stored_floats: 0,
            peak_rss_bytes: None,
            auto_grid_mean: None,
            test_curve: vec![],
            nfe_curve: vec![],
        };
        let runs = vec![
            run("rdm", "rdm", 2.0, 1.0),
            run("irdm4", "irdm", 0.5, 1.2),
            run("irdm16", "irdm", 1.0, 1.03),
        ];
        // irdm4 is faster but 0.2 nats worse: excluded.
        assert_eq!(best_speedup(&runs, "d", "rdm"), Some(("irdm16", 2.0)));
    }
}
