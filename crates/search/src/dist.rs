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
        device: c_int,
        timeout_ms: i64,
        error: *mut *mut c_char,
    ) -> *mut c_void;
    fn adl_dist_allreduce_sum(
        group: *mut c_void,
        tensors: *const *mut c_void,
        n: c_int,
        error: *mut *mut c_char,
    ) -> c_int;
    fn adl_dist_broadcast(
        group: *mut c_void,
        tensors: *const *mut c_void,
        n: c_int,
        root: c_int,
        error: *mut *mut c_char,
    ) -> c_int;
    fn adl_dist_barrier(group: *mut c_void, error: *mut *mut c_char) -> c_int;
    fn adl_dist_free(group: *mut c_void);
    fn adl_dist_store_set(
        group: *mut c_void,
        key: *const c_char,
        value: *const c_char,
        error: *mut *mut c_char,
    ) -> c_int;
    fn adl_dist_store_get(group: *mut c_void, key: *const c_char, error: *mut *mut c_char) -> *mut c_char;
    fn adl_dist_sync_batch_norm(
        group: *mut c_void,
        x: *mut c_void,
        weight: *mut c_void,
        bias: *mut c_void,
        running_mean: *mut c_void,
        running_var: *mut c_void,
        momentum: f64,
        eps: f64,
        error: *mut *mut c_char,
    ) -> *mut c_void;
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
pub fn join_from_env(resolved: tch::Device, timeout: Duration) -> Result<(tch::Device, Option<Group>)> {
    let Some(launch) = Launch::from_env()? else { return Ok((resolved, None)) };
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
    Ok((device, Some(group)))
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
    /// The engine for tensors on `device`: NCCL on CUDA, Gloo on the CPU.
    pub fn for_device(device: tch::Device) -> Engine {
        if device.is_cuda() {
            Engine::Nccl
        } else {
            Engine::Gloo
        }
    }

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
    /// The last progress this rank recorded (see [`Group::record_progress`]).
    progress: std::sync::atomic::AtomicU64,
    pub rank: usize,
    pub size: usize,
    /// Where this rank's tensors live, and so every tensor of a collective (NCCL takes only
    /// CUDA tensors, Gloo here only CPU ones); it decides the engine ([`Group::engine`]).
    pub device: tch::Device,
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
    /// for the others and for every later collective. `device` is this rank's device
    /// ([`Launch::device`]); it picks the engine ([`Engine::for_device`]).
    pub fn join(launch: &Launch, device: tch::Device, timeout: Duration) -> Result<Group> {
        let engine = Engine::for_device(device);
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
                match device {
                    tch::Device::Cuda(index) => index as c_int,
                    _ => -1,
                },
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
        Ok(Group {
            handle,
            progress: std::sync::atomic::AtomicU64::new(0),
            rank: launch.rank,
            size: launch.world_size,
            device,
            timeout,
        })
    }

    /// The engine the group runs on (its device's, [`Engine::for_device`]).
    pub fn engine(&self) -> Engine {
        Engine::for_device(self.device)
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
            let e = take_error(error, &format!("rank {}: all-reduce across {} ranks failed", self.rank, self.size));
            return Err(anyhow::anyhow!("{e}{}", self.laggards()));
        }
        Ok(())
    }

    /// Records in the group's store that this rank reached `step` (a count that only grows: the
    /// steps of a run), so that a rank whose collective fails can say which ranks are behind.
    pub fn record_progress(&self, step: u64) {
        self.progress.store(step, std::sync::atomic::Ordering::Relaxed);
        let (key, value) = (CString::new(format!("adl/progress/{}", self.rank)), CString::new(step.to_string()));
        if let (Ok(key), Ok(value)) = (key, value) {
            let mut error: *mut c_char = std::ptr::null_mut();
            if unsafe { adl_dist_store_set(self.handle, key.as_ptr(), value.as_ptr(), &mut error) } != 0 {
                // Best effort: a store that cannot be written shows up in the next collective.
                drop(take_error(error, "recording progress"));
            }
        }
    }

    /// The ranks behind this one by their recorded progress, in words (empty when none is, or
    /// the store cannot tell).
    fn laggards(&self) -> String {
        let mine = self.progress.load(std::sync::atomic::Ordering::Relaxed);
        let mut behind = Vec::new();
        for rank in (0..self.size).filter(|&r| r != self.rank) {
            let Ok(key) = CString::new(format!("adl/progress/{rank}")) else { continue };
            let mut error: *mut c_char = std::ptr::null_mut();
            let value = unsafe { adl_dist_store_get(self.handle, key.as_ptr(), &mut error) };
            if !error.is_null() {
                drop(take_error(error, "reading progress"));
                continue;
            }
            let theirs = if value.is_null() {
                None
            } else {
                let text = unsafe { CStr::from_ptr(value) }.to_string_lossy().into_owned();
                unsafe { adl_dist_free_string(value) };
                text.parse::<u64>().ok()
            };
            match theirs {
                None => behind.push(format!("rank {rank} (no progress recorded)")),
                Some(s) if s < mine => behind.push(format!("rank {rank} (at step {s})")),
                _ => {}
            }
        }
        if behind.is_empty() {
            String::new()
        } else {
            format!("; behind this rank (at step {mine}), so dead or hung: {}", behind.join(", "))
        }
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

impl Group {
    /// Training-mode batch norm of `x` (`[N, C, H, W]`) with the batch statistics of every
    /// rank's batch (all-reduced sums), updating the running statistics with them; its backward
    /// pass all-reduces what it needs, as `torch.nn.SyncBatchNorm` does.
    #[allow(clippy::too_many_arguments)]
    pub fn sync_batch_norm(
        &self,
        x: &Tensor,
        weight: Option<&Tensor>,
        bias: Option<&Tensor>,
        running_mean: &Tensor,
        running_var: &Tensor,
        momentum: f64,
        eps: f64,
    ) -> Result<Tensor> {
        // An affine-free norm gets a constant scale of 1 and offset of 0 (autograd's custom
        // functions take defined tensors only).
        let c = x.size()[1];
        let ones = Tensor::ones([c], (tch::Kind::Float, x.device()));
        let zeros = Tensor::zeros([c], (tch::Kind::Float, x.device()));
        let (weight, bias) = (Some(weight.unwrap_or(&ones)), Some(bias.unwrap_or(&zeros)));
        let ptr = |t: Option<&Tensor>| t.map_or(std::ptr::null_mut(), |t| t.as_ptr() as *mut c_void);
        let mut error: *mut c_char = std::ptr::null_mut();
        let out = unsafe {
            adl_dist_sync_batch_norm(
                self.handle,
                ptr(Some(x)),
                ptr(weight),
                ptr(bias),
                ptr(Some(running_mean)),
                ptr(Some(running_var)),
                momentum,
                eps,
                &mut error,
            )
        };
        if out.is_null() {
            return Err(take_error(error, &format!("rank {}: synchronised batch norm failed", self.rank)));
        }
        Ok(unsafe { Tensor::from_ptr(out as *mut torch_sys::C_tensor) })
    }
}

/// Makes every training-mode batch norm of this thread synchronised across `group` (None: each
/// rank's own batch again). A collective that fails inside the network's forward pass (a rank
/// died) stops the process with its message.
pub fn synchronise_batch_norm(group: Option<std::sync::Arc<Group>>) {
    cell::ops::set_batch_norm_hook(group.map(|g| {
        std::rc::Rc::new(
            move |x: &Tensor, w: Option<&Tensor>, b: Option<&Tensor>, rm: &Tensor, rv: &Tensor, m: f64, eps: f64| {
                g.sync_batch_norm(x, w, b, rm, rv, m, eps).unwrap_or_else(|e| panic!("{e:#}"))
            },
        ) as std::rc::Rc<cell::ops::BatchNormHook>
    }));
}

/// Synchronised batch norm on this thread while it lives (when `sync` and a group are given).
pub struct SyncBatchNormGuard(bool);

impl SyncBatchNormGuard {
    /// Synchronises batch norm across `group` when `sync` is on and there is a group.
    pub fn new(group: Option<&std::sync::Arc<Group>>, sync: bool) -> SyncBatchNormGuard {
        match (group, sync) {
            (Some(g), true) => {
                synchronise_batch_norm(Some(g.clone()));
                SyncBatchNormGuard(true)
            }
            _ => SyncBatchNormGuard(false),
        }
    }
}

impl Drop for SyncBatchNormGuard {
    fn drop(&mut self) {
        if self.0 {
            synchronise_batch_norm(None);
        }
    }
}

/// The largest bucket of gradients averaged in one all-reduce: 25 MiB, DDP's default.
pub const BUCKET_BYTES: usize = 25 << 20;

impl Group {
    /// Averages the gradients of `params` across the ranks, in flattened buckets of up to
    /// [`BUCKET_BYTES`], and returns the mean of `loss` across the ranks (the last bucket carries
    /// it, so that every rank takes the same decision on a non-finite loss). A parameter without
    /// a gradient contributes zeros and is left without one.
    pub fn average_gradients(&self, params: &[Tensor], loss: f64) -> Result<f64> {
        let grads: Vec<Option<Tensor>> = params.iter().map(|p| Some(p.grad()).filter(|g| g.defined())).collect();
        let mut buckets: Vec<Vec<usize>> = vec![Vec::new()];
        let mut bytes = 0;
        for (i, p) in params.iter().enumerate() {
            let size = p.numel() * 4;
            if bytes + size > BUCKET_BYTES && !buckets.last().expect("a bucket").is_empty() {
                buckets.push(Vec::new());
                bytes = 0;
            }
            buckets.last_mut().expect("a bucket").push(i);
            bytes += size;
        }
        let last = buckets.len() - 1;
        let mut mean_loss = loss;
        for (b, bucket) in buckets.iter().enumerate() {
            let mut parts: Vec<Tensor> = bucket
                .iter()
                .map(|&i| match &grads[i] {
                    Some(g) => g.to_kind(tch::Kind::Float).flatten(0, -1),
                    None => Tensor::zeros([params[i].numel() as i64], (tch::Kind::Float, params[i].device())),
                })
                .collect();
            if b == last {
                parts.push(
                    Tensor::from_slice(&[loss as f32])
                        .to_device(params.first().map_or(tch::Device::Cpu, |p| p.device())),
                );
            }
            let flat = Tensor::cat(&parts, 0);
            self.all_reduce_mean(&[&flat])?;
            let mut offset = 0;
            for &i in bucket {
                let n = params[i].numel() as i64;
                if let Some(g) = &grads[i] {
                    let mut g = g.shallow_clone();
                    g.copy_(&flat.narrow(0, offset, n).view_as(&g).to_kind(g.kind()));
                }
                offset += n;
            }
            if b == last {
                mean_loss = f64::try_from(flat.narrow(0, offset, 1).squeeze())?;
            }
        }
        Ok(mean_loss)
    }

    /// Copies rank 0's `tensors` to every rank, flattened into one buffer per kind.
    fn broadcast_flat(&self, tensors: &[Tensor]) -> Result<()> {
        let mut kinds: Vec<tch::Kind> = Vec::new();
        for t in tensors {
            if !kinds.contains(&t.kind()) {
                kinds.push(t.kind());
            }
        }
        tch::no_grad(|| -> Result<()> {
            for kind in kinds {
                let same: Vec<&Tensor> = tensors.iter().filter(|t| t.kind() == kind).collect();
                let flat = Tensor::cat(&same.iter().map(|t| t.detach().flatten(0, -1)).collect::<Vec<_>>(), 0);
                self.broadcast(&[&flat], 0)?;
                let mut offset = 0;
                for t in same {
                    let n = t.numel() as i64;
                    let mut target = t.shallow_clone();
                    target.copy_(&flat.narrow(0, offset, n).view_as(t));
                    offset += n;
                }
            }
            Ok(())
        })
    }

    /// The variables of `stores`, sorted by name: trainable ones or the others (batch-norm
    /// statistics).
    fn variables(stores: &[&tch::nn::VarStore], trainable: bool) -> Vec<Tensor> {
        let mut out: Vec<(String, Tensor)> = Vec::new();
        for (s, vs) in stores.iter().enumerate() {
            let kept: std::collections::HashSet<usize> =
                vs.trainable_variables().iter().map(|t| t.data_ptr() as usize).collect();
            for (name, t) in vs.variables() {
                if kept.contains(&(t.data_ptr() as usize)) == trainable {
                    out.push((format!("{s}/{name}"), t));
                }
            }
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out.into_iter().map(|(_, t)| t).collect()
    }

    /// Gives every rank rank 0's values of every variable of `stores` (parameters and batch-norm
    /// statistics).
    pub fn broadcast_stores(&self, stores: &[&tch::nn::VarStore]) -> Result<()> {
        self.broadcast_flat(&Group::variables(stores, true))?;
        self.broadcast_buffers(stores)
    }

    /// Gives every rank rank 0's batch-norm statistics, as PyTorch's DDP does before every
    /// forward pass: batch norm normalises with each rank's own batch, and the running
    /// statistics that evaluation and checkpoints use are rank 0's.
    pub fn broadcast_buffers(&self, stores: &[&tch::nn::VarStore]) -> Result<()> {
        let buffers = Group::variables(stores, false);
        if buffers.is_empty() {
            return Ok(());
        }
        self.broadcast_flat(&buffers)
    }

    /// Stops with an error naming the ranks whose parameters in `stores` differ from rank 0's
    /// (a checksum of every trainable variable, compared exactly), at `step`.
    pub fn check_same(&self, stores: &[&tch::nn::VarStore], step: usize) -> Result<()> {
        let mut sum = 0.0f64;
        for (i, t) in Group::variables(stores, true).iter().enumerate() {
            sum += f64::try_from(t.to_kind(tch::Kind::Double).sum(tch::Kind::Double))? * (1.0 + i as f64 * 1e-3);
        }
        let theirs = Tensor::from_slice(&[sum]).to_device(self.device);
        self.broadcast(&[&theirs], 0)?;
        let differs = f64::try_from(theirs.to_device(tch::Device::Cpu))?.to_bits() != sum.to_bits();
        let flags = Tensor::zeros([self.size as i64], (tch::Kind::Float, self.device));
        if differs {
            let _ = flags.get(self.rank as i64).fill_(1.0);
        }
        self.all_reduce_sum(&[&flags])?;
        let diverged: Vec<usize> = Vec::<f32>::try_from(flags.to_device(tch::Device::Cpu))?
            .iter()
            .enumerate()
            .filter(|(_, &f)| f > 0.0)
            .map(|(r, _)| r)
            .collect();
        if !diverged.is_empty() {
            bail!(
                "the parameters of rank(s) {diverged:?} differ from rank 0's at step {step}: the ranks diverged \
                 (a non-deterministic operation, or different data or code on some rank); stopping"
            );
        }
        Ok(())
    }

    /// Sums integer counts (a confusion matrix) across the ranks.
    pub fn sum_counts(&self, counts: &[u64]) -> Result<Vec<u64>> {
        let t = Tensor::from_slice(&counts.iter().map(|&c| c as i64).collect::<Vec<i64>>()).to_device(self.device);
        self.all_reduce_sum(&[&t])?;
        Ok(Vec::<i64>::try_from(t.to_device(tch::Device::Cpu))?.into_iter().map(|c| c as u64).collect())
    }
}

/// Rank `rank`'s share of `items` out of `size` ranks: every `size`-th, from the `rank`-th (for
/// evaluation: every item is someone's).
pub fn shard<T: Clone>(items: &[T], rank: usize, size: usize) -> Vec<T> {
    items.iter().skip(rank).step_by(size.max(1)).cloned().collect()
}

/// [`shard`] cut to `items.len() / size` for every rank (for training: every rank then has as
/// many batches per epoch; the last `items.len() % size` items are left out of the epoch, as
/// DistributedSampler drops them with `drop_last`).
pub fn shard_even<T: Clone>(items: &[T], rank: usize, size: usize) -> Vec<T> {
    let mut share = shard(items, rank, size);
    share.truncate(items.len() / size.max(1));
    share
}

/// How often the ranks compare their parameters (and at step 0).
pub const CHECK_EVERY_STEPS: usize = 100;

/// The world size a run folder last ran with (1 when it never ran distributed).
fn last_world_size(dir: &crate::rundir::RunDir) -> u64 {
    std::fs::read_to_string(dir.path("metrics.jsonl"))
        .unwrap_or_default()
        .lines()
        .rev()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| v["kind"] == "distributed")
        .and_then(|v| v["world_size"].as_u64())
        .unwrap_or(1)
}

/// Records the distributed layout of a run in `metrics.jsonl` (rank 0, or the single process
/// after a distributed one), and on resume says when the number of ranks changed: the run goes
/// on, but each rank's share of the data and the global batch are then other ones.
pub fn record(dir: &crate::rundir::RunDir, group: Option<&Group>, per_rank_batch: usize, resume: bool) -> Result<()> {
    let size = group.map_or(1, |g| g.size) as u64;
    let before = if resume { last_world_size(dir) } else { 1 };
    if resume && before != size {
        tracing::warn!(
            before,
            now = size,
            "resuming on another number of ranks: the run goes on, but the data order (each rank's share and \
             the global batch) changes, so it will not match an uninterrupted run"
        );
    }
    if group.is_none() && before == 1 {
        return Ok(());
    }
    dir.metric(&serde_json::json!({
        "kind": "distributed", "world_size": size,
        "engine": group.map_or("none".to_owned(), |g| format!("{:?}", g.engine()).to_lowercase()),
        "per_rank_batch": per_rank_batch, "global_batch": per_rank_batch * size as usize,
    }))
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
