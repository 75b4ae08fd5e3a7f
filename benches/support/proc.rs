//! What the benches read of a process on Linux (/proc), shared by the load
//! and soak benches (`#[path]`-included: each bench is its own crate).

use std::process::Command;
use std::time::Duration;

/// A process's user + system CPU time (0 if it cannot be read).
pub fn cpu(pid: u32) -> Duration {
    ticks(pid, &[UTIME, STIME])
}

/// Fields of /proc/PID/stat, counted after the command name: utime, stime,
/// and the same for children it has waited for (cutime, cstime).
const UTIME: usize = 11;
const STIME: usize = 12;
const CUTIME: usize = 13;
const CSTIME: usize = 14;

/// The sum of `fields` of /proc/`pid`/stat, in clock ticks, as a time.
fn ticks(pid: u32, fields: &[usize]) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name, which is in parentheses and may hold spaces.
    let values: Vec<u64> = stat
        .rsplit_once(')')
        .map(|(_, rest)| {
            rest.split_whitespace()
                .map(|f| f.parse().unwrap_or(0))
                .collect()
        })
        .unwrap_or_default();
    let sum: u64 = fields.iter().filter_map(|&i| values.get(i)).sum();
    Duration::from_secs_f64(sum as f64 / clock_ticks())
}

/// The CPU time of a server `pid` and its worker processes (PostgreSQL's
/// backends and writers): its own, its children's that exited (it waited
/// for them: cutime and cstime), and its children's alive now. Only the
/// soak bench watches a server.
#[allow(dead_code)]
pub fn cpu_with_children(pid: u32) -> Duration {
    let children: Duration = std::fs::read_dir("/proc")
        .map(|entries| {
            entries
                .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
                .filter(|&child| parent(child) == Some(pid))
                .map(cpu)
                .sum()
        })
        .unwrap_or_default();
    ticks(pid, &[UTIME, STIME, CUTIME, CSTIME]) + children
}

/// A process's parent (the field after its state in /proc/PID/stat).
#[allow(dead_code)]
fn parent(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, rest) = stat.rsplit_once(')')?;
    rest.split_whitespace().nth(1)?.parse().ok()
}

/// Kernel clock ticks per second, asked once.
fn clock_ticks() -> f64 {
    static TICKS: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    *TICKS.get_or_init(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
            .unwrap_or(100.0)
    })
}

/// A process's resident memory (VmRSS), in KiB (0 if it cannot be read).
pub fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// Waits until process `pid` is idle — under 5 ms of CPU in 250 ms, at
/// most 30 s — so a measurement does not take in its start-up work (the
/// gateway encodes its prompts in the background after its ready line).
pub fn settle(pid: u32) {
    let until = std::time::Instant::now() + Duration::from_secs(30);
    let mut last = cpu(pid);
    while std::time::Instant::now() < until {
        std::thread::sleep(Duration::from_millis(250));
        let now = cpu(pid);
        if now.saturating_sub(last) < Duration::from_millis(5) {
            return;
        }
        last = now;
    }
}
