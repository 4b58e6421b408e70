//! `search env`: what this build links against and what it can see at run time.

use serde::Serialize;

/// Versions and capabilities of the linked libtorch.
#[derive(Debug, Clone, Serialize)]
pub struct EnvReport {
    /// Version of the tch crate this binary was built with.
    pub tch_version: String,
    /// Version of the libtorch it was built and linked against.
    pub libtorch_version: String,
    /// Directory of that libtorch (the binary's rpath).
    pub libtorch_lib: String,
    /// Whether a CUDA device is usable.
    pub cuda_available: bool,
    /// Whether cuDNN is usable.
    pub cudnn_available: bool,
    /// Number of CUDA devices.
    pub cuda_device_count: i64,
    /// Torch's intra-op thread count.
    pub threads: i32,
    /// Torch's inter-op thread count.
    pub interop_threads: i32,
    /// Whether libtorch was built with MKL-DNN (oneDNN), the fast CPU convolution path.
    pub mkldnn: bool,
    /// Which allocator holds libtorch's CPU tensors: "mimalloc" in the `search` binary, whose
    /// allocator overrides `malloc` for the whole process (docs/performance.md); `None` where
    /// the caller did not check (the library cannot tell by itself).
    pub tensor_allocator: Option<String>,
}

impl EnvReport {
    /// Reads the report from the linked libtorch.
    pub fn collect() -> EnvReport {
        EnvReport {
            tch_version: env!("ADL_TCH_VERSION").to_owned(),
            libtorch_version: env!("ADL_LIBTORCH_VERSION").to_owned(),
            libtorch_lib: env!("ADL_LIBTORCH_LIB").to_owned(),
            cuda_available: tch::Cuda::is_available(),
            cudnn_available: tch::Cuda::cudnn_is_available(),
            cuda_device_count: tch::Cuda::device_count(),
            threads: tch::get_num_threads(),
            interop_threads: tch::get_num_interop_threads(),
            mkldnn: tch::utils::has_mkldnn(),
            tensor_allocator: None,
        }
    }

    /// Human-readable lines, one `name: value` per field.
    pub fn to_text(&self) -> String {
        let value = serde_json::to_value(self).expect("the report serialises");
        let map = value.as_object().expect("the report is an object");
        map.iter()
            .map(|(k, v)| match v.as_str() {
                Some(text) => format!("{k:<18} {text}\n"),
                None => format!("{k:<18} {v}\n"),
            })
            .collect()
    }
}
