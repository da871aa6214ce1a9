//! The ranks of an MPI job as a [`Collective`] (feature `mpi`; rsmpi over the system's MPI
//! library): the sum is one `MPI_Allreduce` with `MPI_SUM` on `f64`.
//!
//! Failure never hangs the job. A rank whose training returns an error calls
//! [`MpiRuntime::abort`], which prints `rank r of R: <error>` and calls `MPI_Abort` on the
//! world: the MPI runtime then stops every rank. A panicking rank does the same (a panic hook
//! installed by [`MpiRuntime::init`]). A rank killed from outside is noticed by the launcher (`mpirun` names the
//! rank and its signal), which stops the others.

use crate::collective::Collective;
use crate::error::{NnError, Result};
use mpi::collective::SystemOperation;
use mpi::environment::Universe;
use mpi::topology::SimpleCommunicator;
use mpi::traits::{Communicator, CommunicatorCollectives};

/// MPI initialized in this process; keep it alive for the whole run (dropping it finalizes
/// MPI), and past any error, so that [`MpiRuntime::abort`] can still stop the other ranks.
pub struct MpiRuntime {
    _universe: Universe,
    rank: i32,
    ranks: i32,
}

/// This process's place in the MPI world, as a [`Collective`].
pub struct MpiGroup {
    world: SimpleCommunicator,
    recv: Vec<f64>,
}

impl MpiRuntime {
    /// Initializes MPI (once per process), installs a panic hook that aborts the whole job after
    /// printing the panic with this rank's number, and returns the world group.
    pub fn init() -> Result<(Self, MpiGroup)> {
        let universe = mpi::initialize().ok_or_else(|| NnError::Invalid {
            name: "MPI".into(),
            reason: "MPI is already initialized in this process".into(),
        })?;
        let world = universe.world();
        let (rank, ranks) = (world.rank(), world.size());
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            eprintln!("rank {rank} of {ranks}: panicked; aborting every rank");
            previous(info);
            SimpleCommunicator::world().abort(101);
        }));
        Ok((
            Self {
                _universe: universe,
                rank,
                ranks,
            },
            MpiGroup {
                world,
                recv: Vec::new(),
            },
        ))
    }

    /// Prints `rank r of R: <error>` and stops every rank of the job (`MPI_Abort`, exit code 1).
    pub fn abort(&self, error: &dyn std::fmt::Display) -> ! {
        eprintln!(
            "rank {} of {}: {error}; aborting every rank",
            self.rank, self.ranks
        );
        SimpleCommunicator::world().abort(1)
    }
}

impl Collective for MpiGroup {
    fn rank(&self) -> usize {
        self.world.rank() as usize
    }
    fn ranks(&self) -> usize {
        self.world.size() as usize
    }
    fn sum_in_place(&mut self, buf: &mut [f64]) -> Result<()> {
        self.recv.resize(buf.len(), 0.0);
        self.world
            .all_reduce_into(&buf[..], &mut self.recv[..], SystemOperation::sum());
        buf.copy_from_slice(&self.recv);
        Ok(())
    }
}
