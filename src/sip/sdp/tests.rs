//! Tests for `sdp`.

use super::*;
use crate::media::rtp::PayloadType;
use std::net::{Ipv4Addr, Ipv6Addr};

const HEAD: &str = "v=0\r\n\
    o=alice 2890844526 2890844526 IN IP4 198.51.100.1\r\n\
    s=-\r\n\
    c=IN IP4 198.51.100.1\r\n\
    t=0 0\r\n";

const BASIC: &str = "v=0\r\n\
    o=alice 2890844526 2890844526 IN IP4 198.51.100.1\r\n\
    s=-\r\n\
    c=IN IP4 198.51.100.1\r\n\
    t=0 0\r\n\
    m=audio 49170 RTP/AVP 0 8 101\r\n\
    a=rtpmap:0 PCMU/8000\r\n\
    a=rtpmap:8 PCMA/8000\r\n\
    a=rtpmap:101 telephone-event/8000\r\n\
    a=fmtp:101 0-16\r\n";

fn local() -> LocalMedia {
    LocalMedia {
        addr: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 10)),
        port: 40000,
        session_id: 7,
        session_version: 1,
        codecs: vec![Codec::Pcmu, Codec::Pcma],
    }
}

/// `HEAD` followed by `media` lines, CRLF-terminated.
fn offer(media: &[&str]) -> String {
    media.iter().fold(HEAD.to_owned(), |s, l| s + l + "\r\n")
}

fn m_lines(sdp: &str) -> Vec<&str> {
    sdp.lines().filter(|l| l.starts_with("m=")).collect()
}

#[test]
fn plain_pcmu_pcma_te_offer_is_answered_with_pcmu_and_te() {
    let (neg, text) = answer(BASIC, &local()).unwrap();
    assert_eq!(
        neg,
        Negotiated {
            codec: Codec::Pcmu,
            payload_type: PayloadType(0),
            telephone_event: Some(PayloadType(101)),
            telephone_event_rate: 8000,
            max_average_bitrate: None,
            remote_rtp: Some("198.51.100.1:49170".parse().unwrap()),
            ptime: 20,
            direction: Direction::SendRecv,
        }
    );
    assert_eq!(
        text,
        "v=0\r\no=dialgate 7 1 IN IP4 192.0.2.10\r\ns=dialgate\r\n\
         c=IN IP4 192.0.2.10\r\nt=0 0\r\nm=audio 40000 RTP/AVP 0 101\r\n\
         a=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\n\
         a=fmtp:101 0-16\r\na=ptime:20\r\na=sendrecv\r\n"
    );
}

#[test]
fn our_preference_order_picks_among_the_offered() {
    let (neg, text) = answer(&offer(&["m=audio 5000 RTP/AVP 8 0"]), &local()).unwrap();
    assert_eq!((neg.codec, neg.payload_type), (Codec::Pcmu, PayloadType(0)));
    assert!(text.contains("m=audio 40000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n"));
    assert!(!text.contains("telephone-event"));
    let pcma_first = LocalMedia {
        codecs: vec![Codec::Pcma, Codec::Pcmu],
        ..local()
    };
    let (neg, _) = answer(&offer(&["m=audio 5000 RTP/AVP 0 8"]), &pcma_first).unwrap();
    assert_eq!((neg.codec, neg.payload_type), (Codec::Pcma, PayloadType(8)));
}

fn all_four() -> LocalMedia {
    LocalMedia {
        codecs: crate::media::ALL_CODECS.to_vec(),
        ..local()
    }
}

#[test]
fn opus_is_preferred_with_fec_asked_and_the_bitrate_cap_read() {
    let o = offer(&[
        "m=audio 5000 RTP/AVP 0 9 96 101 102",
        "a=rtpmap:96 opus/48000/2",
        "a=fmtp:96 minptime=10; useinbandfec=1; maxaveragebitrate=16000",
        "a=rtpmap:101 telephone-event/48000",
        "a=rtpmap:102 telephone-event/8000",
    ]);
    let (neg, text) = answer(&o, &all_four()).unwrap();
    assert_eq!(
        (neg.codec, neg.payload_type),
        (Codec::Opus, PayloadType(96))
    );
    assert_eq!(neg.max_average_bitrate, Some(16_000));
    assert_eq!(
        (neg.telephone_event, neg.telephone_event_rate),
        (Some(PayloadType(101)), 48_000)
    );
    assert!(text.contains("m=audio 40000 RTP/AVP 96 101\r\na=rtpmap:96 opus/48000/2\r\n"));
    assert!(text.contains("a=fmtp:96 useinbandfec=1; maxaveragebitrate=24000\r\n"));
    assert!(text.contains("a=rtpmap:101 telephone-event/48000\r\n"));
}

#[test]
fn g722_by_static_type_and_opus_at_a_wrong_clock_is_refused() {
    let o = offer(&[
        "m=audio 5000 RTP/AVP 96 9 0",
        "a=rtpmap:96 opus/8000",
        "a=rtpmap:101 telephone-event/8000",
    ]);
    let (neg, text) = answer(&o, &all_four()).unwrap();
    assert_eq!((neg.codec, neg.payload_type), (Codec::G722, PayloadType(9)));
    assert!(text.contains("a=rtpmap:9 G722/8000\r\n"));
}

#[test]
fn allowed_list_restricts_codecs() {
    let only_pcmu = LocalMedia {
        codecs: vec![Codec::Pcmu],
        ..local()
    };
    let pcma_offer = offer(&[
        "m=audio 5000 RTP/AVP 8 101",
        "a=rtpmap:101 telephone-event/8000",
    ]);
    assert_eq!(
        answer(&pcma_offer, &only_pcmu),
        Err(SdpError::NoCommonCodec)
    );
    let none = LocalMedia {
        codecs: vec![],
        ..local()
    };
    assert_eq!(answer(BASIC, &none), Err(SdpError::NoCommonCodec));
}

#[test]
fn telephone_event_payload_type_is_echoed() {
    for te in [96u8, 101, 127] {
        let rtpmap = format!("a=rtpmap:{te} telephone-event/8000");
        let m = format!("m=audio 5000 RTP/AVP 0 {te}");
        let (neg, text) = answer(&offer(&[&m, &rtpmap]), &local()).unwrap();
        assert_eq!(neg.telephone_event, Some(PayloadType(te)));
        assert!(text.contains(&format!("m=audio 40000 RTP/AVP 0 {te}\r\n")));
        assert!(text.contains(&format!("{rtpmap}\r\na=fmtp:{te} 0-16\r\n")));
    }
}

#[test]
fn telephone_event_at_other_rates_is_ignored() {
    let o = offer(&[
        "m=audio 5000 RTP/AVP 0 100",
        "a=rtpmap:100 telephone-event/16000",
    ]);
    let (neg, text) = answer(&o, &local()).unwrap();
    assert_eq!(neg.telephone_event, None);
    assert!(text.contains("m=audio 40000 RTP/AVP 0\r\n"));
}

#[test]
fn dynamic_payload_type_maps_to_pcmu_case_insensitively() {
    let o = offer(&[
        "m=audio 5000 RTP/AVP 96 97",
        "a=rtpmap:96 pcmu/8000/1",
        "a=rtpmap:97 PCMA/16000",
    ]);
    let (neg, text) = answer(&o, &local()).unwrap();
    assert_eq!(
        (neg.codec, neg.payload_type),
        (Codec::Pcmu, PayloadType(96))
    );
    assert!(text.contains("m=audio 40000 RTP/AVP 96\r\na=rtpmap:96 PCMU/8000\r\n"));
}

#[test]
fn every_offered_stream_gets_an_m_line_and_t38_and_video_get_port_0() {
    let o = offer(&[
        "m=image 6000 udptl t38",
        "a=T38FaxVersion:0",
        "m=video 6002 RTP/AVP 31 34",
        "m=audio 6004 RTP/SAVP 0",
        "m=audio 6006 RTP/AVP 8",
        "a=ptime:30",
        "m=audio 6008 RTP/AVP 0",
        "m=application 6010 UDP/BFCP *",
    ]);
    let (neg, text) = answer(&o, &local()).unwrap();
    assert_eq!(neg.codec, Codec::Pcma);
    assert_eq!(neg.ptime, 30);
    assert_eq!(neg.remote_rtp, Some("198.51.100.1:6006".parse().unwrap()));
    assert_eq!(
        m_lines(&text),
        [
            "m=image 0 udptl t38",
            "m=video 0 RTP/AVP 31",
            "m=audio 0 RTP/SAVP 0",
            "m=audio 40000 RTP/AVP 8",
            "m=audio 0 RTP/AVP 0",
            "m=application 0 UDP/BFCP *",
        ]
    );
}

#[test]
fn audio_offered_with_port_0_or_only_savp_is_not_accepted() {
    let o = offer(&["m=audio 0 RTP/AVP 0", "m=audio 5000 RTP/SAVP 0"]);
    assert_eq!(answer(&o, &local()), Err(SdpError::NoCommonCodec));
}

#[test]
fn offer_without_audio_is_no_audio() {
    let o = offer(&["m=video 5000 RTP/AVP 31", "m=image 6000 udptl t38"]);
    assert_eq!(answer(&o, &local()), Err(SdpError::NoAudio));
}

#[test]
fn direction_is_mirrored_sendonly_gets_recvonly() {
    let cases = [
        ("a=sendonly", Direction::SendOnly, "a=recvonly"),
        ("a=recvonly", Direction::RecvOnly, "a=sendonly"),
        ("a=inactive", Direction::Inactive, "a=inactive"),
        ("a=sendrecv", Direction::SendRecv, "a=sendrecv"),
    ];
    for (attr, offered, answered) in cases {
        let (neg, text) = answer(&offer(&["m=audio 5000 RTP/AVP 0", attr]), &local()).unwrap();
        assert_eq!(neg.direction, offered);
        assert!(text.ends_with(&format!("{answered}\r\n")), "{text}");
    }
}

#[test]
fn session_level_direction_applies_unless_media_overrides() {
    let head = HEAD.replace("t=0 0\r\n", "t=0 0\r\na=sendonly\r\n");
    let o = head.clone() + "m=audio 5000 RTP/AVP 0\r\n";
    assert_eq!(
        answer(&o, &local()).unwrap().0.direction,
        Direction::SendOnly
    );
    let o = head + "m=audio 5000 RTP/AVP 0\r\na=inactive\r\n";
    assert_eq!(
        answer(&o, &local()).unwrap().0.direction,
        Direction::Inactive
    );
}

#[test]
fn media_level_connection_overrides_session_level() {
    let o = offer(&["m=audio 5000 RTP/AVP 0", "c=IN IP4 203.0.113.9"]);
    let (neg, _) = answer(&o, &local()).unwrap();
    assert_eq!(neg.remote_rtp, Some("203.0.113.9:5000".parse().unwrap()));
}

#[test]
fn connection_only_at_media_level_is_enough() {
    let o = "v=0\no=- 1 1 IN IP4 203.0.113.9\ns=-\nt=0 0\nm=audio 5000 RTP/AVP 0\nc=IN IP4 203.0.113.9\n";
    assert!(answer(o, &local()).is_ok());
}

#[test]
fn hold_address_0_0_0_0_gives_no_remote_rtp() {
    let o = offer(&["m=audio 5000 RTP/AVP 0", "c=IN IP4 0.0.0.0", "a=sendonly"]);
    let (neg, text) = answer(&o, &local()).unwrap();
    assert_eq!(neg.remote_rtp, None);
    assert!(text.contains("m=audio 40000 RTP/AVP 0\r\n"));
}

#[test]
fn unusable_connection_addresses_give_no_remote_rtp() {
    for c in [
        "c=IN IP4 pbx.example.com",
        "c=IN IP6 198.51.100.1",
        "c=ATM NSAP 47.0005",
    ] {
        let (neg, _) = answer(&offer(&["m=audio 5000 RTP/AVP 0", c]), &local()).unwrap();
        assert_eq!(neg.remote_rtp, None, "{c}");
    }
}

#[test]
fn ipv6_offer_and_ipv6_local_address_work() {
    let o =
        "v=0\r\no=- 1 1 IN IP6 ::1\r\ns=-\r\nc=IN IP6 ::1\r\nt=0 0\r\nm=audio 5000 RTP/AVP 8\r\n";
    let v6 = LocalMedia {
        addr: IpAddr::V6(Ipv6Addr::LOCALHOST),
        ..local()
    };
    let (neg, text) = answer(o, &v6).unwrap();
    assert_eq!(neg.remote_rtp, Some("[::1]:5000".parse().unwrap()));
    assert!(text.contains("o=dialgate 7 1 IN IP6 ::1\r\n"));
    assert!(text.contains("c=IN IP6 ::1\r\n"));
}

#[test]
fn lf_only_offer_is_accepted() {
    let (neg, text) = answer(&BASIC.replace("\r\n", "\n"), &local()).unwrap();
    assert_eq!(neg, answer(BASIC, &local()).unwrap().0);
    assert!(text.lines().all(|l| !l.contains('\r')) && text.matches("\r\n").count() > 5);
}

#[test]
fn missing_v_o_or_c_is_malformed() {
    let without = |prefix: &str| -> String {
        BASIC
            .split_inclusive("\r\n")
            .filter(|l| !l.starts_with(prefix))
            .collect()
    };
    for prefix in ["v=", "o=", "c="] {
        assert!(
            matches!(
                answer(&without(prefix), &local()),
                Err(SdpError::Malformed(_))
            ),
            "{prefix}"
        );
    }
    assert!(matches!(answer("", &local()), Err(SdpError::Malformed(_))));
}

#[test]
fn answer_round_trips_through_the_parser() {
    let (neg, text) = answer(
        &offer(&[
            "m=audio 5000 RTP/AVP 96 0 101",
            "a=rtpmap:96 PCMA/8000",
            "a=rtpmap:101 telephone-event/8000",
            "a=recvonly",
            "m=video 5002 RTP/AVP 31",
        ]),
        &local(),
    )
    .unwrap();
    let (again, _) = answer(&text, &local()).unwrap();
    assert_eq!(
        (again.codec, again.payload_type),
        (neg.codec, neg.payload_type)
    );
    assert_eq!(again.telephone_event, Some(PayloadType(101)));
    assert_eq!(again.direction, Direction::SendOnly);
    assert_eq!(again.remote_rtp, Some("192.0.2.10:40000".parse().unwrap()));
}

struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// Whatever the input, no panic; and any answer we produce re-parses to
/// the same codec choice.
fn check(input: &str) -> bool {
    let result = answer(input, &local());
    if let Ok((neg, text)) = &result {
        let (again, _) = answer(text, &local()).expect("our own answer parses");
        assert_eq!(
            (again.codec, again.payload_type),
            (neg.codec, neg.payload_type)
        );
        assert_eq!(again.telephone_event, neg.telephone_event);
        assert_eq!(m_lines(text).len(), m_lines(input).len());
    }
    result.is_ok()
}

#[test]
fn garbage_is_an_error_not_a_panic() {
    const TOKENS: &[&str] = &[
        "v=0",
        "o=a 1 1 IN IP4 1.2.3.4",
        "c=IN IP4 ",
        "c=IN IP6 ::1",
        "c=",
        "m=audio ",
        "m=image 0 udptl t38",
        "m=",
        "a=rtpmap:",
        "a=ptime:",
        "a=sendonly",
        "a=",
        "RTP/AVP",
        "RTP/SAVP",
        " ",
        "0",
        "8",
        "96",
        "101",
        "65536",
        "-1",
        "/",
        ":",
        "=",
        "PCMU",
        "pcma",
        "telephone-event",
        "8000",
        "\r\n",
        "\n",
        "\r",
        "é",
        "\u{0}",
        "\u{feff}",
        "0.0.0.0",
    ];
    let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
    for _ in 0..10_000 {
        let mut s = String::new();
        for _ in 0..rng.below(40) {
            match rng.below(4) {
                0 => s.push(char::from_u32(rng.next() as u32 % 0x800).unwrap_or('?')),
                _ => s.push_str(TOKENS[rng.below(TOKENS.len())]),
            }
        }
        let _ = check(&s);
    }
}

#[test]
fn mutated_valid_offers_never_panic() {
    let base = offer(&[
        "m=audio 5000 RTP/AVP 96 8 101",
        "a=rtpmap:96 PCMU/8000",
        "a=rtpmap:101 telephone-event/8000",
        "a=ptime:20",
        "m=image 6000 udptl t38",
    ]);
    let mut rng = XorShift(0x2545_f491_4f6c_dd1d);
    let mut answered = 0;
    for _ in 0..10_000 {
        let mut bytes = base.clone().into_bytes();
        for _ in 0..1 + rng.below(4) {
            let at = rng.below(bytes.len() + 1);
            match rng.below(4) {
                0 => bytes.truncate(at),
                1 => drop(bytes.drain(at..(at + rng.below(8)).min(bytes.len()))),
                2 => bytes.insert(at, b" :/=0\r\n9x\xff"[rng.below(10)]),
                _ => {
                    if let Some(b) = bytes.get_mut(at) {
                        *b = rng.next() as u8;
                    }
                }
            }
        }
        answered += usize::from(check(&String::from_utf8_lossy(&bytes)));
    }
    // The mutations must reach the answer path, not only the error exits.
    assert!(
        answered > 1_000,
        "only {answered} mutated offers were answered"
    );
}

/// Found by the `sdp` fuzz target: a format of control characters was
/// copied into our answer's rejected m= line, which then read back with no
/// format at all.
#[test]
fn an_m_line_field_outside_the_token_characters_is_malformed() {
    for line in [
        "m=video 5000 RTP/AVP \u{b}\u{b} 31",
        "m=audio 5000 RTP/AVP\u{1} 0",
        "m=au\u{0}dio 5000 RTP/AVP 0",
    ] {
        let o = offer(&[line, "m=audio 5002 RTP/AVP 0"]);
        assert!(
            matches!(answer(&o, &local()), Err(SdpError::Malformed(_))),
            "{line:?}"
        );
    }
    // Every answer we give is an offer we take.
    let o = offer(&["m=video 5000 RTP/AVP 31", "m=audio 5002 RTP/AVP 0"]);
    let (_, text) = answer(&o, &local()).unwrap();
    assert!(answer(&text, &local()).is_ok(), "{text}");
}

#[test]
fn an_offer_of_a_settled_session_is_answered_with_the_same_payload_types() {
    let mut local = local();
    local.codecs.push(Codec::Opus);
    let (neg, _) = answer(
        &offer(&[
            "m=audio 5000 RTP/AVP 96 101",
            "a=rtpmap:96 opus/48000/2",
            "a=rtpmap:101 telephone-event/48000",
            "a=sendonly",
        ]),
        &local,
    )
    .unwrap();
    let ours = super::offer(&neg, &local);
    assert!(ours.contains("m=audio 40000 RTP/AVP 96 101\r\n"), "{ours}");
    assert!(
        ours.contains("a=sendrecv\r\n"),
        "a leg sends both ways: {ours}"
    );
    assert!(ours.contains("a=fmtp:101 0-15\r\n"), "{ours}");
    // The far end answers it with what it read: the same session back.
    let (theirs, text) = answer(&ours, &local).unwrap();
    assert_eq!(
        (theirs.codec, theirs.payload_type, theirs.telephone_event),
        (neg.codec, neg.payload_type, neg.telephone_event)
    );
    let read = read_answer(&text, &local.codecs).unwrap();
    assert_eq!(read.remote_rtp, Some("192.0.2.10:40000".parse().unwrap()));
    assert_eq!(read.payload_type, neg.payload_type);
}
