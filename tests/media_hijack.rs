//! Nobody but the caller can take a call's media: a stranger who finds the
//! call's RTP port (from another address) is sent no audio and keys no
//! digit, whether the caller has not spoken yet or has gone quiet, and a
//! spray of junk changes nothing; a caller behind NAT, whose media comes
//! from its public address rather than the one its SDP names, still gets
//! in, whether it signals directly or through a trusted proxy.

mod support;

use std::net::SocketAddr;
use std::time::Duration;

use dialgate_replay::synth::{Keying, Signal, keyed_code};
use support::Gateway;
use support::caller::{Caller, Dial, send_paced};
use tokio::net::UdpSocket;
use tokio::time::{Instant, timeout};

const CODE: &str = "4455667";

/// An address on the machine that is not the caller's (127.0.0.1).
const STRANGER: &str = "127.0.0.9:0";

/// Sends `code` as RFC 4733 events from `from` to `to`, paced in real time.
async fn key_from(from: &UdpSocket, to: SocketAddr, code: &str, ssrc: u32) {
    let keying = Keying {
        signal: Signal::Events,
        ssrc,
        lead: Duration::from_millis(100),
        ..Keying::default()
    };
    let packets = keyed_code(code, &keying).expect("keypad code");
    send_paced(from, to, &packets).await;
}

/// A caller behind NAT dials: its SDP names a private address and port the
/// gateway cannot reach (here an unused loopback address, 127.0.0.5:9),
/// its media comes from elsewhere; `dial` says the rest.
async fn dial_from_behind_nat(gw: &Gateway, dial: Dial<'_>) -> Caller {
    let caller = Caller::dial(
        &gw.sip,
        Dial {
            advertised_rtp_ip: Some("127.0.0.5"),
            advertised_rtp_port: Some(9),
            ..dial
        },
    )
    .await;
    assert_eq!(caller.invite_status, 200);
    caller
}

/// The caller speaks for a second and hears the call back: its media was
/// latched where it really comes from (`from`, for the message).
async fn latched(caller: &mut Caller, from: &str) {
    let heard = caller.talk_and_listen(50, |_| vec![0; 160]).await;
    assert!(
        heard.len() >= 30,
        "latched to {from}: {} packets",
        heard.len()
    );
}

/// RTP packets arriving on `socket` within `window`.
async fn count_received(socket: &UdpSocket, window: Duration) -> usize {
    let deadline = Instant::now() + window;
    let mut buf = [0u8; 2048];
    let mut n = 0;
    while let Ok(Ok(_)) = timeout(
        deadline.saturating_duration_since(Instant::now()),
        socket.recv_from(&mut buf),
    )
    .await
    {
        n += 1;
    }
    n
}

/// The gateway's verdicts on the right code.
const ADMITTED: &str = "dialgate_attempts_total{stage=\"access\",outcome=\"admitted\"}";

/// Whether the gateway has recorded no attempt and its attempt log is empty.
async fn nothing_recorded(gw: &Gateway) -> bool {
    gw.attempt_counts().await.recorded == 0.0 && gw.attempt_log().await.is_empty()
}

/// Keys the right code from the real caller and checks it is admitted and
/// hears the room's side of the call.
async fn caller_still_gets_in(caller: &mut Caller, gw: &Gateway) {
    caller.key_rfc4733(&format!("{CODE}#")).await;
    let heard = caller.talk_and_listen(60, |_| vec![0; 160]).await;
    assert!(
        heard.len() >= 40,
        "the caller hears the call: {}",
        heard.len()
    );
    // Hearing proves nothing of the verdict (prompts play either way): await it.
    gw.await_metric(gw.token().await, ADMITTED, Duration::from_secs(10), |v| {
        v >= 1.0
    })
    .await;
    let outcomes = gw.attempt_rows().await;
    assert_eq!(
        outcomes
            .iter()
            .map(|r| r.outcome.as_str())
            .collect::<Vec<_>>(),
        ["admitted"],
        "one attempt: the caller's"
    );
    assert_eq!(caller.hang_up().await, Some(200));
}

#[tokio::test]
async fn a_stranger_keying_before_the_caller_speaks_hears_nothing_and_keys_nothing() {
    let (dir, db) = Gateway::provisioned(CODE);
    let gw = Gateway::start(dir, db, &[]).await;
    let mut caller = Caller::dial(&gw.sip, Dial::default()).await;
    assert_eq!(caller.invite_status, 200);
    let port = caller.gateway_rtp.expect("gateway RTP");
    let stranger = UdpSocket::bind(STRANGER).await.expect("stranger socket");
    // The caller listens without sending: nothing latched yet.
    let keys = format!("{CODE}#");
    let (_, caller_heard, stranger_heard) = tokio::join!(
        key_from(&stranger, port, &keys, 0x5EED),
        count_received(&caller.rtp, Duration::from_secs(3)),
        count_received(&stranger, Duration::from_secs(3)),
    );
    assert_eq!(
        stranger_heard, 0,
        "the stranger is sent none of the call's audio"
    );
    assert!(
        caller_heard >= 100,
        "the prompt still goes to the caller: {caller_heard} packets in 3 s"
    );
    assert!(
        nothing_recorded(&gw).await && !gw.log().contains("outcome="),
        "the stranger's digits were checked: {}",
        gw.log()
    );
    caller_still_gets_in(&mut caller, &gw).await;
}

#[tokio::test]
async fn a_spray_at_a_quiet_callers_port_takes_nothing() {
    let (dir, db) = Gateway::provisioned(CODE);
    let gw = Gateway::start(dir, db, &[]).await;
    let mut caller = Caller::dial(&gw.sip, Dial::default()).await;
    assert_eq!(caller.invite_status, 200);
    let port = caller.gateway_rtp.expect("gateway RTP");
    // The caller speaks, so its stream is latched, then goes quiet past
    // the time after which another of its own addresses could take over.
    let heard = caller.talk_and_listen(10, |_| vec![0; 160]).await;
    assert!(!heard.is_empty());
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let stranger = UdpSocket::bind(STRANGER).await.expect("stranger socket");
    let spray = async {
        let mut rng_state = 0x2545_F491_4F6C_DD1Du64;
        for i in 0..300u32 {
            rng_state ^= rng_state << 13;
            rng_state ^= rng_state >> 7;
            rng_state ^= rng_state << 17;
            let junk = rng_state.to_be_bytes();
            let mut packet = vec![0u8; 172];
            for (j, b) in packet.iter_mut().enumerate() {
                *b = junk[j % 8] ^ (j as u8);
            }
            // Every other packet a well-formed RTP header of the call's own
            // payload types (PCMU, telephone-event).
            if i % 2 == 0 {
                packet[0] = 0x80;
                packet[1] = if i % 4 == 0 { 0 } else { 101 };
            }
            let _ = stranger.send_to(&packet, port).await;
            if i % 20 == 0 {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    };
    let (_, stranger_heard) =
        tokio::join!(spray, count_received(&stranger, Duration::from_secs(2)));
    assert_eq!(stranger_heard, 0, "the spray redirected the call's audio");
    assert!(nothing_recorded(&gw).await, "the spray keyed a code");
    caller_still_gets_in(&mut caller, &gw).await;
}

#[tokio::test]
async fn a_caller_behind_nat_sending_from_its_signalling_address_gets_in() {
    let (dir, db) = Gateway::provisioned(CODE);
    let gw = Gateway::start(dir, db, &[]).await;
    // Media comes from the address the INVITE came from, on another port.
    let mut caller = dial_from_behind_nat(&gw, Dial::default()).await;
    latched(&mut caller, "the signalling address").await;
    caller_still_gets_in(&mut caller, &gw).await;
}

#[tokio::test]
async fn a_caller_behind_nat_through_a_trusted_proxy_gets_in() {
    let (dir, db) = Gateway::provisioned(CODE);
    // We play the proxy (127.0.0.1, trusted); the phone's own Via is below
    // ours, its public address in `received`, and its media comes from
    // there, not from the private address its SDP names.
    let gw = Gateway::start(dir, db, &["--trusted-peers", "127.0.0.1"]).await;
    let mut caller = dial_from_behind_nat(
        &gw,
        Dial {
            rtp_ip: Some("127.0.0.7"),
            via_below: Some("SIP/2.0/UDP 127.0.0.6:5060;branch=z9hG4bKphone1;received=127.0.0.7"),
            ..Dial::default()
        },
    )
    .await;
    latched(&mut caller, "the phone's public address").await;
    caller_still_gets_in(&mut caller, &gw).await;
}

#[tokio::test]
async fn a_caller_behind_nat_that_moves_keeps_its_media_after_its_reinvite() {
    let (dir, db) = Gateway::provisioned(CODE);
    let gw = Gateway::start(dir, db, &[]).await;
    let mut caller = dial_from_behind_nat(&gw, Dial::default()).await;
    latched(&mut caller, "the signalling address").await;
    // The phone moves: signalling and media now come from another address,
    // and its new offer still names the private one (on a new port).
    caller.sip = UdpSocket::bind("127.0.0.8:0").await.expect("sip socket");
    caller.rtp = UdpSocket::bind("127.0.0.8:0").await.expect("rtp socket");
    let (status, _) = caller
        .reinvite(&[dialgate::media::Codec::Pcmu], "sendrecv")
        .await;
    assert_eq!(status, 200);
    latched(&mut caller, "the new address").await;
    caller_still_gets_in(&mut caller, &gw).await;
}
