//! GPU figures measured by the project itself through NVML (the NVIDIA Management Library,
//! loaded at run time by `nvml-wrapper`; absent on machines without an NVIDIA driver): this
//! process's memory on the device, its peak over the samples taken, and the device's free
//! memory, which sizes the recompute budget on CUDA ([`sized_budget_mib`]).
//!
//! The memory NVML reports for a process is what the CUDA driver holds for it: libtorch's
//! caching allocator keeps freed blocks, so the figure is the peak reserved memory, the one
//! that decides whether a run fits. NVML numbers devices like `nvidia-smi`; with
//! `CUDA_VISIBLE_DEVICES` reordering them, the index may not match CUDA's.

use nvml_wrapper::enums::device::UsedGpuMemory;
use nvml_wrapper::Nvml;
use tch::Device;

/// Samples this process's memory on one GPU.
pub struct GpuMonitor {
    nvml: Nvml,
    index: u32,
    last: u64,
    peak: u64,
}

/// The name of a CUDA device (NVML), `None` on the CPU or without NVML.
pub fn device_name(device: Device) -> Option<String> {
    let Device::Cuda(index) = device else { return None };
    Nvml::init().ok()?.device_by_index(index as u32).ok()?.name().ok()
}

impl GpuMonitor {
    /// A monitor for `device`: `None` on the CPU or where NVML cannot be loaded.
    pub fn for_device(device: Device) -> Option<GpuMonitor> {
        let Device::Cuda(index) = device else { return None };
        let nvml = Nvml::init().ok()?;
        nvml.device_by_index(index as u32).ok()?;
        Some(GpuMonitor { nvml, index: index as u32, last: 0, peak: 0 })
    }

    /// This process's memory on the device now, in bytes (also folded into the peak).
    pub fn sample(&mut self) -> Option<u64> {
        let device = self.nvml.device_by_index(self.index).ok()?;
        let pid = std::process::id();
        let used = device
            .running_compute_processes()
            .ok()?
            .into_iter()
            .filter(|p| p.pid == pid)
            .map(|p| match p.used_gpu_memory {
                UsedGpuMemory::Used(bytes) => bytes,
                UsedGpuMemory::Unavailable => 0,
            })
            .sum::<u64>();
        self.last = used;
        self.peak = self.peak.max(used);
        Some(used)
    }

    /// The latest sample, MiB.
    pub fn current_mib(&self) -> f64 {
        self.last as f64 / (1u64 << 20) as f64
    }

    /// The largest sample so far, MiB.
    pub fn peak_mib(&self) -> f64 {
        self.peak as f64 / (1u64 << 20) as f64
    }

    /// The device's free memory, bytes.
    pub fn free_bytes(&self) -> Option<u64> {
        Some(self.nvml.device_by_index(self.index).ok()?.memory_info().ok()?.free)
    }
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
}
