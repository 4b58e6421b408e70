//! Training, as layers (paper §4.2 for the search, §5.2 for retraining):
//!
//! - the **one training loop** ([`train_loop`]) that every task (search, retraining) runs in:
//!   epochs, steps, evaluation, checkpoints, resume, interrupts;
//! - the steps: the search's weight step ([`step`]) and the **Architect** ([`architect`]:
//!   the architecture optimiser and the first- or second-order DARTS gradient), and what the
//!   architecture loss adds ([`arch_loss`]);
//! - the **backward strategies** ([`backward`]: plain and recomputed), which return the
//!   gradients a step asks for (weights, architecture, or both);
//! - **one optimised-parameters type** ([`optimised`]: parameters, optimiser, float16 loss
//!   scaler, ranks, clipping), through which every update goes; our SGD and Adam with saved
//!   state ([`optim`]); mixed precision ([`precision`]) and float16's dynamic loss scaling
//!   ([`loss_scale`]).
//!
//! Ranks reach the steps only inside [`optimised::Optimised`] (a `crate::dist::Ranks`
//! strategy): no step branches on whether it runs distributed.

pub mod arch_loss;
pub mod architect;
pub mod backward;
pub mod loss_scale;
pub mod optim;
pub mod optimised;
pub mod precision;
pub mod step;
pub mod train_loop;
