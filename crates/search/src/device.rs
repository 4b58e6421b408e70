//! `--device cpu|cuda|auto`: where tensors live.

use clap::ValueEnum;
use serde::{Deserialize, Serialize};
use tch::Device;

/// Waits for the device to finish queued work, so that wall-clock phases are honest on CUDA.
pub fn synchronize(device: Device) {
    if let Device::Cuda(index) = device {
        tch::Cuda::synchronize(index as i64);
    }
}

/// The device a command runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeviceChoice {
    /// CUDA device 0 when one is usable, else the CPU.
    #[default]
    Auto,
    /// The CPU.
    Cpu,
    /// CUDA device 0; an error when none is usable.
    Cuda,
}

/// `--device cuda` on a machine where libtorch sees no CUDA device.
#[derive(Debug, thiserror::Error)]
#[error("--device cuda: libtorch sees no usable CUDA device (run `search env` to see what it finds)")]
pub struct NoCuda;

impl DeviceChoice {
    /// Resolves the choice against what libtorch can see.
    pub fn resolve(self) -> Result<Device, NoCuda> {
        match self {
            DeviceChoice::Cpu => Ok(Device::Cpu),
            DeviceChoice::Auto => Ok(Device::cuda_if_available()),
            DeviceChoice::Cuda if tch::Cuda::is_available() => Ok(Device::Cuda(0)),
            DeviceChoice::Cuda => Err(NoCuda),
        }
    }
}
