//! `search dist-check`: joins the ranks of a distributed launch and checks the collective engine
//! (an all-reduce, a broadcast, their bandwidth), as `search check` does for one process.

use std::time::{Duration, Instant};

use anyhow::{ensure, Result};
use search::device::DeviceChoice;
use search::dist::{Engine, Group, Launch};
use tch::{Device, Kind, Tensor};

#[derive(clap::Args)]
pub struct Args {
    /// Start this many ranks on this machine (otherwise: the launcher's variables).
    #[arg(long)]
    nproc_per_node: Option<usize>,
    /// Where the collectives run (CUDA takes NCCL when built with it, else Gloo).
    #[arg(long, value_enum, default_value_t = DeviceChoice::Auto)]
    device: DeviceChoice,
    /// Size of the bandwidth measurement in MiB.
    #[arg(long, default_value_t = 16)]
    mib: usize,
    /// How long a rank waits for the others in any collective before it stops with an error.
    #[arg(long, default_value_t = 300)]
    dist_timeout_s: u64,
    /// For the fault tests: this rank exits with code 3 after joining.
    #[arg(long, hide = true)]
    fail_rank: Option<usize>,
    /// For the fault tests: this rank sleeps instead of taking part.
    #[arg(long, hide = true)]
    hang_rank: Option<usize>,
}

pub fn exec(args: Args) -> Result<()> {
    if let Some(n) = args.nproc_per_node {
        let all: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
        return search::dist::launch::run_local(n, &search::dist::launch::arguments_without_nproc(&all));
    }
    let Some(launch) = Launch::from_env_with_single()? else {
        println!(
            "{{\"world_size\": 1, \"nccl_built\": {}, \"note\": \"no launcher variables (WORLD_SIZE=1 checks one rank)\"}}",
            Engine::nccl_available()
        );
        return Ok(());
    };
    let device = launch.device(args.device.resolve()?, tch::Cuda::device_count().max(0) as usize)?;
    let group = Group::join(&launch, device, Duration::from_secs(args.dist_timeout_s))?;
    if args.fail_rank == Some(launch.rank) {
        std::process::exit(3);
    }
    if args.hang_rank == Some(launch.rank) {
        std::thread::sleep(Duration::from_secs(3600));
    }
    group.record_progress(1);
    let n = launch.world_size as f64;
    let t = Tensor::full([4], launch.rank as f64 + 1.0, (Kind::Float, device));
    group.all_reduce_sum(&[&t])?;
    let expected = n * (n + 1.0) / 2.0;
    ensure!(
        Vec::<f32>::try_from(t.to_device(Device::Cpu))?.iter().all(|&v| (v as f64 - expected).abs() < 1e-6),
        "rank {}: the all-reduce gave {t:?}, not {expected}",
        launch.rank
    );
    let b = if launch.rank == 0 {
        Tensor::arange(8, (Kind::Float, device))
    } else {
        Tensor::zeros([8], (Kind::Float, device))
    };
    group.broadcast(&[&b], 0)?;
    ensure!(
        Vec::<f32>::try_from(b.to_device(Device::Cpu))? == (0..8).map(|i| i as f32).collect::<Vec<_>>(),
        "rank {}: the broadcast did not arrive",
        launch.rank
    );
    let numel = (args.mib << 20) / 4;
    let big = Tensor::ones([numel as i64], (Kind::Float, device));
    group.all_reduce_sum(&[&big])?;
    let start = Instant::now();
    let rounds = 3;
    for _ in 0..rounds {
        group.all_reduce_sum(&[&big])?;
    }
    let seconds = start.elapsed().as_secs_f64() / rounds as f64;
    group.barrier()?;
    println!(
        "{}",
        serde_json::json!({
            "rank": launch.rank, "world_size": launch.world_size, "local_rank": launch.local_rank,
            "launcher": launch.launcher, "engine": format!("{:?}", group.engine()).to_lowercase(),
            "nccl_built": Engine::nccl_available(),
            "all_reduce": "ok", "broadcast": "ok", "mib": args.mib, "all_reduce_seconds": seconds,
            "algorithm_gib_per_s": args.mib as f64 / 1024.0 / seconds,
        })
    );
    Ok(())
}
