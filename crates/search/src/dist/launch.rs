//! `--nproc-per-node N`: this executable started N times on this machine as ranks 0..N, with
//! torchrun's variables (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR = 127.0.0.1, MASTER_PORT = a
//! free port). When a rank fails, the others are stopped and the error names the rank; the
//! launcher exits with that rank's code.

use std::ffi::OsString;
use std::process::{Child, Command};
use std::time::Duration;

use anyhow::{bail, Context, Result};

/// The arguments of this process without `--nproc-per-node N` (or `--nproc-per-node=N`).
pub fn arguments_without_nproc(args: &[OsString]) -> Vec<OsString> {
    let mut out = Vec::new();
    let mut skip = false;
    for arg in args {
        if skip {
            skip = false;
            continue;
        }
        let text = arg.to_string_lossy();
        if text == "--nproc-per-node" {
            skip = true;
        } else if !text.starts_with("--nproc-per-node=") {
            out.push(arg.clone());
        }
    }
    out
}

/// A free TCP port on 127.0.0.1.
fn free_port() -> Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").context("finding a free port for the rendezvous")?;
    Ok(listener.local_addr()?.port())
}

/// The state of process `pid` in words when it is stopped (SIGSTOP, a debugger), from
/// `/proc/<pid>/stat`; `None` when it runs, sleeps or cannot be read.
fn stopped(pid: u32) -> Option<&'static str> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The state follows the command name, which is in parentheses and may hold spaces.
    let state = stat.rsplit_once(')')?.1.split_whitespace().next()?;
    match state {
        "T" => Some("stopped (SIGSTOP)"),
        "t" => Some("stopped by a debugger"),
        _ => None,
    }
}

/// Starts `n` ranks of this executable with `args` and waits for them; `Ok(())` when every
/// rank succeeded, or when all stopped on an interrupt (forwarded to them as SIGTERM, so that
/// each saves its checkpoint). The ranks die with the launcher (a parent-death signal), so none
/// outlives it, even when it is killed.
pub fn run_local(n: usize, args: &[OsString]) -> Result<()> {
    if n == 0 {
        bail!("--nproc-per-node must be at least 1");
    }
    crate::limits::check_ranks(n)?;
    let exe = std::env::current_exe().context("finding this executable")?;
    let port = free_port()?;
    // An interrupt is forwarded to the ranks, which save their checkpoint; the launcher waits.
    let _graceful = crate::store::interrupt::Graceful::hold();
    let mut children: Vec<(usize, Child)> = Vec::new();
    for rank in 0..n {
        let mut command = Command::new(&exe);
        command
            .args(args)
            .env("RANK", rank.to_string())
            .env("WORLD_SIZE", n.to_string())
            .env("LOCAL_RANK", rank.to_string())
            .env("LOCAL_WORLD_SIZE", n.to_string())
            .env("MASTER_ADDR", "127.0.0.1")
            .env("MASTER_PORT", port.to_string());
        crate::store::interrupt::die_with_parent(&mut command);
        // Their own process group: a Ctrl-C in the terminal reaches the launcher alone, which
        // forwards it once (a second signal would make a rank exit without its checkpoint).
        std::os::unix::process::CommandExt::process_group(&mut command, 0);
        let child = command.spawn().with_context(|| format!("starting rank {rank}"))?;
        children.push((rank, child));
    }
    let mut failure: Option<(usize, Option<i32>)> = None;
    let mut suspects = Vec::new();
    let mut forwarded = false;
    while !children.is_empty() {
        if crate::store::interrupt::requested() && !forwarded {
            for (_, child) in &children {
                // SAFETY: signalling a child we started and have not reaped.
                unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
            }
            forwarded = true;
        }
        let mut still = Vec::new();
        for (rank, mut child) in children {
            match child.try_wait().with_context(|| format!("waiting for rank {rank}"))? {
                Some(status) if status.code() == Some(130) && forwarded => {}
                Some(status) if !status.success() => {
                    failure.get_or_insert((rank, status.code()));
                }
                Some(_) => {}
                None => still.push((rank, child)),
            }
        }
        children = still;
        if failure.is_some() {
            for (rank, child) in &mut children {
                if let Some(state) = stopped(child.id()) {
                    suspects.push(format!("rank {rank} (pid {}) was {state}, so the others waited for it", child.id()));
                }
                let _ = child.kill();
            }
            for (_, child) in &mut children {
                let _ = child.wait();
            }
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    match failure {
        Some((rank, code)) => {
            let code = code.map_or("a signal".to_owned(), |c| format!("code {c}"));
            let hung = if suspects.is_empty() { String::new() } else { format!("; {}", suspects.join("; ")) };
            bail!("rank {rank} of {n} failed (exit {code}; its error is above){hung}; the other ranks were stopped")
        }
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_nproc_flag_is_removed_in_both_forms() {
        let args: Vec<OsString> = ["run", "--nproc-per-node", "2", "--config", "c.toml", "--nproc-per-node=4", "--x"]
            .iter()
            .map(OsString::from)
            .collect();
        let kept: Vec<String> =
            arguments_without_nproc(&args).iter().map(|a| a.to_string_lossy().into_owned()).collect();
        assert_eq!(kept, ["run", "--config", "c.toml", "--x"]);
    }
}
