//! Opening a run and what it keeps on disk: the **one session** every task opens or resumes a
//! run through ([`session`]: precision, seeding, sharding, the run folder, checkpoints,
//! resuming from rank 0's checkpoint), locked run folders with their provenance and metrics
//! ([`rundir`]), checksummed checkpoints ([`checkpoint`]), interrupts and exit codes
//! ([`interrupt`]). Every file is written through `seg::atomic`.

pub mod checkpoint;
pub mod interrupt;
pub mod rundir;
pub mod session;
