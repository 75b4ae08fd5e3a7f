//! The call path with RTP: keypad digits as RFC 4733 telephone-events (SIPp
//! playing pcaps made by our synthesiser, and our own test caller),
//! symmetric RTP, the prompt stream, and a clean Ctrl-C.

mod support;

use std::time::Duration;

use dialgate_replay::synth::Signal;
use support::caller::{Caller, Dial};
use support::{Gateway, keypad_pcap, scenario, sipp};

const CODE: &str = "001122334";

#[tokio::test]
async fn right_code_by_rfc4733_stays_in_the_room_until_the_callers_bye() {
    let (dir, db) = Gateway::provisioned(CODE);
    let pcap = keypad_pcap(dir.path(), &format!("{CODE}#"), Signal::Events);
    let gw = Gateway::start(dir, db, &[]).await;
    let pcap = pcap.to_string_lossy().into_owned();
    let run = sipp(
        &gw.sip,
        &scenario("uac_rfc4733.xml"),
        "+15550100",
        &[("dtmf_pcap", &pcap), ("hold_ms", "6000")],
        Duration::from_secs(30),
    )
    .await;
    run.assert_ok(&gw);
    let log = gw.log();
    assert!(log.contains("joined room"), "{log}");
    assert!(
        !log.contains(CODE),
        "the access code must never reach the log"
    );
}

#[tokio::test]
async fn wrong_code_three_times_by_rfc4733_gets_bye() {
    let (dir, db) = Gateway::provisioned(CODE);
    let pcap = keypad_pcap(dir.path(), "1111#2222#3333#", Signal::Events);
    let gw = Gateway::start(dir, db, &[]).await;
    let pcap = pcap.to_string_lossy().into_owned();
    let run = sipp(
        &gw.sip,
        &scenario("uac_rfc4733_refused.xml"),
        "+15550100",
        &[("dtmf_pcap", &pcap)],
        Duration::from_secs(60),
    )
    .await;
    run.assert_ok(&gw);
    assert_eq!(
        gw.log().matches("outcome=\"wrong\"").count(),
        4,
        "{}",
        gw.log()
    );
}

#[tokio::test]
async fn repeated_keys_are_each_counted_once() {
    let (dir, db) = Gateway::provisioned("1123");
    let gw = Gateway::start(dir, db, &[]).await;
    let mut caller = Caller::dial(&gw.sip, Dial::default()).await;
    assert_eq!(caller.invite_status, 200);
    caller.key_rfc4733("1123#").await;
    // Stay a moment: admitted callers hear the joining prompt and are not hung up.
    let heard = caller.talk_and_listen(150, |_| vec![0; 160]).await;
    assert!(!heard.is_empty());
    assert!(gw.log().contains("outcome=\"admitted\""), "{}", gw.log());
    assert_eq!(caller.hang_up().await, Some(200));
}

#[tokio::test]
async fn prompts_go_where_media_really_comes_from_in_one_continuous_stream() {
    let (dir, db) = Gateway::provisioned(CODE);
    let gw = Gateway::start(dir, db, &[]).await;
    // Our SDP names a port nobody listens on; media comes from the real one.
    let mut caller = Caller::dial(
        &gw.sip,
        Dial {
            advertised_rtp_port: Some(9),
            ..Dial::default()
        },
    )
    .await;
    assert_eq!(caller.invite_status, 200);
    let heard = caller.talk_and_listen(100, |_| vec![0; 160]).await;
    assert!(
        heard.len() >= 60,
        "latched: prompts arrive at the real port ({} packets)",
        heard.len()
    );
    let ssrc = heard[0].0.ssrc;
    for w in heard.windows(2) {
        assert_eq!(w[1].0.ssrc, ssrc, "one SSRC");
        assert_eq!(
            w[1].0.sequence,
            w[0].0.sequence.wrapping_add(1),
            "no gaps on loopback"
        );
        assert_eq!(
            w[1].0.timestamp,
            w[0].0.timestamp.wrapping_add(160),
            "20 ms per packet"
        );
        assert!(!w[1].0.marker);
    }
    // The welcome prompt is speech, not silence.
    let energy: f64 = heard
        .iter()
        .flat_map(|(_, pcm)| pcm.iter())
        .map(|s| f64::from(*s).powi(2))
        .sum();
    assert!(energy > 0.0);
    assert_eq!(caller.hang_up().await, Some(200));
}

#[tokio::test]
async fn ctrl_c_hangs_up_calls_with_bye_and_exits() {
    let (dir, db) = Gateway::provisioned(CODE);
    let mut gw = Gateway::start(dir, db, &[]).await;
    let mut caller = Caller::dial(&gw.sip, Dial::default()).await;
    assert_eq!(caller.invite_status, 200);
    caller.key_rfc4733(&format!("{CODE}#")).await;
    let interrupt = gw.interrupt();
    let bye = caller.wait_bye(Duration::from_secs(10));
    let (status, bye) = tokio::join!(interrupt, bye);
    let bye = bye.expect("the gateway sends BYE on Ctrl-C");
    assert!(
        bye.header("Reason")
            .is_some_and(|r| r.contains("cause=503")),
        "{bye:?}"
    );
    assert!(status.success(), "clean exit: {status:?}");
}
