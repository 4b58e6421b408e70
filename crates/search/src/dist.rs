//! Distributed runs (docs/distributed.md): who this process is among the ranks of a run (from
//! the launcher's environment: torchrun, SLURM or an MPI launcher), and the collective engine,
//! libtorch's own c10d process groups (Gloo on the CPU, NCCL on CUDA) reached through the C++
//! shim `csrc/dist.cpp`, with rendezvous through c10d's TCPStore at MASTER_ADDR:MASTER_PORT.
//!
//! Every collective waits at most the group's timeout: a rank that died or hangs makes the
//! others fail with an error that names the operation, never a silent hang.

use std::ffi::{c_char, c_int, c_void, CStr, CString};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use tch::Tensor;

extern "C" {
    fn adl_dist_has_nccl() -> c_int;
    fn adl_dist_init(
        backend: *const c_char,
        addr: *const c_char,
        port: c_int,
        rank: c_int,
        size: c_int,
        timeout_ms: i64,
        error: *mut *mut c_char,
    ) -> *mut c_void;
    fn adl_dist_allreduce_sum(group: *mut c_void, tensors: *const *mut c_void, n: c_int, error: *mut *mut c_char) -> c_int;
    fn adl_dist_broadcast(
        group: *mut c_void,
        tensors: *const *mut c_void,
        n: c_int,
        root: c_int,
        error: *mut *mut c_char,
    ) -> c_int;
    fn adl_dist_barrier(group: *mut c_void, error: *mut *mut c_char) -> c_int;
    fn adl_dist_free(group: *mut c_void);
    fn adl_dist_free_string(s: *mut c_char);
}

/// The default port of the rendezvous store, as torchrun's.
pub const DEFAULT_PORT: u16 = 29500;

/// Who this process is among the ranks of a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Launch {
    pub rank: usize,
    pub world_size: usize,
    /// The rank on this machine (which GPU it takes).
    pub local_rank: usize,
    /// Where rank 0 serves the rendezvous store.
    pub master_addr: String,
    pub master_port: u16,
    /// Which launcher's variables said so.
    pub launcher: &'static str,
}

impl Launch {
    /// The launch the environment describes, `None` for a single process (no launcher, or a
    /// world of one).
    pub fn from_env() -> Result<Option<Launch>> {
        Launch::from_vars(|name| std::env::var(name).ok())
    }

    /// [`Launch::from_env`] over any source of variables (for tests).
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Result<Option<Launch>> {
        let number = |name: &str| -> Result<Option<usize>> {
            var(name).map(|v| v.trim().parse::<usize>().with_context(|| format!("${name} = {v:?} is not a number"))).transpose()
        };
        // torchrun (and our --nproc-per-node), then SLURM's srun, then MPI launchers.
        let launchers: [(&'static str, [&str; 3]); 4] = [
            ("torchrun", ["RANK", "WORLD_SIZE", "LOCAL_RANK"]),
            ("slurm", ["SLURM_PROCID", "SLURM_NTASKS", "SLURM_LOCALID"]),
            ("open-mpi", ["OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_LOCAL_RANK"]),
            ("mpich", ["PMI_RANK", "PMI_SIZE", "MPI_LOCALRANKID"]),
        ];
        for (launcher, [rank, size, local]) in launchers {
            let (Some(r), Some(n)) = (number(rank)?, number(size)?) else { continue };
            if n <= 1 {
                return Ok(None);
            }
            if r >= n {
                bail!("${rank} = {r} is not below ${size} = {n}");
            }
            let master_addr = match var("MASTER_ADDR") {
                Some(addr) => addr,
                None if launcher == "torchrun" => bail!("$RANK and $WORLD_SIZE are set but $MASTER_ADDR is not"),
                None => bail!(
                    "a {launcher} launch of {n} ranks needs $MASTER_ADDR (the host of rank 0) and optionally $MASTER_PORT \
                     (default {DEFAULT_PORT}); see docs/distributed.md"
                ),
            };
            let master_port = match var("MASTER_PORT") {
                Some(p) => p.trim().parse::<u16>().with_context(|| format!("$MASTER_PORT = {p:?} is not a port"))?,
                None => DEFAULT_PORT,
            };
            return Ok(Some(Launch {
                rank: r,
                world_size: n,
                local_rank: number(local)?.unwrap_or(r),
                master_addr,
                master_port,
                launcher,
            }));
        }
        Ok(None)
    }
}

/// Which engine a group runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    /// Gloo over TCP, CPU tensors.
    Gloo,
    /// NCCL, CUDA tensors.
    Nccl,
}

impl Engine {
    fn name(self) -> &'static str {
        match self {
            Engine::Gloo => "gloo",
            Engine::Nccl => "nccl",
        }
    }

    /// Whether this build has NCCL.
    pub fn nccl_available() -> bool {
        unsafe { adl_dist_has_nccl() != 0 }
    }
}

/// A group of ranks and its engine.
pub struct Group {
    handle: *mut c_void,
    pub rank: usize,
    pub size: usize,
    pub engine: Engine,
    pub timeout: Duration,
}

// The process group is thread-safe (c10d's work queue); we call it from one thread at a time.
unsafe impl Send for Group {}
unsafe impl Sync for Group {}

/// The C error string as a Rust error, freed.
fn take_error(error: *mut c_char, what: &str) -> anyhow::Error {
    let message = if error.is_null() {
        "no message".to_owned()
    } else {
        let text = unsafe { CStr::from_ptr(error) }.to_string_lossy().into_owned();
        unsafe { adl_dist_free_string(error) };
        text
    };
    anyhow::anyhow!("{what}: {}", message.lines().next().unwrap_or_default())
}

impl Group {
    /// Joins the group `launch` describes (rank 0 serves the store), waiting at most `timeout`
    /// for the others and for every later collective.
    pub fn join(launch: &Launch, engine: Engine, timeout: Duration) -> Result<Group> {
        let backend = CString::new(engine.name())?;
        let addr = CString::new(launch.master_addr.clone())?;
        let mut error: *mut c_char = std::ptr::null_mut();
        let handle = unsafe {
            adl_dist_init(
                backend.as_ptr(),
                addr.as_ptr(),
                launch.master_port as c_int,
                launch.rank as c_int,
                launch.world_size as c_int,
                timeout.as_millis() as i64,
                &mut error,
            )
        };
        if handle.is_null() {
            return Err(take_error(
                error,
                &format!(
                    "rank {} of {} could not join the group at {}:{} ({}) within {:?}",
                    launch.rank,
                    launch.world_size,
                    launch.master_addr,
                    launch.master_port,
                    engine.name(),
                    timeout
                ),
            ));
        }
        Ok(Group { handle, rank: launch.rank, size: launch.world_size, engine, timeout })
    }

    fn pointers(tensors: &[&Tensor]) -> Vec<*mut c_void> {
        tensors.iter().map(|t| t.as_ptr() as *mut c_void).collect()
    }

    /// Sums `tensors` (contiguous, on this group's device) across the ranks, in place.
    pub fn all_reduce_sum(&self, tensors: &[&Tensor]) -> Result<()> {
        let ptrs = Group::pointers(tensors);
        let mut error: *mut c_char = std::ptr::null_mut();
        let failed = unsafe { adl_dist_allreduce_sum(self.handle, ptrs.as_ptr(), ptrs.len() as c_int, &mut error) };
        if failed != 0 {
            return Err(take_error(error, &format!("rank {}: all-reduce across {} ranks failed", self.rank, self.size)));
        }
        Ok(())
    }

    /// Averages `tensors` across the ranks, in place.
    pub fn all_reduce_mean(&self, tensors: &[&Tensor]) -> Result<()> {
        self.all_reduce_sum(tensors)?;
        for t in tensors {
            let mut t = t.shallow_clone();
            let _ = t.divide_scalar_(self.size as f64);
        }
        Ok(())
    }

    /// Copies rank `root`'s `tensors` to every rank, in place.
    pub fn broadcast(&self, tensors: &[&Tensor], root: usize) -> Result<()> {
        let ptrs = Group::pointers(tensors);
        let mut error: *mut c_char = std::ptr::null_mut();
        let failed =
            unsafe { adl_dist_broadcast(self.handle, ptrs.as_ptr(), ptrs.len() as c_int, root as c_int, &mut error) };
        if failed != 0 {
            return Err(take_error(error, &format!("rank {}: broadcast from rank {root} failed", self.rank)));
        }
        Ok(())
    }

    /// Waits until every rank is here.
    pub fn barrier(&self) -> Result<()> {
        let mut error: *mut c_char = std::ptr::null_mut();
        if unsafe { adl_dist_barrier(self.handle, &mut error) } != 0 {
            return Err(take_error(error, &format!("rank {}: barrier across {} ranks failed", self.rank, self.size)));
        }
        Ok(())
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        unsafe { adl_dist_free(self.handle) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn launch(vars: &[(&str, &str)]) -> Result<Option<Launch>> {
        let map: HashMap<String, String> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Launch::from_vars(|name| map.get(name).cloned())
    }

    #[test]
    fn launchers_are_read_from_their_variables() {
        assert_eq!(launch(&[]).unwrap(), None, "no launcher: one process");
        assert_eq!(launch(&[("RANK", "0"), ("WORLD_SIZE", "1")]).unwrap(), None, "a world of one");
        let torchrun = launch(&[
            ("RANK", "3"),
            ("WORLD_SIZE", "8"),
            ("LOCAL_RANK", "1"),
            ("MASTER_ADDR", "node0"),
            ("MASTER_PORT", "1234"),
        ])
        .unwrap()
        .unwrap();
        assert_eq!(
            (torchrun.rank, torchrun.world_size, torchrun.local_rank, torchrun.master_addr.as_str(), torchrun.master_port),
            (3, 8, 1, "node0", 1234)
        );
        let slurm = launch(&[("SLURM_PROCID", "5"), ("SLURM_NTASKS", "16"), ("SLURM_LOCALID", "1"), ("MASTER_ADDR", "n1")])
            .unwrap()
            .unwrap();
        assert_eq!((slurm.launcher, slurm.rank, slurm.local_rank, slurm.master_port), ("slurm", 5, 1, DEFAULT_PORT));
        let mpi = launch(&[("OMPI_COMM_WORLD_RANK", "1"), ("OMPI_COMM_WORLD_SIZE", "2"), ("MASTER_ADDR", "h")])
            .unwrap()
            .unwrap();
        assert_eq!((mpi.launcher, mpi.rank, mpi.local_rank), ("open-mpi", 1, 1));
        let err = launch(&[("SLURM_PROCID", "0"), ("SLURM_NTASKS", "2")]).unwrap_err().to_string();
        assert!(err.contains("MASTER_ADDR"), "{err}");
        let err = launch(&[("RANK", "2"), ("WORLD_SIZE", "2"), ("MASTER_ADDR", "h")]).unwrap_err().to_string();
        assert!(err.contains("not below"), "{err}");
        let err = launch(&[("RANK", "x"), ("WORLD_SIZE", "2")]).unwrap_err().to_string();
        assert!(err.contains("$RANK"), "{err}");
    }
}
