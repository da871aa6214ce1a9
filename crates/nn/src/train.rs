//! Training a toy CNF with any gradient method: one Adam step per iteration on a fresh batch,
//! observer hooks for long runs, and checkpoints written atomically so that a run can resume
//! exactly where it stopped.

use crate::cnf::{Cnf, nll_loss, toy_cnf};
use crate::data::Toy;
use crate::error::{NnError, Result};
use crate::io::{self, Weights};
use crate::optim::{Adam, AdamConfig, Optimizer};
use crate::rng::Rng;
use crate::shards::resolve_threads;
use crate::{Activation, Float};
use adjoint::{Config, Method, Vjp, forward};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::ops::ControlFlow;
use std::path::Path;
use std::time::Instant;

/// Settings of a toy-CNF training run (defaults: the paper's appendix B.2 with FFJORD's
/// `T = 0.5`, batch 100, `rtol = atol = 1e-5`, Adam with lr 1e-3).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainConfig {
    /// Data set.
    pub dataset: String,
    /// Batch size.
    pub batch: usize,
    /// Integration end time `T`.
    pub t1: f64,
    /// Solver tolerances (both passes).
    pub rtol: f64,
    /// Absolute tolerance.
    pub atol: f64,
    /// Adam hyperparameters.
    pub adam: AdamConfig,
    /// Seed of the batch stream and of the initial weights.
    pub seed: u64,
    /// Held-out samples for the test NLL.
    pub test_size: usize,
    /// Activation of the net.
    pub activation: Activation,
    /// IRDM's capture settings (segments, memory cap, under-resolution); ignored by the other
    /// methods. Absent from older checkpoints, which then get the defaults.
    #[serde(default)]
    pub irdm: adjoint::IrdmOptions,
    /// Threads the right-hand side's batch is sharded over ([`Cnf::set_threads`]; `0`: rayon's
    /// pool size, `1`: sequential). A runtime choice: results differ between thread counts only
    /// by floating-point reassociation. Absent from older checkpoints, which then get 1.
    #[serde(default = "one_thread")]
    pub threads: usize,
}

fn one_thread() -> usize {
    1
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            dataset: "pinwheel".into(),
            batch: 100,
            t1: 0.5,
            rtol: 1e-5,
            atol: 1e-5,
            adam: AdamConfig::default(),
            seed: 0,
            test_size: 1000,
            activation: Activation::Tanh,
            irdm: adjoint::IrdmOptions::default(),
            threads: 1,
        }
    }
}

/// What one iteration measured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IterationRecord {
    /// Iteration number (1-based).
    pub iter: usize,
    /// Training loss (mean NLL of the batch, nats).
    pub loss: f64,
    /// Forward right-hand-side evaluations.
    pub nfe_forward: usize,
    /// Backward right-hand-side evaluations.
    pub nfe_backward: usize,
    /// Backward VJPs.
    pub vjp_backward: usize,
    /// Wall time of the iteration (forward, backward, update), seconds.
    pub seconds: f64,
    /// Floats held for the backward pass.
    pub stored_floats: usize,
    /// IRDM's grid degree, if any.
    pub grid_n: Option<usize>,
}

/// The loss and gradient of one trainer's rows of a batch (before any update).
pub(crate) struct RowsGradient<T> {
    /// Mean NLL over the rows.
    pub loss: f64,
    /// Its gradient with respect to the parameters.
    pub gradient: Vec<T>,
    /// Counts and memory of the gradient computation.
    pub info: adjoint::Info,
}

impl<T> RowsGradient<T> {
    /// The record of iteration `iter` that took `seconds`.
    pub fn record(&self, iter: usize, seconds: f64) -> IterationRecord {
        IterationRecord {
            iter,
            loss: self.loss,
            nfe_forward: self.info.nfe_forward,
            nfe_backward: self.info.nfe_backward,
            vjp_backward: self.info.vjp_backward,
            seconds,
            stored_floats: self.info.stored_floats,
            grid_n: self.info.grid.as_ref().map(|g| g.n),
        }
    }
}

/// Receives every iteration's record; return `ControlFlow::Break(())` to stop the run.
pub trait Observer {
    /// Called after each iteration.
    fn observe(&mut self, record: &IterationRecord) -> ControlFlow<()>;
}

impl<F: FnMut(&IterationRecord) -> ControlFlow<()>> Observer for F {
    fn observe(&mut self, record: &IterationRecord) -> ControlFlow<()> {
        self(record)
    }
}

/// A toy-CNF training run.
pub struct Trainer<T: Float> {
    config: TrainConfig,
    toy: Toy,
    method: Method,
    cnf: Cnf<T>,
    params: Vec<T>,
    optimizer: Adam<T>,
    rng: Rng,
    iter: usize,
    test_set: Vec<T>,
    /// The rows of each batch this trainer computes on (all of them, except as one rank of a
    /// data-parallel group, [`crate::data_parallel`]); `cnf` is sized for them.
    rows: std::ops::Range<usize>,
    /// The pool the sharded right-hand side runs on when `threads != 1`. Iterations run inside
    /// it, so that the solver's thread is one of the pool's workers: a caller outside a rayon
    /// pool waits for the other shards on a blocking latch, which at small batches costs as much
    /// as the shards save.
    pool: Option<std::sync::Arc<rayon::ThreadPool>>,
}

fn of<T: Float>(x: f64) -> T {
    <T as rk::Scalar>::of(x)
}

/// A pool of `threads` workers, or none for one thread. Trainers of one process with the same
/// thread count share one pool (while any holds it): a bench that interleaves many trainers
/// then keeps `threads` workers, not `threads` per trainer whose idle workers would spin
/// against the running one's.
fn pool_for(threads: usize) -> Result<Option<std::sync::Arc<rayon::ThreadPool>>> {
    use std::sync::{Arc, Mutex, OnceLock, Weak};
    /// Live pools by thread count.
    type Pools = Mutex<Vec<(usize, Weak<rayon::ThreadPool>)>>;
    static POOLS: OnceLock<Pools> = OnceLock::new();
    if threads <= 1 {
        return Ok(None);
    }
    let mut pools = POOLS
        .get_or_init(|| Mutex::new(Vec::new()))
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    pools.retain(|(_, p)| p.strong_count() > 0);
    if let Some(pool) = pools
        .iter()
        .find(|(n, _)| *n == threads)
        .and_then(|(_, p)| p.upgrade())
    {
        return Ok(Some(pool));
    }
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .map(Arc::new)
        .map_err(|e| NnError::Invalid {
            name: "threads".into(),
            reason: format!("cannot start a pool of {threads} threads: {e}"),
        })?;
    pools.push((threads, Arc::downgrade(&pool)));
    Ok(Some(pool))
}

impl<T: Float> Trainer<T> {
    /// A run from PyTorch-default initial weights drawn from `config.seed`, or from `init`.
    pub fn new(config: TrainConfig, method: Method, init: Option<Vec<T>>) -> Result<Self> {
        let toy: Toy = config.dataset.parse()?;
        if config.batch == 0 || config.test_size == 0 || !(config.t1 > 0.0 && config.t1.is_finite())
        {
            return Err(NnError::Invalid {
                name: "training config".into(),
                reason: format!("batch and test_size must be >= 1 and t1 > 0, got {config:?}"),
            });
        }
        let mut cnf = toy_cnf::<T>(config.batch, config.activation)?;
        let threads = resolve_threads(config.threads);
        cnf.set_threads(threads);
        let pool = pool_for(threads)?;
        let mut rng = Rng::new(config.seed);
        let params = match init {
            Some(p) => {
                if p.len() != cnf.net.param_len() {
                    return Err(crate::error::shape_err(
                        "initial parameters",
                        cnf.net.param_len(),
                        p.len(),
                    ));
                }
                crate::error::check_finite("initial parameters", &p)?;
                p
            }
            None => cnf.net.init_params(&mut rng),
        };
        let mut test_rng = Rng::new(config.seed ^ 0x07E5_75E7_u64);
        let test_set = toy
            .sample(&mut test_rng, config.test_size)
            .into_iter()
            .map(of)
            .collect();
        let optimizer = Adam::new(params.len(), config.adam)?;
        let rows = 0..config.batch;
        Ok(Self {
            config,
            toy,
            method,
            cnf,
            params,
            optimizer,
            rng,
            iter: 0,
            test_set,
            rows,
            pool,
        })
    }

    /// The current parameters (PyTorch names: [`Trainer::layout`] with prefix `net`).
    pub fn params(&self) -> &[T] {
        &self.params
    }

    /// The parameter layout.
    pub fn layout(&self) -> &crate::ParamLayout {
        self.cnf.net.layout()
    }

    /// Shards the right-hand side's batch over `threads` threads ([`TrainConfig::threads`]),
    /// e.g. for a run resumed on another machine.
    pub fn set_threads(&mut self, threads: usize) -> Result<()> {
        let resolved = resolve_threads(threads);
        self.pool = pool_for(resolved)?;
        self.config.threads = threads;
        self.cnf.set_threads(resolved);
        Ok(())
    }

    /// The run's settings (`batch`: the whole batch, also in a data-parallel run).
    pub fn config(&self) -> &TrainConfig {
        &self.config
    }

    /// Iterations done.
    pub fn iteration(&self) -> usize {
        self.iter
    }

    fn solver_config(&self) -> Config<T> {
        let mut c = Config::new(of(self.config.rtol), of(self.config.atol));
        c.forward = c
            .forward
            .with_norm(rk::ErrorNorm::Groups(self.cnf.state_groups()));
        c.irdm = self.config.irdm;
        c
    }

    fn initial_state(x: &[T], batch: usize) -> Vec<T> {
        let mut y0 = x.to_vec();
        y0.extend(std::iter::repeat_n(T::zero(), batch));
        y0
    }

    /// One iteration: a fresh batch from the seeded stream, forward, backward, Adam step.
    pub fn step(&mut self) -> Result<IterationRecord> {
        let x = self.next_batch();
        self.step_on(&x)
    }

    /// One iteration on a given batch (`B × 2`, row-major), e.g. batches shared with another
    /// implementation. The batch stream is not advanced.
    pub fn step_on(&mut self, x: &[T]) -> Result<IterationRecord> {
        match self.pool.clone() {
            Some(pool) if self.cnf.shards() > 1 => pool.install(|| self.step_here(x)),
            _ => self.step_here(x),
        }
    }

    fn step_here(&mut self, x: &[T]) -> Result<IterationRecord> {
        let start = Instant::now();
        let part = self.rows_gradient_here(x)?;
        self.apply_gradient(&part.gradient)?;
        Ok(part.record(self.iter, start.elapsed().as_secs_f64()))
    }

    /// The rows this trainer computes on.
    pub(crate) fn rows(&self) -> std::ops::Range<usize> {
        self.rows.clone()
    }

    /// Computes on rows `rows` of every batch from now on (one rank's share of a data-parallel
    /// batch); the model's work space is resized for them.
    pub(crate) fn set_rows(&mut self, rows: std::ops::Range<usize>) -> Result<()> {
        if rows.is_empty() || rows.end > self.config.batch {
            return Err(NnError::Invalid {
                name: "batch rows".into(),
                reason: format!(
                    "{rows:?} is not a non-empty part of a batch of {}",
                    self.config.batch
                ),
            });
        }
        let mut cnf = toy_cnf::<T>(rows.len(), self.config.activation)?;
        cnf.set_threads(resolve_threads(self.config.threads));
        self.cnf = cnf;
        self.rows = rows;
        Ok(())
    }

    /// Draws the next batch of the seeded stream (all `batch` rows, so that every rank of a
    /// group draws the same one).
    pub(crate) fn next_batch(&mut self) -> Vec<T> {
        self.toy
            .sample(&mut self.rng, self.config.batch)
            .into_iter()
            .map(of)
            .collect()
    }

    /// Loss and gradient on this trainer's rows of the batch `x` (`batch × 2`), without an
    /// update: the mean NLL over those rows and its gradient.
    pub(crate) fn rows_gradient(&mut self, x: &[T]) -> Result<RowsGradient<T>> {
        match self.pool.clone() {
            Some(pool) if self.cnf.shards() > 1 => pool.install(|| self.rows_gradient_here(x)),
            _ => self.rows_gradient_here(x),
        }
    }

    fn rows_gradient_here(&mut self, x: &[T]) -> Result<RowsGradient<T>> {
        let batch = self.config.batch;
        if x.len() != 2 * batch {
            return Err(crate::error::shape_err(
                "training batch",
                2 * batch,
                x.len(),
            ));
        }
        let rows = self.rows.len();
        let y0 = Self::initial_state(&x[2 * self.rows.start..2 * self.rows.end], rows);
        let ts = [T::zero(), of(self.config.t1)];
        let config = self.solver_config();
        let fwd = forward(&mut self.cnf, &self.params, &y0, &ts, self.method, &config)?;
        let (loss, cot) = nll_loss(&fwd.outputs()[1], rows, 2)?;
        let zeros = vec![T::zero(); y0.len()];
        let grad = fwd.backward(&mut self.cnf, &self.params, &[zeros, cot])?;
        Ok(RowsGradient {
            loss: <T as rk::Scalar>::as_f64(loss),
            gradient: grad.dtheta,
            info: grad.info,
        })
    }

    /// One optimizer step along `gradient`, counted as an iteration.
    pub(crate) fn apply_gradient(&mut self, gradient: &[T]) -> Result<()> {
        self.optimizer.step(&mut self.params, gradient)?;
        self.iter += 1;
        Ok(())
    }

    /// Mean NLL (nats) of the held-out samples, by a forward solve only.
    pub fn test_nll(&mut self) -> Result<f64> {
        match self.pool.clone() {
            Some(pool) => pool.install(|| self.test_nll_here()),
            None => self.test_nll_here(),
        }
    }

    fn test_nll_here(&mut self) -> Result<f64> {
        let n = self.config.test_size;
        let mut cnf = toy_cnf::<T>(n, self.config.activation)?;
        cnf.set_threads(resolve_threads(self.config.threads));
        let y0 = Self::initial_state(&self.test_set, n);
        let ts = [T::zero(), of(self.config.t1)];
        let options = rk::Options::new(of(self.config.rtol), of(self.config.atol))
            .with_norm(rk::ErrorNorm::Groups(cnf.state_groups()));
        let sol = rk::solve(
            &mut cnf,
            &self.params,
            rk::Method::Dopri5,
            &options,
            &ts,
            &y0,
        )
        .map_err(|source| adjoint::AdjointError::Solve {
            method: "test",
            pass: "forward",
            source,
        })?;
        Ok(<T as rk::Scalar>::as_f64(nll_loss(&sol.ys[1], n, 2)?.0))
    }

    /// Runs up to `iters` iterations, calling `observer` after each; stops early on `Break`.
    pub fn run(
        &mut self,
        iters: usize,
        observer: &mut dyn Observer,
    ) -> Result<Vec<IterationRecord>> {
        let mut records = Vec::with_capacity(iters);
        for _ in 0..iters {
            let r = self.step()?;
            let flow = observer.observe(&r);
            records.push(r);
            if flow.is_break() {
                break;
            }
        }
        Ok(records)
    }

    /// Writes parameters, optimizer state, iteration, batch-stream state and config to a
    /// safetensors file, atomically (temporary file, sync, rename).
    pub fn save_checkpoint(&self, path: impl AsRef<Path>) -> Result<()> {
        let mut tensors = io::param_tensors(self.layout(), "net", &self.params);
        for (name, values) in self.optimizer.state() {
            tensors.push((format!("optim.{name}"), vec![values.len()], values));
        }
        let json = |v: serde_json::Result<String>| {
            v.map_err(|e| NnError::Invalid {
                name: "checkpoint".into(),
                reason: e.to_string(),
            })
        };
        let mut meta = HashMap::new();
        meta.insert("iter".into(), self.iter.to_string());
        meta.insert("optimizer_steps".into(), self.optimizer.steps().to_string());
        meta.insert("rng".into(), json(serde_json::to_string(&self.rng))?);
        meta.insert("config".into(), json(serde_json::to_string(&self.config))?);
        meta.insert("method".into(), json(serde_json::to_string(&self.method))?);
        io::save(path, &tensors, Some(meta))
    }

    /// Continues a run saved by [`Trainer::save_checkpoint`] with gradient method `method`.
    pub fn resume(path: impl AsRef<Path>, method: Method) -> Result<Self> {
        let w = Weights::read(path)?;
        let bad = |what: &str| NnError::BadFile {
            path: w.source().to_string(),
            reason: format!("not a training checkpoint: missing or malformed {what}"),
        };
        let meta = w.metadata().map_err(|_| bad("metadata"))?;
        let config: TrainConfig =
            serde_json::from_str(meta.get("config").ok_or_else(|| bad("config"))?)
                .map_err(|_| bad("config"))?;
        let rng: Rng = serde_json::from_str(meta.get("rng").ok_or_else(|| bad("rng"))?)
            .map_err(|_| bad("rng"))?;
        let iter: usize = meta
            .get("iter")
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| bad("iter"))?;
        let steps: u64 = meta
            .get("optimizer_steps")
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| bad("optimizer_steps"))?;
        let cnf = toy_cnf::<T>(config.batch, config.activation)?;
        let params = w.params::<T>(cnf.net.layout(), "net")?;
        let mut t = Self::new(config, method, Some(params))?;
        let state: Vec<(&str, Vec<T>)> = ["exp_avg", "exp_avg_sq"]
            .into_iter()
            .map(|n| Ok((n, w.tensor::<T>(&format!("optim.{n}"))?.1)))
            .collect::<Result<_>>()?;
        t.optimizer.restore(steps, &state)?;
        t.rng = rng;
        t.iter = iter;
        Ok(t)
    }
}

#[cfg(test)]
mod tests {
    use super::pool_for;

    #[test]
    fn trainers_with_one_thread_count_share_a_pool_while_it_lives() {
        assert!(pool_for(1).unwrap().is_none());
        let a = pool_for(2).unwrap().unwrap();
        let b = pool_for(2).unwrap().unwrap();
        assert!(std::sync::Arc::ptr_eq(&a, &b));
        let c = pool_for(3).unwrap().unwrap();
        assert_eq!((c.current_num_threads(), a.current_num_threads()), (3, 2));
        drop((a, b));
        // The last holder gone, the next request builds a fresh pool of the same size.
        assert_eq!(pool_for(2).unwrap().unwrap().current_num_threads(), 2);
    }
}
