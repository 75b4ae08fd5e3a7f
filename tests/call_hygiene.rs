//! Call hygiene: a caller whose RTP stops is hung up after `--rtp-timeout`,
//! with a BYE that says why; one that keeps sending stays. Re-INVITEs put a
//! caller on hold (out of the mix, sent nothing, no timeout while inactive),
//! resume it, change its codec, or are refused keeping the session.

mod support;

use std::time::Duration;

use dialgate::media::rtp::PayloadType;
use support::Gateway;
use support::caller::{Caller, Dial, sine_frame, tail};

const CODE: &str = "7700";

#[tokio::test]
async fn silent_caller_gets_a_bye_after_the_rtp_timeout() {
    let (dir, db) = Gateway::provisioned(CODE);
    let gw = Gateway::start(dir, db, &["--rtp-timeout", "1s"]).await;
    let mut caller = Caller::dial(&gw.sip, Dial::default()).await;
    assert_eq!(caller.invite_status, 200);
    caller.key_rfc4733(&format!("{CODE}#")).await;
    // 2 s of audio, twice the timeout: sending keeps the call up.
    caller
        .talk_and_listen(100, |i| sine_frame(440.0, 4000.0, i))
        .await;
    assert!(
        caller.wait_bye(Duration::from_millis(200)).await.is_none(),
        "no BYE while media flows"
    );
    // Then silence: the BYE comes about a second later.
    let bye = caller
        .wait_bye(Duration::from_secs(5))
        .await
        .unwrap_or_else(|| panic!("a BYE after the RTP timeout: {}", gw.log()));
    let reason = bye.header("Reason").unwrap_or_default().to_owned();
    assert!(reason.contains("RTP timeout"), "Reason: {reason}");
    assert!(gw.log().contains("no RTP from the caller"), "{}", gw.log());
}

#[tokio::test]
async fn hold_by_reinvite_leaves_the_mix_and_resume_may_change_the_codec() {
    use dialgate::media::Codec;
    use support::caller::tone_power;
    const TONE_A: f64 = 697.0;
    const TONE_B: f64 = 1477.0;
    let (dir, db) = Gateway::provisioned(CODE);
    let gw = Gateway::start(dir, db, &["--rtp-timeout", "1s", "--codecs", "pcmu,pcma"]).await;
    let token = support::http::token(&gw.db);
    let mut a = Caller::dial(&gw.sip, Dial::default()).await;
    let mut b = Caller::dial(&gw.sip, Dial::default()).await;
    let code = format!("{CODE}#");
    tokio::join!(a.key_rfc4733(&code), b.key_rfc4733(&code));
    // Past "joining" and the count: both talk in the room.
    let (_, heard) = tokio::join!(
        a.talk_and_listen(300, |i| sine_frame(TONE_A, 8000.0, i)),
        b.talk_and_listen(300, |i| sine_frame(TONE_B, 8000.0, i)),
    );
    assert!(tone_power(&tail(&heard, 50), TONE_A) > 1e6, "B hears A");

    // A holds (its phone plays its own music: it keeps sending).
    let (status, answer) = a.reinvite(&[Codec::Pcmu], "sendonly").await;
    assert_eq!(status, 200, "{answer}");
    assert!(answer.contains("a=recvonly"), "{answer}");
    let (to_a, heard) = tokio::join!(
        a.talk_and_listen(100, |i| sine_frame(TONE_A, 8000.0, i)),
        b.talk_and_listen(100, |i| sine_frame(TONE_B, 8000.0, i)),
    );
    let held = tone_power(&tail(&heard, 50), TONE_A);
    assert!(held < 1e4, "B no longer hears A on hold: {held:.0}");
    assert!(
        to_a.len() < 10,
        "nothing is sent to a held caller: {} packets",
        to_a.len()
    );
    let (_, calls) = support::http::call(&gw.api, "GET", "/v1/calls", Some(&token), None).await;
    assert_eq!(calls[0]["on_hold"], true, "{calls}");
    assert_eq!(calls[1]["on_hold"], false, "{calls}");

    // Inactive: A sends nothing for twice the RTP timeout, and stays.
    let (status, answer) = a.reinvite(&[Codec::Pcmu], "inactive").await;
    assert_eq!(status, 200);
    assert!(answer.contains("a=inactive"), "{answer}");
    let (bye, _) = tokio::join!(
        a.wait_bye(Duration::from_secs(2)),
        b.talk_and_listen(100, |i| sine_frame(TONE_B, 8000.0, i)),
    );
    assert!(bye.is_none(), "no RTP timeout while inactive: {}", gw.log());

    // Resume on PCMA only: the codec changes both ways.
    let (status, answer) = a.reinvite(&[Codec::Pcma], "sendrecv").await;
    assert_eq!(status, 200);
    assert!(
        answer.contains("m=audio") && answer.contains(" RTP/AVP 8"),
        "{answer}"
    );
    assert_eq!(a.codec, Codec::Pcma);
    let (to_a, heard) = tokio::join!(
        a.talk_and_listen(100, |i| sine_frame(TONE_A, 8000.0, i)),
        b.talk_and_listen(100, |i| sine_frame(TONE_B, 8000.0, i)),
    );
    let back = tone_power(&tail(&heard, 50), TONE_A);
    assert!(back > 1e6, "B hears A again: {back:.0}");
    assert!(
        to_a.iter().all(|(h, _)| h.payload_type == PayloadType(8)),
        "A gets PCMA"
    );
    let a_hears_b = tone_power(&tail(&to_a, 50), TONE_B);
    assert!(a_hears_b > 1e6, "A hears B in PCMA: {a_hears_b:.0}");
    let (_, calls) = support::http::call(&gw.api, "GET", "/v1/calls", Some(&token), None).await;
    assert_eq!(calls[0]["codec"], "PCMA", "{calls}");

    // An offer with nothing we take (G.722 is not in `--codecs`) is
    // refused; the session stays.
    let (status, _) = a.reinvite(&[Codec::G722], "sendrecv").await;
    assert_eq!(status, 488);
    assert_eq!(a.codec, Codec::Pcma, "the test caller keeps its codec too");
    let (_, heard) = tokio::join!(
        a.talk_and_listen(75, |i| sine_frame(TONE_A, 8000.0, i)),
        b.talk_and_listen(75, |i| sine_frame(TONE_B, 8000.0, i)),
    );
    let kept = tone_power(&tail(&heard, 40), TONE_A);
    assert!(kept > 1e6, "B still hears A after the 488: {kept:.0}");
    assert_eq!(a.hang_up().await, Some(200));
    assert_eq!(b.hang_up().await, Some(200));
}
