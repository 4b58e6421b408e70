//! What a run keeps on disk and how it stops: locked run folders with their provenance and
//! metrics ([`rundir`]), checksummed checkpoints ([`checkpoint`]), interrupts and exit codes
//! ([`interrupt`]). Every file is written through `seg::atomic`.

pub mod checkpoint;
pub mod interrupt;
pub mod rundir;
