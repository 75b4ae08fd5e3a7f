//! The same gateway on PostgreSQL: provisioning through the CLI, a call
//! admitted by SIP INFO, the attempt log written.

mod support;

use support::postgres::PgServer;
use support::{Gateway, info_call, provision};

#[tokio::test]
async fn call_is_admitted_with_a_postgres_store() {
    let pg = PgServer::start();
    provision(&pg.url, "0099");
    // Meetings work on PostgreSQL too: schedule one, list it back.
    let meeting = support::schedule_meeting(&pg.url, 5, &["--one-time"]);
    let listed = support::cli_json(&pg.url, &["meeting", "list", "--room", "main", "--json"]);
    assert_eq!(listed[0]["one_time_code"], meeting["one_time_code"]);
    let dir = tempfile::tempdir().expect("tempdir");
    let gw = Gateway::start(dir, pg.url.clone(), &[]).await;
    let run = info_call(&gw, "0099#", "2000").await;
    run.assert_ok(&gw);
    assert_eq!(
        gw.attempt_log().await,
        vec![("access".to_owned(), "admitted".to_owned())]
    );
    let (rc, out, err) = support::cli(
        &pg.url,
        &["attempts", "--since", "1h", "--room", "main", "--json"],
    );
    assert_eq!(rc, 0, "{err}");
    let rows: serde_json::Value = serde_json::from_str(&out).expect("attempts JSON");
    assert_eq!(rows[0]["outcome"], "admitted");
    drop(gw);
}
