//! Synchronised batch norm (`sync_bn`): every training-mode batch norm of the cells, heads and
//! decoded networks normalised with the statistics of every rank's batch, through the cells'
//! batch-norm hook (`cell::ops::set_batch_norm_hook`).

use tch::Tensor;

use super::{Group, Ranks};

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
    /// Synchronises batch norm across the ranks when `sync` is on and there are several.
    pub fn new(ranks: &Ranks, sync: bool) -> SyncBatchNormGuard {
        match (ranks.group(), sync) {
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
