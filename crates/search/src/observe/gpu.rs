//! GPU figures measured by the project itself: this process's memory on the device and its
//! peak, and the device's free memory, which sizes the recompute budget on CUDA
//! ([`sized_budget_mib`]).
//!
//! The process's memory comes from libtorch's caching allocator (`csrc/memory.cpp`,
//! [`allocator_memory`]): the bytes it has reserved from the driver, freed blocks included, and
//! their exact peak, the figure that decides whether a run fits (PyTorch's
//! `torch.cuda.max_memory_reserved`; it leaves out the CUDA context, a few hundred MiB). Where
//! the allocator cannot be asked, NVML (the NVIDIA Management Library, loaded at run time by
//! `nvml-wrapper`) gives what the driver holds for this process, context included, sampled; in
//! a container NVML's process table may hold the host's pids only, and then there is no figure
//! at all rather than a zero. The device's free memory and name come from NVML. NVML numbers
//! devices like `nvidia-smi`; with `CUDA_VISIBLE_DEVICES` reordering them, the index may not
//! match CUDA's.

use std::ffi::{c_char, c_int, CStr};

use nvml_wrapper::enums::device::UsedGpuMemory;
use nvml_wrapper::Nvml;
use tch::Device;

extern "C" {
    fn adl_cuda_memory(device: c_int, out: *mut i64, error: *mut c_char, len: usize) -> c_int;
}

/// The CUDA caching allocator's figures for one device, bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AllocatorMemory {
    /// Bytes in live tensors now, and their peak.
    pub allocated: u64,
    pub allocated_peak: u64,
    /// Bytes reserved from the driver now (live tensors and the allocator's cache), and their
    /// peak.
    pub reserved: u64,
    pub reserved_peak: u64,
}

/// The C++ side's result: `Ok` or its message.
fn ffi_call(call: impl FnOnce(*mut c_char, usize) -> c_int) -> Result<(), String> {
    let mut buffer = [0 as c_char; 512];
    if call(buffer.as_mut_ptr(), buffer.len()) == 0 {
        Ok(())
    } else {
        Err(unsafe { CStr::from_ptr(buffer.as_ptr()) }.to_string_lossy().into_owned())
    }
}

/// The caching allocator's figures for `device`; an error on the CPU, without a usable CUDA
/// device, or in a build whose libtorch did not let `csrc/memory.cpp` compile.
pub fn allocator_memory(device: Device) -> Result<AllocatorMemory, String> {
    let Device::Cuda(index) = device else { return Err("the CPU has no CUDA allocator".into()) };
    if !tch::Cuda::is_available() {
        return Err("libtorch sees no usable CUDA device".into());
    }
    let mut out = [0i64; 4];
    ffi_call(|error, len| unsafe { adl_cuda_memory(index as c_int, out.as_mut_ptr(), error, len) })?;
    let [allocated, allocated_peak, reserved, reserved_peak] = out.map(|v| v.max(0) as u64);
    Ok(AllocatorMemory { allocated, allocated_peak, reserved, reserved_peak })
}

/// Where a monitor reads this process's memory.
enum Source {
    /// libtorch's caching allocator: exact peaks.
    Allocator,
    /// NVML's per-process figure, sampled.
    Nvml,
}

/// This process's memory on one GPU.
pub struct GpuMonitor {
    nvml: Option<Nvml>,
    source: Source,
    /// The CUDA device (NVML's index is its index).
    device: Device,
    /// The latest figure and the peak, once one has been read.
    last: Option<u64>,
    peak: Option<u64>,
}

/// The name of a CUDA device (NVML), `None` on the CPU or without NVML.
pub fn device_name(device: Device) -> Option<String> {
    let Device::Cuda(index) = device else { return None };
    Nvml::init().ok()?.device_by_index(index as u32).ok()?.name().ok()
}

impl GpuMonitor {
    /// A monitor for `device`: the caching allocator's figures where they can be read, else
    /// NVML's; `None` on the CPU or where neither can.
    pub fn for_device(device: Device) -> Option<GpuMonitor> {
        let Device::Cuda(index) = device else { return None };
        let nvml = Nvml::init().ok().filter(|nvml| nvml.device_by_index(index as u32).is_ok());
        if tch::Cuda::is_available() {
            // The allocator answers for a device once it has allocated there (lazy start).
            drop(tch::Tensor::zeros([1], (tch::Kind::Float, device)));
        }
        let source = match allocator_memory(device) {
            Ok(_) => Source::Allocator,
            Err(why) if nvml.is_some() => {
                tracing::debug!(%why, "GPU memory from NVML: the allocator's statistics are not available");
                Source::Nvml
            }
            Err(_) => return None,
        };
        Some(GpuMonitor { nvml, source, device, last: None, peak: None })
    }

    /// This process's memory on the device now, in bytes (also folded into the peak); `None`
    /// when it cannot be read (NVML does not list this process).
    pub fn sample(&mut self) -> Option<u64> {
        let (used, peak) = match self.source {
            Source::Allocator => {
                let memory = allocator_memory(self.device).ok()?;
                (memory.reserved, memory.reserved_peak)
            }
            Source::Nvml => {
                let device = self.nvml_device()?;
                let pid = std::process::id();
                let mine: Vec<u64> = device
                    .running_compute_processes()
                    .ok()?
                    .into_iter()
                    .filter(|p| p.pid == pid)
                    .filter_map(|p| match p.used_gpu_memory {
                        UsedGpuMemory::Used(bytes) => Some(bytes),
                        UsedGpuMemory::Unavailable => None,
                    })
                    .collect();
                if mine.is_empty() {
                    return None;
                }
                let used = mine.iter().sum::<u64>();
                (used, used)
            }
        };
        self.last = Some(used);
        self.peak = Some(self.peak.unwrap_or(0).max(peak));
        Some(used)
    }

    /// Where the figures come from: `allocator` or `nvml`.
    pub fn source(&self) -> &'static str {
        match self.source {
            Source::Allocator => "allocator",
            Source::Nvml => "nvml",
        }
    }

    /// The latest figure, MiB (`None` before one could be read).
    pub fn current_mib(&self) -> Option<f64> {
        self.last.map(mib)
    }

    /// The peak so far, MiB (`None` before a figure could be read).
    pub fn peak_mib(&self) -> Option<f64> {
        self.peak.map(mib)
    }

    /// The device's free memory, bytes (NVML).
    pub fn free_bytes(&self) -> Option<u64> {
        Some(self.nvml_device()?.memory_info().ok()?.free)
    }

    /// NVML's handle of the device.
    fn nvml_device(&self) -> Option<nvml_wrapper::Device<'_>> {
        let Device::Cuda(index) = self.device else { return None };
        self.nvml.as_ref()?.device_by_index(index as u32).ok()
    }
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1u64 << 20) as f64
}

/// `execution` with its defaults sized for `device`: an unset activation budget from the
/// device's free memory ([`sized_budget_mib`]).
pub fn sized_for(execution: &trellis::Execution, device: Device) -> trellis::Execution {
    let mut sized = execution.clone();
    if sized.activation_budget_mib.is_none() {
        let free = GpuMonitor::for_device(device).and_then(|m| m.free_bytes());
        sized.activation_budget_mib = Some(sized_budget_mib(free));
    }
    sized
}

/// Device settings of a training run: on CUDA, cuDNN's benchmark mode (it picks the fastest
/// convolution algorithms for the shapes it meets, which pays off because crops have a fixed
/// size).
pub fn tune(device: Device) {
    if device.is_cuda() {
        tch::Cuda::cudnn_set_benchmark(true);
    }
}

/// The activation budget of the `auto` recompute policy when the config does not set one:
/// 3072 MiB on the CPU (`free_bytes` None); on a GPU 60 % of the free memory after a 2 GiB
/// margin for the weights, optimiser state, cuDNN workspaces and the allocator's
/// fragmentation, and at least 512 MiB.
pub fn sized_budget_mib(free_bytes: Option<u64>) -> u64 {
    const MIB: u64 = 1 << 20;
    match free_bytes {
        None => 3072,
        Some(free) => (free.saturating_sub(2048 * MIB) / MIB * 6 / 10).max(512),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_budget_follows_the_device() {
        const GIB: u64 = 1 << 30;
        assert_eq!(sized_budget_mib(None), 3072, "the CPU keeps its fixed budget");
        // An H200 with 139 GiB free: (139 - 2) GiB * 0.6.
        assert_eq!(sized_budget_mib(Some(139 * GIB)), 137 * 1024 * 6 / 10);
        // A 16 GiB card with 15 GiB free.
        assert_eq!(sized_budget_mib(Some(15 * GIB)), 13 * 1024 * 6 / 10);
        // Almost nothing free: the floor.
        assert_eq!(sized_budget_mib(Some(GIB)), 512);
        // No monitor on the CPU.
        assert!(GpuMonitor::for_device(Device::Cpu).is_none());
    }

    #[test]
    fn the_allocator_is_asked_only_where_it_can_answer() {
        assert!(allocator_memory(Device::Cpu).is_err());
        if !tch::Cuda::is_available() {
            // Without a GPU the question is refused in words, not by a crash.
            let why = allocator_memory(Device::Cuda(0)).unwrap_err();
            assert!(why.contains("no usable CUDA device"), "{why}");
        }
    }
}
