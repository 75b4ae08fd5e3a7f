//! In-band DTMF on the call path, against a real gateway: callers that key
//! their code as tones in the audio (SIPp playing pcaps from our
//! synthesiser, and our own test caller), callers that send each key both as
//! an RFC 4733 event and as a tone, and the detector following the mode and
//! re-INVITEs. The live-call view's DTMF trace shows what was heard, from
//! where, and what was counted.

mod support;

use std::time::Duration;

use dialgate::media::Codec;
use dialgate_replay::synth::Signal;
use serde_json::Value;
use support::caller::{Caller, Dial};
use support::http::{call, token};
use support::{Gateway, SippRun, keypad_pcap, scenario, sipp};

const CODE: &str = "001122334";
/// Presses in `CODE#`.
const PRESSES: usize = 10;

/// The live call once it is in the room with `presses` counted keys and
/// `entries` presses in all in its trace, polled through the API for up to
/// 15 s (`Null` if it never was).
async fn admitted_call(api: &str, token: &str, presses: usize, entries: usize) -> Value {
    for _ in 0..150 {
        let (_, calls) = call(api, "GET", "/v1/calls", Some(token), None).await;
        let found = calls.as_array().and_then(|a| {
            a.iter()
                .find(|c| {
                    c["state"] == "in_room"
                        && counted(c, None) >= presses
                        && trace(c, None).len() >= entries
                })
                .cloned()
        });
        if let Some(c) = found {
            return c;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Value::Null
}

/// Runs `scenario` playing `pcap` (holding 6 s in the room) while watching
/// the live calls for the admitted call.
async fn sipp_call(
    gw: &Gateway,
    scenario_name: &str,
    pcap: &str,
    token: &str,
    entries: usize,
) -> (SippRun, Value) {
    let scenario = scenario(scenario_name);
    let keys = [("dtmf_pcap", pcap), ("hold_ms", "6000")];
    tokio::join!(
        sipp(
            &gw.sip,
            &scenario,
            "+15550100",
            &keys,
            Duration::from_secs(30)
        ),
        admitted_call(&gw.api, token, PRESSES, entries)
    )
}

/// Presses in the call's DTMF trace that were counted, from `source` or any.
fn counted(live: &Value, source: Option<&str>) -> usize {
    trace(live, source)
        .iter()
        .filter(|p| p["counted"] == true)
        .count()
}

/// The call's DTMF trace, from `source` or all.
fn trace(live: &Value, source: Option<&str>) -> Vec<Value> {
    live["dtmf"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter(|p| source.is_none_or(|s| p["source"] == s))
                .cloned()
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn a_caller_without_telephone_event_keys_the_code_as_tones_and_is_admitted() {
    let (dir, db) = Gateway::provisioned(CODE);
    let token = token(&db);
    let pcap = keypad_pcap(dir.path(), &format!("{CODE}#"), Signal::Tones);
    let pcap = pcap.to_string_lossy();
    let gw = Gateway::start(dir, db, &[]).await;
    let (run, live) = sipp_call(&gw, "uac_inband.xml", &pcap, &token, PRESSES).await;
    run.assert_ok(&gw);
    assert_eq!(live["state"], "in_room", "admitted: {}", gw.log());
    assert_eq!(live["dtmf_sources"], serde_json::json!(["inband"]));
    let presses = trace(&live, Some("inband"));
    assert_eq!(presses.len(), PRESSES, "each key heard once: {live}");
    assert_eq!(counted(&live, Some("inband")), PRESSES);
    for p in &presses {
        // Each key was held 100 ms.
        let ms = p["duration_ms"].as_u64().expect("a tone's length is known");
        assert!((70..=130).contains(&ms), "held {ms} ms: {p}");
    }
    let attempts = gw.attempt_log().await;
    assert_eq!(attempts.first().map(|a| a.1.as_str()), Some("admitted"));
    assert!(gw.log().contains("joined room"));
    assert!(!gw.log().contains(CODE), "codes never reach the log");
}

#[tokio::test]
async fn keys_sent_both_as_rfc4733_and_as_tones_are_counted_once() {
    let (dir, db) = Gateway::provisioned(CODE);
    let token = token(&db);
    let pcap = keypad_pcap(dir.path(), &format!("{CODE}#"), Signal::Both);
    let pcap = pcap.to_string_lossy();
    // `inband`: listen to the audio even though telephone-event is negotiated.
    let gw = Gateway::start(dir, db, &["--dtmf-mode", "inband"]).await;
    // Each key heard twice: as an event and as a tone.
    let (run, live) = sipp_call(&gw, "uac_rfc4733.xml", &pcap, &token, 2 * PRESSES).await;
    run.assert_ok(&gw);
    assert_eq!(
        live["state"],
        "in_room",
        "admitted, every key heard twice: {}",
        gw.log()
    );
    assert_eq!(
        trace(&live, Some("rfc4733")).len(),
        PRESSES,
        "every key as an event: {live}"
    );
    assert_eq!(
        trace(&live, Some("inband")).len(),
        PRESSES,
        "every key as a tone too: {live}"
    );
    assert_eq!(counted(&live, None), PRESSES, "each key typed once: {live}");
    let attempts = gw.attempt_log().await;
    assert_eq!(
        attempts.iter().map(|a| a.1.as_str()).collect::<Vec<_>>(),
        ["admitted"],
        "one attempt, the right code"
    );
}

#[tokio::test]
async fn in_auto_mode_a_negotiated_telephone_event_leaves_the_tones_alone() {
    let (dir, db) = Gateway::provisioned(CODE);
    let token = token(&db);
    let pcap = keypad_pcap(dir.path(), &format!("{CODE}#"), Signal::Both);
    let pcap = pcap.to_string_lossy();
    let gw = Gateway::start(dir, db, &[]).await;
    let (run, live) = sipp_call(&gw, "uac_rfc4733.xml", &pcap, &token, PRESSES).await;
    run.assert_ok(&gw);
    assert_eq!(live["state"], "in_room", "admitted: {}", gw.log());
    assert_eq!(counted(&live, Some("rfc4733")), PRESSES);
    assert!(trace(&live, Some("inband")).is_empty(), "{live}");
}

#[tokio::test]
async fn a_reinvite_that_drops_telephone_event_turns_tone_detection_on() {
    let (dir, db) = Gateway::provisioned(CODE);
    let token = token(&db);
    let gw = Gateway::start(dir, db, &[]).await;
    let mut caller = Caller::dial(&gw.sip, Dial::default()).await;
    assert_eq!(caller.invite_status, 200);
    // telephone-event negotiated: in `auto` these tones are not keys.
    caller.key("999#", Signal::Tones).await;
    caller.telephone_event = false;
    let (status, answer) = caller.reinvite(&[Codec::Pcmu], "sendrecv").await;
    assert_eq!(status, 200);
    assert!(!answer.contains("telephone-event"), "{answer}");
    caller.key(&format!("{CODE}#"), Signal::Tones).await;
    let live = admitted_call(&gw.api, &token, PRESSES, PRESSES).await;
    assert_eq!(live["state"], "in_room", "admitted: {}", gw.log());
    assert_eq!(
        trace(&live, None).len(),
        PRESSES,
        "the first tones were not keys: {live}"
    );
    let attempts = gw.attempt_log().await;
    assert_eq!(
        attempts.iter().map(|a| a.1.as_str()).collect::<Vec<_>>(),
        ["admitted"]
    );
    assert!(gw.log().contains("in-band DTMF detection"));
    assert_eq!(caller.hang_up().await, Some(200));
}
