//! Everything the gateway logs during calls that key every kind of code —
//! regular, security, one-time, personal, wrong — holds none of them.

mod support;

use support::{Gateway, info_call, info_call_refused};

#[tokio::test]
async fn no_code_of_any_kind_reaches_the_log() {
    let (dir, db) = Gateway::provisioned("97531864");
    let json = |args: &[&str]| support::cli_json(&db, args);
    json(&[
        "room",
        "add",
        "--tenant",
        "acme",
        "--name",
        "vault",
        "--access-code",
        "48151623",
        "--security-code",
        "86420975",
        "--json",
    ]);
    let meeting = support::schedule_meeting(&db, 5, &["--one-time"]);
    let one_time = meeting["one_time_code"].as_str().unwrap().to_owned();
    let id = meeting["id"].to_string();
    let invite = json(&[
        "meeting",
        "invite",
        "--meeting",
        &id,
        "--name",
        "Grace",
        "--json",
    ]);
    let personal = invite["personal_code"].as_str().unwrap().to_owned();

    let gw = Gateway::start(dir, db.clone(), &[]).await;
    let admitted = [
        "97531864#".to_owned(),
        "48151623#86420975#".to_owned(),
        format!("{one_time}#"),
        format!("{personal}#"),
    ];
    for keys in &admitted {
        let run = info_call(&gw, keys, "2000").await;
        run.assert_ok(&gw);
    }
    let run = info_call_refused(&gw, "71829364#56473829#39485761#").await;
    run.assert_ok(&gw);

    let log = gw.log();
    assert_eq!(log.matches("joined room").count(), 4, "{log}");
    for code in [
        "97531864",
        "48151623",
        "86420975",
        one_time.as_str(),
        personal.as_str(),
        "71829364",
        "56473829",
        "39485761",
    ] {
        let at = log.find(code);
        assert!(
            at.is_none(),
            "code {code} found in the gateway log: {:?}",
            at.map(|i| &log[i.saturating_sub(120)..(i + 40).min(log.len())])
        );
    }
    // The attempt log has who and what happened, not the digits.
    let attempts = support::cli_json(&db, &["attempts", "--json"]).to_string();
    assert!(
        attempts.contains("admitted"),
        "the log has the calls: {attempts}"
    );
    for code in [
        "97531864",
        "48151623",
        "86420975",
        one_time.as_str(),
        personal.as_str(),
        "71829364",
    ] {
        assert!(
            !attempts.contains(code),
            "code {code} found in the attempt log"
        );
    }
}
