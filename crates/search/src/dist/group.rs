//! The process group: libtorch's own c10d (Gloo on the CPU, NCCL on CUDA) reached through the
//! C++ shim `csrc/dist.cpp`, with rendezvous through c10d's TCPStore, and its collectives
//! (all-reduce, broadcast, barrier, gradient averaging in buckets, parameter checks, count
//! sums, synchronised batch norm's autograd function).

use std::ffi::{c_char, c_int, c_void, CStr, CString};
use std::time::Duration;

use anyhow::{bail, Result};
use tch::Tensor;

use super::Launch;

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

/// The largest bucket of gradients averaged in one all-reduce: 25 MiB, DDP's default.
pub const BUCKET_BYTES: usize = 25 << 20;

impl Group {
    /// Averages `grads` (aligned with `params`) across the ranks, in place, in flattened buckets
    /// of up to [`BUCKET_BYTES`], and returns the mean of `loss` across the ranks (the last
    /// bucket carries it, so that every rank takes the same decision on a non-finite loss). A
    /// parameter without a gradient contributes zeros and is left without one.
    pub fn average_gradients(&self, params: &[Tensor], grads: &mut [Option<Tensor>], loss: f64) -> Result<f64> {
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
                if let Some(g) = &mut grads[i] {
                    *g = flat.narrow(0, offset, n).view_as(g).to_kind(g.kind());
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

/// How often the ranks compare their parameters (and at step 0).
pub const CHECK_EVERY_STEPS: usize = 100;

impl Drop for Group {
    fn drop(&mut self) {
        unsafe { adl_dist_free(self.handle) };
    }
}
