//! Collectives for data-parallel training: a group of `R` ranks, each holding a buffer, and an
//! elementwise sum that leaves `Σ_r buf_r` in every rank's buffer (an allreduce).
//!
//! * [`SingleProcess`]: one rank; the sum is the buffer itself.
//! * [`LocalGroup`]: `R` ranks as threads of one process, summing in rank order
//!   (`((buf_0 + buf_1) + buf_2) + …`), so every rank gets bit-identical sums. It serves tests
//!   and machines without MPI; a rank that leaves (error, panic) makes the others' next sum an
//!   error naming it, instead of a hang.
//! * `MpiGroup` (feature `mpi`, module `mpi_group`): the ranks of an MPI job.

use crate::error::{NnError, Result};
use std::sync::{Arc, Condvar, Mutex};

/// A group of ranks that can sum buffers elementwise.
pub trait Collective {
    /// This rank, `0 … ranks() − 1`.
    fn rank(&self) -> usize;
    /// Ranks in the group.
    fn ranks(&self) -> usize;
    /// Replaces `buf` on every rank by the elementwise sum of every rank's `buf` (all ranks pass
    /// the same length). Errors when a rank has left the group or the lengths differ.
    fn sum_in_place(&mut self, buf: &mut [f64]) -> Result<()>;
}

/// The group of one: training without data parallelism.
#[derive(Debug, Clone, Copy, Default)]
pub struct SingleProcess;

impl Collective for SingleProcess {
    fn rank(&self) -> usize {
        0
    }
    fn ranks(&self) -> usize {
        1
    }
    fn sum_in_place(&mut self, _buf: &mut [f64]) -> Result<()> {
        Ok(())
    }
}

/// What the threads of a [`LocalGroup`] share.
#[derive(Default)]
struct Board {
    /// Each rank's buffer for the round in progress.
    slots: Vec<Option<Vec<f64>>>,
    arrived: usize,
    /// Completed rounds.
    round: u64,
    /// The sum of the last completed round.
    sum: Vec<f64>,
    /// The first rank that left, and why.
    left: Option<(usize, String)>,
}

/// One rank of `R` ranks that are threads of this process ([`LocalGroup::new`] gives all `R`
/// handles; move one into each thread).
pub struct LocalGroup {
    rank: usize,
    ranks: usize,
    shared: Arc<(Mutex<Board>, Condvar)>,
    finished: bool,
}

impl LocalGroup {
    /// The `ranks` handles of a new group (`ranks ≥ 1`).
    pub fn new(ranks: usize) -> Result<Vec<LocalGroup>> {
        if ranks == 0 {
            return Err(NnError::Invalid {
                name: "ranks".into(),
                reason: "a group needs at least one rank".into(),
            });
        }
        let board = Board {
            slots: vec![None; ranks],
            ..Board::default()
        };
        let shared = Arc::new((Mutex::new(board), Condvar::new()));
        Ok((0..ranks)
            .map(|rank| LocalGroup {
                rank,
                ranks,
                shared: shared.clone(),
                finished: false,
            })
            .collect())
    }

    /// Leaves the group normally (after the last sum): the others are not told of a failure.
    pub fn finish(mut self) {
        self.finished = true;
    }

    fn lost(rank: usize, why: &str) -> NnError {
        NnError::RankLost {
            rank,
            reason: why.to_string(),
        }
    }
}

impl Collective for LocalGroup {
    fn rank(&self) -> usize {
        self.rank
    }
    fn ranks(&self) -> usize {
        self.ranks
    }
    fn sum_in_place(&mut self, buf: &mut [f64]) -> Result<()> {
        let (lock, wake) = &*self.shared;
        let mut board = lock
            .lock()
            .map_err(|_| Self::lost(usize::MAX, "poisoned"))?;
        if let Some((r, why)) = &board.left {
            return Err(Self::lost(*r, why));
        }
        board.slots[self.rank] = Some(buf.to_vec());
        board.arrived += 1;
        let round = board.round;
        if board.arrived == self.ranks {
            let len = buf.len();
            let mut sum = vec![0.0; len];
            for (r, slot) in board.slots.iter_mut().enumerate() {
                let part = slot.take().unwrap_or_default();
                if part.len() != len {
                    let why = format!("passed {} numbers to a sum of {len}", part.len());
                    board.left = Some((r, why.clone()));
                    wake.notify_all();
                    return Err(Self::lost(r, &why));
                }
                for (s, p) in sum.iter_mut().zip(&part) {
                    *s += p;
                }
            }
            board.sum = sum;
            board.arrived = 0;
            board.round += 1;
            wake.notify_all();
        } else {
            while board.round == round {
                if let Some((r, why)) = &board.left {
                    return Err(Self::lost(*r, why));
                }
                board = wake
                    .wait(board)
                    .map_err(|_| Self::lost(usize::MAX, "poisoned"))?;
            }
        }
        buf.copy_from_slice(&board.sum);
        Ok(())
    }
}

impl Drop for LocalGroup {
    /// A rank dropped without [`LocalGroup::finish`] (an error or a panic unwinding its thread)
    /// tells the others, whose waiting sums then fail naming it.
    fn drop(&mut self) {
        if self.finished {
            return;
        }
        let (lock, wake) = &*self.shared;
        let mut board = match lock.lock() {
            Ok(b) => b,
            Err(p) => p.into_inner(),
        };
        if board.left.is_none() {
            let why = if std::thread::panicking() {
                "panicked"
            } else {
                "stopped before the others"
            };
            board.left = Some((self.rank, why.into()));
        }
        wake.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_reach_every_rank_in_rank_order() {
        let handles = LocalGroup::new(3).unwrap();
        let out: Vec<Vec<f64>> = std::thread::scope(|s| {
            let joins: Vec<_> = handles
                .into_iter()
                .map(|mut g| {
                    s.spawn(move || {
                        let mut all = Vec::new();
                        for round in 0..4 {
                            let r = g.rank() as f64;
                            let mut buf =
                                vec![r + round as f64, 0.1 * r, 1e16 * (r == 0.0) as u8 as f64];
                            g.sum_in_place(&mut buf).unwrap();
                            all.extend(buf);
                        }
                        g.finish();
                        all
                    })
                })
                .collect();
            joins.into_iter().map(|j| j.join().unwrap()).collect()
        });
        assert!(
            out.windows(2).all(|w| w[0] == w[1]),
            "bit-identical on every rank"
        );
        assert_eq!(out[0][0], 0.0 + 1.0 + 2.0);
        assert_eq!(out[0][1], (0.0 + 0.1) + 0.2);
        assert_eq!(out[0][3], 3.0 + 3.0);
    }

    #[test]
    fn a_rank_that_leaves_fails_the_others_naming_it() {
        let mut handles = LocalGroup::new(2).unwrap();
        let quitter = handles.pop().unwrap();
        let mut stayer = handles.pop().unwrap();
        let waiting = std::thread::spawn(move || {
            let mut buf = vec![1.0];
            stayer.sum_in_place(&mut buf)
        });
        std::thread::sleep(std::time::Duration::from_millis(20));
        drop(quitter);
        let err = waiting.join().unwrap().unwrap_err();
        assert!(matches!(err, NnError::RankLost { rank: 1, .. }), "{err:?}");
        assert!(err.to_string().contains("rank 1"), "{err}");
    }

    #[test]
    fn single_process_is_the_identity() {
        let mut buf = vec![1.5, -2.0];
        SingleProcess.sum_in_place(&mut buf).unwrap();
        assert_eq!(buf, [1.5, -2.0]);
        assert!(LocalGroup::new(0).is_err());
    }
}
