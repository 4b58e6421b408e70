//! Mixed precision of the weights' forward pass (Micikevicius et al., "Mixed Precision
//! Training", ICLR 2018): fp32, or CUDA autocast to float16 (with dynamic loss scaling,
//! [`crate::train::loss_scale`]) or bfloat16 (fp32's exponent range, so no loss scaling). α and β, the
//! losses and the optimisers stay fp32. Autocast does nothing on the CPU, so a run there is
//! fp32 whatever the config says.

use std::ffi::c_int;

use serde::{Deserialize, Serialize};
use tch::Device;

extern "C" {
    fn adl_autocast_set_dtype(code: c_int) -> c_int;
    fn adl_autocast_get_dtype() -> c_int;
}

/// The dtype of autocast regions (`autocast_dtype`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AutocastDtype {
    /// Half precision: the fastest on every CUDA GPU; needs loss scaling.
    #[default]
    Float16,
    /// bfloat16 (Ampere and later): fp32's range, no loss scaling.
    Bfloat16,
}

impl AutocastDtype {
    /// The name in configs.
    pub fn name(self) -> &'static str {
        match self {
            AutocastDtype::Float16 => "float16",
            AutocastDtype::Bfloat16 => "bfloat16",
        }
    }

    fn code(self) -> c_int {
        match self {
            AutocastDtype::Float16 => 0,
            AutocastDtype::Bfloat16 => 1,
        }
    }
}

/// Why autocast cannot run as asked.
#[derive(Debug, thiserror::Error)]
#[error(
    "autocast_dtype = \"{}\": this build cannot set libtorch's autocast dtype (csrc/autocast.cpp did not \
     compile against its libtorch; see the search crate's build warnings): use float16",
    .0.name()
)]
pub struct DtypeUnavailable(pub AutocastDtype);

/// How a run computes the weights' forward pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Precision {
    /// fp32 throughout.
    Full,
    /// CUDA autocast to the dtype.
    Autocast(AutocastDtype),
}

impl Precision {
    /// The precision of a run with `autocast` and `dtype` on `device`: autocast only on CUDA.
    pub fn of(autocast: bool, dtype: AutocastDtype, device: Device) -> Precision {
        if autocast && device.is_cuda() {
            Precision::Autocast(dtype)
        } else {
            Precision::Full
        }
    }

    /// [`Precision::of`], checked ([`Precision::check`]): what a run calls before it writes
    /// anything.
    pub fn for_run(autocast: bool, dtype: AutocastDtype, device: Device) -> Result<Precision, DtypeUnavailable> {
        let precision = Precision::of(autocast, dtype, device);
        precision.check()?;
        Ok(precision)
    }

    /// Whether the backward pass needs loss scaling (float16 autocast).
    pub fn scales_the_loss(self) -> bool {
        self == Precision::Autocast(AutocastDtype::Float16)
    }

    /// Checks that this build can run the precision (before a run writes anything).
    pub fn check(self) -> Result<(), DtypeUnavailable> {
        match self {
            Precision::Autocast(dtype) if dtype != AutocastDtype::Float16 && !dtype_settable() => {
                Err(DtypeUnavailable(dtype))
            }
            _ => Ok(()),
        }
    }

    /// Runs `f` under this precision: inside an autocast region of the dtype, or as it is.
    pub fn run<T>(self, f: impl FnOnce() -> T) -> T {
        match self {
            Precision::Full => f(),
            Precision::Autocast(dtype) => {
                let before = unsafe { adl_autocast_get_dtype() };
                unsafe { adl_autocast_set_dtype(dtype.code()) };
                let out = tch::autocast(true, f);
                if before == 0 || before == 1 {
                    unsafe { adl_autocast_set_dtype(before) };
                }
                out
            }
        }
    }
}

/// Whether this build can set the autocast dtype.
pub fn dtype_settable() -> bool {
    unsafe { adl_autocast_get_dtype() >= 0 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn autocast_runs_on_cuda_only_and_its_dtype_is_set_and_restored() {
        assert_eq!(Precision::of(true, AutocastDtype::Bfloat16, Device::Cpu), Precision::Full);
        assert_eq!(Precision::of(false, AutocastDtype::Float16, Device::Cuda(0)), Precision::Full);
        assert!(Precision::of(true, AutocastDtype::Float16, Device::Cuda(0)).scales_the_loss());
        assert!(!Precision::of(true, AutocastDtype::Bfloat16, Device::Cuda(0)).scales_the_loss());
        // The dtype is libtorch's state (readable without a GPU): set inside the region only.
        assert!(dtype_settable(), "csrc/autocast.cpp compiled against this libtorch");
        let before = unsafe { adl_autocast_get_dtype() };
        assert_eq!(before, 0, "libtorch's default CUDA autocast dtype is float16");
        let inside = Precision::Autocast(AutocastDtype::Bfloat16).run(|| unsafe { adl_autocast_get_dtype() });
        assert_eq!(inside, 1);
        assert_eq!(unsafe { adl_autocast_get_dtype() }, before, "restored after the region");
        assert!(Precision::Autocast(AutocastDtype::Bfloat16).check().is_ok());
        let message = DtypeUnavailable(AutocastDtype::Bfloat16).to_string();
        assert!(message.starts_with("autocast_dtype = \"bfloat16\""), "{message}");
    }
}
