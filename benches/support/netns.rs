//! A network of the bench's own. The bench runs itself again under
//! `unshare --net`: a fresh network namespace that holds only loopback and
//! dies with the bench, so nothing is left to clean up. Two things of the
//! host's network then stay out of the figures: its netfilter rules (on a
//! Docker host every loopback datagram passes conntrack), and, with a sink
//! address, the receiving end of what the gateway sends a load generator
//! that never reads it (see [`wire`]).

#![allow(dead_code)]

use std::net::Ipv4Addr;
use std::process::{Command, Stdio};

/// Set in the bench's environment once it runs inside its namespace.
const INSIDE: &str = "DIALGATE_BENCH_NETNS";

/// Runs this bench again in a fresh network namespace, with the same
/// arguments, and exits with its status; returns only in that second run.
/// Needs root (CAP_SYS_ADMIN) and util-linux's `unshare`.
pub fn enter(bench: &str) {
    if std::env::var_os(INSIDE).is_some() {
        return;
    }
    let usable = Command::new("unshare")
        .args(["--net", "true"])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !usable {
        eprintln!(
            "{bench}: cannot make a network namespace (`unshare --net` needs root); run with --no-netns to use the host's network"
        );
        std::process::exit(2);
    }
    let exe = std::env::current_exe().expect("the bench's own path");
    let status = Command::new("unshare")
        .arg("--net")
        .arg("--")
        .arg(exe)
        .args(std::env::args_os().skip(1))
        .env(INSIDE, "1")
        .status()
        .unwrap_or_else(|e| panic!("{bench}: unshare: {e}"));
    std::process::exit(status.code().unwrap_or(1));
}

/// Inside the namespace: loopback up and, with `sink`, every UDP datagram
/// to that address dropped as it arrives (netfilter's prerouting hook, at
/// raw priority: before routing, conntrack and every socket). On loopback
/// the sender's CPU time pays for the receiver's side of each datagram; to
/// a peer that never reads what it is sent, dropping it on arrival charges
/// the sender what a real network would: its own send path. SIPp's pcap
/// play needs this: each play holds a raw socket bound to SIPp's media
/// address, and Linux hands a copy of every UDP datagram to that address
/// to each of them (some 600 at 200 calls/s), in the sender's time.
pub fn wire(sink: Option<Ipv4Addr>) -> Result<(), String> {
    run("ip", &["link", "set", "lo", "up"])?;
    if let Some(ip) = sink {
        run("nft", &["add", "table", "ip", "bench"])?;
        run(
            "nft",
            &[
                "add chain ip bench sink { type filter hook prerouting priority raw; policy accept; }",
            ],
        )?;
        let ip = ip.to_string();
        run(
            "nft",
            &[
                "add", "rule", "ip", "bench", "sink", "ip", "daddr", &ip, "meta", "l4proto", "udp",
                "drop",
            ],
        )?;
    }
    Ok(())
}

fn run(program: &str, args: &[&str]) -> Result<(), String> {
    let out = Command::new(program)
        .args(args)
        .output()
        .map_err(|e| format!("{program}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{program} {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}
