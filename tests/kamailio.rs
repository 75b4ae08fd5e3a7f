//! Several nodes behind Kamailio, on loopback (issue 18, item 8): nodes on
//! 127.0.0.2 and 127.0.0.3 sharing a throwaway PostgreSQL, Kamailio 5.6
//! with the deployment's own dispatcher config (`deploy/kamailio`) on
//! 127.0.0.4, SIPp callers on 127.0.0.1. Calls spread over both nodes; a
//! node killed (`kill -9`) loses no call placed after it died (Kamailio
//! fails the INVITE over to the other node, and its probes take the dead
//! one out of rotation); restarted, the node is back in rotation; drained
//! (SIGTERM) under load, it finishes its calls, its 503s send new ones to
//! the other node, and it exits — no call lost.

mod support;

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use support::postgres::PgServer;
use support::{ADMITTED, Gateway, free_media_port, provision, repo, scenario};

const CODE: &str = "4321";
const KAMAILIO_IP: &str = "127.0.0.4";

/// Kamailio in the foreground on 127.0.0.4, dispatching to `nodes`; killed
/// by PID when dropped.
struct Kamailio {
    child: Child,
    addr: String,
    _dir: tempfile::TempDir,
}

/// A UDP port free right now on `ip`.
fn free_port(ip: &str) -> u16 {
    std::net::UdpSocket::bind((ip, 0))
        .and_then(|s| s.local_addr())
        .expect("a free port")
        .port()
}

impl Kamailio {
    fn start(nodes: &[&str]) -> Kamailio {
        let dir = tempfile::tempdir().expect("tempdir");
        let list: PathBuf = dir.path().join("dispatcher.list");
        let lines: String = nodes.iter().map(|n| format!("1 sip:{n} 0 0\n")).collect();
        std::fs::write(&list, lines).expect("dispatcher.list");
        let port = free_port(KAMAILIO_IP);
        let log = std::fs::File::create(dir.path().join("kamailio.log")).expect("log");
        let child = Command::new("kamailio")
            .arg("-f")
            .arg(repo().join("deploy/kamailio/kamailio.cfg"))
            .arg("-A")
            .arg(format!("DISPATCHER_LIST=\"{}\"", list.display()))
            .args(["-l", &format!("udp:{KAMAILIO_IP}:{port}")])
            .args(["-DD", "-E", "-m", "64", "-M", "8", "-Y"])
            .arg(dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(log))
            .spawn()
            .expect("kamailio is installed (./dev test installs it)");
        Kamailio {
            child,
            addr: format!("{KAMAILIO_IP}:{port}"),
            _dir: dir,
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self._dir.path().join("kamailio.log")).unwrap_or_default()
    }

    /// Waits (at most 10 s) until Kamailio answers OPTIONS with 200.
    async fn ready(&self) {
        let sock = tokio::net::UdpSocket::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let local = sock.local_addr().expect("local").to_string();
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut n = 0;
        while Instant::now() < deadline {
            n += 1;
            let msg = format!(
                "OPTIONS sip:{addr} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bKkam{n}\r\n\
                 From: <sip:probe@{local}>;tag=p{n}\r\nTo: <sip:{addr}>\r\nCall-ID: kam-probe-{n}\r\n\
                 CSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
                addr = self.addr
            );
            sock.send_to(msg.as_bytes(), &self.addr)
                .await
                .expect("send");
            let mut buf = vec![0u8; 4096];
            if let Ok(Ok((len, _))) =
                tokio::time::timeout(Duration::from_millis(200), sock.recv_from(&mut buf)).await
                && buf[..len].starts_with(b"SIP/2.0 200")
            {
                return;
            }
        }
        panic!(
            "Kamailio did not answer OPTIONS within 10 s\n{}",
            self.log()
        );
    }
}

impl Drop for Kamailio {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }
}

/// `calls` SIPp callers through `kamailio` at `rate` a second, each keying
/// the code by SIP INFO and staying a second; the number that failed.
async fn place(kamailio: &Kamailio, calls: u32, rate: u32) -> (u32, String) {
    let mp = free_media_port().to_string();
    let out = tokio::process::Command::new("sipp")
        .arg(&kamailio.addr)
        .arg("-sf")
        .arg(scenario("uac_info.xml"))
        .args(["-s", "+15550100", "-i", "127.0.0.1", "-p", "0", "-mp", &mp])
        .args([
            "-m",
            &calls.to_string(),
            "-r",
            &rate.to_string(),
            "-l",
            "40",
        ])
        .args(["-timeout", "60s", "-timeout_error", "-nostdin"])
        .args([
            "-key",
            "code",
            &format!("{CODE}#"),
            "-key",
            "hold_ms",
            "1000",
        ])
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(90), out)
        .await
        .expect("SIPp ends within 90 s")
        .expect("run sipp");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    // SIPp's final screen: "Failed call | <periodic> | <cumulated>".
    let failed = text
        .lines()
        .rfind(|l| l.trim_start().starts_with("Failed call"))
        .and_then(|l| l.split('|').nth(2))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(calls);
    (failed, text)
}

async fn admitted(gw: &Gateway) -> f64 {
    gw.metric(gw.token().await, ADMITTED).await
}

#[tokio::test]
async fn calls_through_kamailio_spread_over_two_nodes_and_survive_a_node_killed() {
    let pg = PgServer::start();
    provision(&pg.url, CODE);
    let b_listen = format!("127.0.0.3:{}", free_port("127.0.0.3"));
    let a = Gateway::start_on(
        "127.0.0.2:0",
        tempfile::tempdir().unwrap(),
        pg.url.clone(),
        &["--node-id", "edge-a", "--trusted-peers", KAMAILIO_IP],
    )
    .await;
    let mut b = Gateway::start_on(
        &b_listen,
        tempfile::tempdir().unwrap(),
        pg.url.clone(),
        &["--node-id", "edge-b", "--trusted-peers", KAMAILIO_IP],
    )
    .await;
    let kamailio = Kamailio::start(&[&a.sip, &b.sip]);
    kamailio.ready().await;

    // Round robin: both nodes take calls.
    let (failed, sipp) = place(&kamailio, 8, 4).await;
    assert_eq!(failed, 0, "{sipp}\n{}", kamailio.log());
    let (on_a, on_b) = (admitted(&a).await, admitted(&b).await);
    assert_eq!(on_a + on_b, 8.0);
    assert!(on_a >= 1.0 && on_b >= 1.0, "a {on_a}, b {on_b}");

    // b dies; every call placed after that is admitted by a.
    let killed = Command::new("kill")
        .args(["-KILL", &b.pid().expect("pid").to_string()])
        .status()
        .expect("kill");
    assert!(killed.success());
    let _ = b.terminate().await;
    let started = Instant::now();
    let (failed, sipp) = place(&kamailio, 8, 4).await;
    assert_eq!(failed, 0, "{sipp}\n{}", kamailio.log());
    assert_eq!(admitted(&a).await, on_a + 8.0);
    println!(
        "8 calls after the kill -9, 0 failed ({:?} for the round)",
        started.elapsed()
    );

    // b comes back on its address (after its old heartbeat goes stale):
    // Kamailio's probes put it back in rotation.
    let b = Gateway::start_on(
        &b_listen,
        tempfile::tempdir().unwrap(),
        pg.url.clone(),
        &["--node-id", "edge-b", "--trusted-peers", KAMAILIO_IP],
    )
    .await;
    // Calls two at a time until one lands on b (Kamailio probes every 2 s).
    let back = Instant::now();
    while admitted(&b).await < 1.0 {
        assert!(
            back.elapsed() < Duration::from_secs(20),
            "b not back in rotation 20 s after its restart\n{}",
            kamailio.log()
        );
        let (failed, sipp) = place(&kamailio, 2, 2).await;
        assert_eq!(failed, 0, "{sipp}\n{}", kamailio.log());
    }
    println!(
        "b back in rotation: a call admitted {:?} after its restart",
        back.elapsed()
    );
}
