//! Who this process is among the ranks of a run, from the launcher's environment (torchrun,
//! SLURM or an MPI launcher), and joining the group on this rank's device.

use std::time::Duration;

use anyhow::{bail, Context, Result};

use super::{Group, Ranks};

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

    /// [`Launch::from_env`], but a world of one is a group too (`search dist-check` runs the
    /// engine on one rank, as NCCL on a single GPU).
    pub fn from_env_with_single() -> Result<Option<Launch>> {
        let var = |name: &str| std::env::var(name).ok();
        if var("WORLD_SIZE").as_deref().map(str::trim) == Some("1") {
            return Ok(Some(Launch {
                rank: 0,
                world_size: 1,
                local_rank: 0,
                master_addr: var("MASTER_ADDR").unwrap_or_else(|| "127.0.0.1".into()),
                master_port: var("MASTER_PORT").and_then(|p| p.parse().ok()).unwrap_or(DEFAULT_PORT),
                launcher: "torchrun",
            }));
        }
        Launch::from_env()
    }

    /// [`Launch::from_env`] over any source of variables (for tests).
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Result<Option<Launch>> {
        let number = |name: &str| -> Result<Option<usize>> {
            var(name)
                .map(|v| v.trim().parse::<usize>().with_context(|| format!("${name} = {v:?} is not a number")))
                .transpose()
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

    /// The device this rank computes on, given the device the command resolved (`--device`)
    /// and how many CUDA devices libtorch sees: the CPU stays the CPU; on CUDA each rank of a
    /// machine takes the GPU of its local rank, or the only GPU it sees (a launcher that gives
    /// each rank its own GPU through `CUDA_VISIBLE_DEVICES`). Two ranks on one GPU would make
    /// NCCL refuse the group, so a local rank without a GPU of its own is an error naming both
    /// counts.
    pub fn device(&self, resolved: tch::Device, cuda_devices: usize) -> Result<tch::Device> {
        match resolved {
            tch::Device::Cuda(_) if cuda_devices == 1 => Ok(tch::Device::Cuda(0)),
            tch::Device::Cuda(_) if self.local_rank < cuda_devices => Ok(tch::Device::Cuda(self.local_rank)),
            tch::Device::Cuda(_) => bail!(
                "rank {} is local rank {} on its machine ({} launch), but libtorch sees {cuda_devices} CUDA devices \
                 there: start at most {cuda_devices} ranks per machine (--nproc-per-node), or give each rank one GPU \
                 through CUDA_VISIBLE_DEVICES",
                self.rank,
                self.local_rank,
                self.launcher
            ),
            other => Ok(other),
        }
    }
}

/// This process's device and, when a launcher started it, its group: the device `--device`
/// resolved to, made this rank's own ([`Launch::device`]), then the group joined on it.
pub fn join_from_env(resolved: tch::Device, timeout: Duration) -> Result<(tch::Device, Ranks)> {
    let Some(launch) = Launch::from_env()? else { return Ok((resolved, Ranks::Single)) };
    let device = launch.device(resolved, tch::Cuda::device_count().max(0) as usize)?;
    let group = Group::join(&launch, device, timeout)?;
    tracing::info!(
        rank = launch.rank,
        world_size = launch.world_size,
        local_rank = launch.local_rank,
        launcher = launch.launcher,
        engine = ?group.engine(),
        ?device,
        "joined"
    );
    Ok((device, Ranks::DataParallel(std::sync::Arc::new(group))))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dist::Engine;
    use std::collections::HashMap;

    fn launch(vars: &[(&str, &str)]) -> Result<Option<Launch>> {
        let map: HashMap<String, String> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Launch::from_vars(|name| map.get(name).cloned())
    }

    #[test]
    fn each_local_rank_takes_its_own_gpu() {
        let rank = |local_rank| Launch {
            rank: 4 + local_rank,
            world_size: 8,
            local_rank,
            master_addr: "node0".into(),
            master_port: DEFAULT_PORT,
            launcher: "torchrun",
        };
        let cuda = tch::Device::Cuda(0);
        // Four GPUs, four local ranks: one each, whatever `--device cuda` resolved to.
        for local in 0..4 {
            assert_eq!(rank(local).device(cuda, 4).unwrap(), tch::Device::Cuda(local));
        }
        // Each rank sees only its own GPU (CUDA_VISIBLE_DEVICES set per rank): device 0.
        assert_eq!(rank(3).device(cuda, 1).unwrap(), tch::Device::Cuda(0));
        // More local ranks than GPUs: refused, naming both counts.
        let error = rank(2).device(cuda, 2).unwrap_err().to_string();
        assert!(error.contains("local rank 2") && error.contains("sees 2 CUDA devices"), "{error}");
        // The CPU stays the CPU.
        assert_eq!(rank(3).device(tch::Device::Cpu, 0).unwrap(), tch::Device::Cpu);
        assert_eq!(Engine::for_device(tch::Device::Cuda(1)), Engine::Nccl);
        assert_eq!(Engine::for_device(tch::Device::Cpu), Engine::Gloo);
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
            (
                torchrun.rank,
                torchrun.world_size,
                torchrun.local_rank,
                torchrun.master_addr.as_str(),
                torchrun.master_port
            ),
            (3, 8, 1, "node0", 1234)
        );
        let slurm =
            launch(&[("SLURM_PROCID", "5"), ("SLURM_NTASKS", "16"), ("SLURM_LOCALID", "1"), ("MASTER_ADDR", "n1")])
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
