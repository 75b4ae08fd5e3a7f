//! Personal single-use codes: admit once (the same caller-ID may rejoin),
//! refuse anyone else, and stop at once when the invitee is revoked.

mod support;

use std::time::Duration;

use support::caller::{Caller, Dial};
use support::{Gateway, cli, info_call, meeting_with_invitee, schedule_meeting};

async fn outcomes(gw: &Gateway) -> Vec<(String, String)> {
    gw.attempt_log().await
}

fn pair(stage: &str, outcome: &str) -> (String, String) {
    (stage.to_owned(), outcome.to_owned())
}

#[tokio::test]
async fn personal_code_admits_once_rejoins_by_caller_id_and_refuses_others() {
    let (dir, db) = Gateway::provisioned("1");
    let (_, code) = meeting_with_invitee(&db, None);
    let gw = Gateway::start(dir, db, &["--max-attempts", "1"]).await;
    let keys = format!("{code}#");
    for _ in 0..2 {
        // SIPp's caller-ID is "sipp" both times: the second call is a rejoin.
        let run = info_call(&gw, &keys, "2000").await;
        run.assert_ok(&gw);
    }
    // Another caller-ID with the same code is refused as used.
    let mut other = Caller::dial(&gw.sip, Dial::default()).await;
    other.key_rfc4733(&keys).await;
    let bye = other
        .wait_bye(Duration::from_secs(20))
        .await
        .expect("the gateway hangs up");
    assert!(
        bye.header("Reason")
            .is_some_and(|r| r.contains("text=\"used\"")),
        "{bye:?}"
    );
    assert_eq!(
        outcomes(&gw).await,
        vec![
            pair("access", "admitted"),
            pair("access", "admitted"),
            pair("access", "used")
        ]
    );
    assert!(
        !gw.log().contains(&code),
        "personal codes never reach the log"
    );
}

#[tokio::test]
async fn revoking_the_invitee_fails_the_code_even_mid_entry() {
    let (dir, db) = Gateway::provisioned("1");
    let (invitee, code) = meeting_with_invitee(&db, Some("2468"));
    let gw = Gateway::start(dir, db.clone(), &["--max-attempts", "1"]).await;
    let mut caller = Caller::dial(&gw.sip, Dial::default()).await;
    caller.key_rfc4733(&format!("{code}#")).await;
    // Listen a second while the gateway takes the code and asks for the security code.
    caller.talk_and_listen(50, |_| vec![0; 160]).await;
    let (rc, _, err) = cli(&db, &["invitee", "revoke", &invitee]);
    assert_eq!(rc, 0, "{err}");
    caller.key_rfc4733("2468#").await;
    let bye = caller
        .wait_bye(Duration::from_secs(20))
        .await
        .expect("the gateway hangs up");
    assert!(
        bye.header("Reason")
            .is_some_and(|r| r.contains("text=\"revoked\"")),
        "{bye:?}"
    );
    assert_eq!(outcomes(&gw).await, vec![pair("security", "revoked")]);
    // And a new call with the revoked code is refused at the access stage.
    let mut again = Caller::dial(&gw.sip, Dial::default()).await;
    again.key_rfc4733(&format!("{code}#")).await;
    again
        .wait_bye(Duration::from_secs(20))
        .await
        .expect("hung up");
    assert_eq!(outcomes(&gw).await.last(), Some(&pair("access", "revoked")));
}

#[test]
fn personal_codes_are_stored_only_as_hashes() {
    let (_dir, db) = Gateway::provisioned("1");
    let (_, code) = meeting_with_invitee(&db, None);
    let bytes = support::stored_bytes(&db);
    assert!(
        bytes.windows(4).any(|w| w == b"Ada "),
        "the dump has the rows"
    );
    assert!(!bytes.windows(code.len()).any(|w| w == code.as_bytes()));
    let (rc, _, err) = cli(
        &db,
        &["meeting", "invite", "--meeting", "999", "--name", "x"],
    );
    assert_eq!(rc, 2, "{err}");
}

/// A one-shot HTTP server on loopback: answers each request with the next
/// status in `statuses`, returns the bodies it received.
fn webhook_server(statuses: Vec<u16>) -> (String, std::thread::JoinHandle<Vec<String>>) {
    use std::io::{BufRead, BufReader, Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/invites", listener.local_addr().unwrap());
    listener.set_nonblocking(true).unwrap();
    let handle = std::thread::spawn(move || {
        let mut bodies = Vec::new();
        // Every POST must come within 30 s: a missing retry fails the test
        // instead of hanging it.
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        for status in statuses {
            let stream = loop {
                match listener.accept() {
                    Ok((stream, _)) => break Some(stream),
                    Err(e)
                        if e.kind() == std::io::ErrorKind::WouldBlock
                            && std::time::Instant::now() < deadline =>
                    {
                        std::thread::sleep(Duration::from_millis(10));
                    }
                    Err(_) => break None,
                }
            };
            let Some(stream) = stream else { break };
            stream.set_nonblocking(false).unwrap();
            stream
                .set_read_timeout(Some(Duration::from_secs(5)))
                .unwrap();
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut len = 0usize;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    len = v.trim().parse().unwrap_or(0);
                }
            }
            let mut body = vec![0; len];
            reader.read_exact(&mut body).unwrap();
            bodies.push(String::from_utf8_lossy(&body).into_owned());
            let mut stream = stream;
            write!(
                stream,
                "HTTP/1.1 {status} X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            )
            .unwrap();
        }
        bodies
    });
    (url, handle)
}

#[test]
fn personal_code_is_posted_to_the_webhook_with_retries() {
    let (_dir, db) = Gateway::provisioned("1");
    let (url, server) = webhook_server(vec![503, 200]);
    let (rc, _, err) = cli(&db, &["tenant", "set", "acme", "--invite-webhook", &url]);
    assert_eq!(rc, 0, "{err}");
    let id = schedule_meeting(&db, 5, &[])["id"].to_string();
    let (rc, out, err) = cli(
        &db,
        &[
            "meeting",
            "invite",
            "--meeting",
            &id,
            "--name",
            "Ada",
            "--phone",
            "+44 20 7946 0000",
            "--json",
        ],
    );
    assert_eq!(rc, 0, "{err}");
    let invite: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(invite["webhook"], "delivered");
    let bodies = server.join().unwrap();
    assert_eq!(bodies.len(), 2, "one failed try, then delivered");
    let posted: serde_json::Value = serde_json::from_str(&bodies[1]).unwrap();
    assert_eq!(posted["event"], "invitee.created");
    assert_eq!(posted["invitee"]["personal_code"], invite["personal_code"]);
    assert_eq!(posted["invitee"]["phone"], "+44 20 7946 0000");

    // An unreachable webhook: the invite stands, the code is printed, delivery failed.
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead_url = format!("http://{}/x", dead.local_addr().unwrap());
    drop(dead);
    assert_eq!(
        cli(
            &db,
            &["tenant", "set", "acme", "--invite-webhook", &dead_url]
        )
        .0,
        0
    );
    let (rc, out, err) = cli(
        &db,
        &[
            "meeting",
            "invite",
            "--meeting",
            &id,
            "--name",
            "Bob",
            "--json",
        ],
    );
    assert_eq!(rc, 0, "{err}");
    let invite: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(invite["webhook"], "failed");
    assert!(invite["personal_code"].is_string());
    let (rc, _, _) = cli(
        &db,
        &["tenant", "set", "acme", "--invite-webhook", "ftp://x"],
    );
    assert_eq!(rc, 2);
}
