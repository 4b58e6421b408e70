//! How the search network is executed, apart from what it computes: the `[execution]` table of
//! a config. None of these settings changes a value (to float tolerance), a variable or a
//! variable's name, so a checkpoint written with one setting resumes with another (tested);
//! they trade time against memory (docs/performance.md).

use serde::{Deserialize, Serialize};

use crate::recompute::Recompute;

/// Execution settings of the search network and of the process that runs it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Execution {
    /// Run the transitions into a node as one batched cell computation (the same values as one
    /// cell call per transition, fewer and larger kernels).
    pub batched_transitions: bool,
    /// When the search steps recompute the layers' activations in the backward pass instead
    /// of keeping them (memory-saving mode, slower).
    pub recompute: Recompute,
    /// With `recompute = "auto"`: the most memory the kept activations may take, by the
    /// network's estimate (`SearchNetwork::activation_bytes`), MiB. Unset: sized by the device
    /// when the run starts (3072 on the CPU; on CUDA from its free memory,
    /// `search::gpu::sized_budget_mib`).
    pub activation_budget_mib: Option<u64>,
    /// Torch intra-op threads (None: libtorch's choice, one per core); `--threads` overrides.
    pub threads: Option<i32>,
}

impl Default for Execution {
    fn default() -> Self {
        Execution { batched_transitions: true, recompute: Recompute::Auto, activation_budget_mib: None, threads: None }
    }
}

/// The activation budget when neither the config nor the device says otherwise, MiB.
pub const DEFAULT_ACTIVATION_BUDGET_MIB: u64 = 3072;

impl Execution {
    /// The activation budget in force, MiB.
    pub fn budget_mib(&self) -> u64 {
        self.activation_budget_mib.unwrap_or(DEFAULT_ACTIVATION_BUDGET_MIB)
    }

    /// Checks the values a file or flag can get wrong; `Err((key, message))` names the key.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        match self.threads {
            Some(t) if t < 1 => Err(("threads", format!("must be at least 1, got {t}"))),
            _ => Ok(()),
        }
    }
}
