//! A throw-away PostgreSQL server: `initdb` + `pg_ctl` in a temp directory on
//! a free 127.0.0.1 port, run as the `postgres` user, stopped on drop.
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::Command;

pub struct PgServer {
    dir: tempfile::TempDir,
    bin: PathBuf,
    pub url: String,
}

fn pg_bin() -> PathBuf {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .expect("PostgreSQL is not installed: run the tests through ./dev test (it installs postgresql)")
        .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
        .filter(|p| p.join("initdb").exists())
        .collect();
    dirs.sort();
    dirs.pop()
        .expect("a PostgreSQL server under /usr/lib/postgresql")
}

fn as_postgres(cmd: &str) -> std::process::Output {
    Command::new("runuser")
        .args(["-u", "postgres", "--", "sh", "-c", cmd])
        .output()
        .expect("runuser")
}

impl PgServer {
    pub fn start() -> PgServer {
        PgServer::start_on("127.0.0.1")
    }

    /// A server listening on `ip` (one of this machine's addresses), taking
    /// connections from anywhere it can be reached without a password.
    pub fn start_on(ip: &str) -> PgServer {
        let bin = pg_bin();
        let dir = tempfile::tempdir().expect("tempdir");
        let status = Command::new("chown")
            .arg("postgres")
            .arg(dir.path())
            .status()
            .expect("chown");
        assert!(status.success(), "chown the temp dir to postgres");
        let port = std::net::TcpListener::bind(format!("{ip}:0"))
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let data = dir.path().join("data");
        let out = as_postgres(&format!(
            "{}/initdb -D {} -A trust -U postgres --no-sync",
            bin.display(),
            data.display()
        ));
        assert!(
            out.status.success(),
            "initdb: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        if ip != "127.0.0.1" {
            let hba = data.join("pg_hba.conf");
            let mut rules = std::fs::read_to_string(&hba).expect("pg_hba.conf");
            rules.push_str("host all all 0.0.0.0/0 trust\n");
            std::fs::write(&hba, rules).expect("write pg_hba.conf");
        }
        let out = as_postgres(&format!(
            "{}/pg_ctl -D {} -w -t 30 -l {}/log -o \"-p {port} -k {} -c listen_addresses={ip} -c fsync=off\" start",
            bin.display(),
            data.display(),
            dir.path().display(),
            dir.path().display()
        ));
        assert!(
            out.status.success(),
            "pg_ctl start: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        PgServer {
            url: format!("postgres://postgres@{ip}:{port}/postgres"),
            dir,
            bin,
        }
    }
}

impl PgServer {
    /// The server's main process (the first line of `postmaster.pid`).
    pub fn postmaster_pid(&self) -> Option<u32> {
        let pid_file = self.dir.path().join("data/postmaster.pid");
        std::fs::read_to_string(pid_file)
            .ok()?
            .lines()
            .next()?
            .trim()
            .parse()
            .ok()
    }

    /// Stops the server at once, as a crash would (the store is down).
    pub fn stop(&self) {
        let out = as_postgres(&format!(
            "{}/pg_ctl -D {} -m immediate stop",
            self.bin.display(),
            self.dir.path().join("data").display()
        ));
        assert!(
            out.status.success(),
            "pg_ctl stop: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        let _ = as_postgres(&format!(
            "{}/pg_ctl -D {} -m immediate stop",
            self.bin.display(),
            self.dir.path().join("data").display()
        ));
    }
}
