//! A LAN of network namespaces the test makes itself: a Linux bridge in a
//! namespace of its own (the switch), this process's namespace on it at
//! `.1`, and `n` host namespaces at `.2`, `.3`… Each host's cable can be
//! pulled (`cut`) and plugged back (`mend`), which loopback cannot do. All
//! of it goes when the `Lan` is dropped (deleting a namespace deletes the
//! veths in it, and with them their peers). Needs root, as `./dev test`
//! and CI run.
#![allow(dead_code)]

use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

pub struct Lan {
    id: String,
    /// The /24's first three octets.
    prefix: String,
    hosts: usize,
}

static NEXT: AtomicU32 = AtomicU32::new(0);

fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().expect("run ip");
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Lan {
    /// A LAN with `hosts` host namespaces.
    pub fn new(hosts: usize) -> Lan {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let pid = std::process::id();
        // Names of at most 15 bytes, unique per process and LAN; a subnet
        // of 10.0.0.0/8 few hosts use, picked by both.
        let id = format!("dg{}{n}", pid % 100_000);
        let prefix = format!("10.{}.{}", 100 + pid % 100, (pid / 100 + n * 7) % 250);
        let lan = Lan { id, prefix, hosts };
        let sw = lan.switch();
        ip(&["netns", "add", &sw]);
        ip(&["-n", &sw, "link", "set", "lo", "up"]);
        ip(&["-n", &sw, "link", "add", "br0", "type", "bridge"]);
        ip(&["-n", &sw, "link", "set", "br0", "up"]);
        // This process's side.
        let here = format!("{}h", lan.id);
        ip(&[
            "link", "add", &here, "type", "veth", "peer", "name", "up0", "netns", &sw,
        ]);
        ip(&[
            "addr",
            "add",
            &format!("{}/24", lan.host_ip()),
            "dev",
            &here,
        ]);
        ip(&["link", "set", &here, "up"]);
        ip(&["-n", &sw, "link", "set", "up0", "master", "br0", "up"]);
        for i in 0..hosts {
            let ns = lan.ns(i);
            let port = format!("p{i}");
            ip(&["netns", "add", &ns]);
            ip(&["-n", &ns, "link", "set", "lo", "up"]);
            ip(&[
                "link", "add", "eth0", "netns", &ns, "type", "veth", "peer", "name", &port,
                "netns", &sw,
            ]);
            ip(&[
                "-n",
                &ns,
                "addr",
                "add",
                &format!("{}/24", lan.ip(i)),
                "dev",
                "eth0",
            ]);
            ip(&["-n", &ns, "link", "set", "eth0", "up"]);
            ip(&["-n", &sw, "link", "set", &port, "master", "br0", "up"]);
        }
        lan
    }

    fn switch(&self) -> String {
        format!("{}sw", self.id)
    }

    /// Host `i`'s namespace.
    pub fn ns(&self, i: usize) -> String {
        format!("{}n{i}", self.id)
    }

    /// Host `i`'s address.
    pub fn ip(&self, i: usize) -> String {
        format!("{}.{}", self.prefix, i + 2)
    }

    /// This process's address on the LAN.
    pub fn host_ip(&self) -> String {
        format!("{}.1", self.prefix)
    }

    /// What runs a command in host `i`'s namespace.
    pub fn wrapper(&self, i: usize) -> Vec<String> {
        vec!["ip".into(), "netns".into(), "exec".into(), self.ns(i)]
    }

    /// Pulls host `i`'s cable: it reaches nobody, nobody reaches it.
    pub fn cut(&self, i: usize) {
        ip(&[
            "-n",
            &self.switch(),
            "link",
            "set",
            &format!("p{i}"),
            "down",
        ]);
    }

    /// Plugs host `i`'s cable back.
    pub fn mend(&self, i: usize) {
        ip(&["-n", &self.switch(), "link", "set", &format!("p{i}"), "up"]);
    }
}

impl Drop for Lan {
    fn drop(&mut self) {
        for i in 0..self.hosts {
            let _ = Command::new("ip")
                .args(["netns", "del", &self.ns(i)])
                .status();
        }
        let _ = Command::new("ip")
            .args(["netns", "del", &self.switch()])
            .status();
    }
}
