//! The fuzz targets' bodies: each takes the fuzzer's bytes, feeds them to
//! one of the gateway's readers of network (or file) input, and checks what
//! must hold for any input — beyond "does not panic", which the fuzzer
//! checks itself.
//!
//! Inputs that drive a state machine (the SIP endpoint, an RTP stream, a
//! telephone-event receiver) are read as a small script by [`Script`]: an
//! operation byte, then its operands; running out of bytes ends the run.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use dialgate::dtmf::rfc4733::{Receiver, TelephoneEvent};
use dialgate::dtmf::sip_info;
use dialgate::media::ALL_CODECS;
use dialgate::media::Codec;
use dialgate::media::inbound::Inbound;
use dialgate::media::jitter::Jitter;
use dialgate::media::{rtcp, rtp};
use dialgate::sip::dialog::{Flow, LocalAddr, Transport};
use dialgate::sip::endpoint::{CallEvent, CallRef, Endpoint, Output, TxKey};
use dialgate::sip::message::{self, StatusCode};
use dialgate::sip::sdp::{self, LocalMedia};
use dialgate::sip::transaction::TimerConfig;
use dialgate_replay::trace;

/// A target: the fuzzer's bytes in, a panic on a failed check.
pub type Target = fn(&[u8]);

/// Every target, by the name its fuzz binary and corpus folder carry.
pub const TARGETS: [(&str, Target); 8] = [
    ("sip_message", sip_message),
    ("sip_endpoint", sip_endpoint),
    ("sdp", sdp),
    ("rtp", rtp),
    ("rtcp", rtcp),
    ("rfc4733", rfc4733),
    ("sip_info", sip_info),
    ("trace", trace),
];

/// A cursor over the fuzzer's bytes.
pub struct Script<'a> {
    data: &'a [u8],
}

impl<'a> Script<'a> {
    pub fn new(data: &'a [u8]) -> Script<'a> {
        Script { data }
    }

    pub fn byte(&mut self) -> Option<u8> {
        let (&b, rest) = self.data.split_first()?;
        self.data = rest;
        Some(b)
    }

    pub fn u16(&mut self) -> Option<u16> {
        Some(u16::from_le_bytes([self.byte()?, self.byte()?]))
    }

    /// A length-prefixed (u16, little-endian) chunk, cut short at the end.
    pub fn chunk(&mut self) -> Option<&'a [u8]> {
        let len = usize::from(self.u16()?).min(self.data.len());
        let (chunk, rest) = self.data.split_at(len);
        self.data = rest;
        Some(chunk)
    }
}

/// Writes a length-prefixed chunk as [`Script::chunk`] reads it.
pub fn put_chunk(out: &mut Vec<u8>, chunk: &[u8]) {
    let len = u16::try_from(chunk.len()).unwrap_or(u16::MAX);
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&chunk[..usize::from(len)]);
}

/// One SIP message as a datagram or a TCP stream delivers it: framing,
/// parsing, the accessors the endpoint uses, the 400 salvage of what failed,
/// and our own serialisation of what parsed, which must parse again.
pub fn sip_message(data: &[u8]) {
    let whole = message::frame_len(data);
    if let Ok(Some(len)) = whole {
        assert!(len <= data.len(), "framed {len} of {} bytes", data.len());
        let _ = message::parse(&data[..len]);
    }
    // The TCP reader's framer, fed the bytes in two reads (split where the
    // first byte says), frames the first message as a whole read does.
    let cut = data.first().map_or(0, |b| usize::from(*b)).min(data.len());
    let mut framer = message::Framer::default();
    // `None`: an error; `Some(None)`: more bytes needed.
    let first = framer.next_len(&data[..cut]).ok();
    let second = match first {
        Some(None) => framer.next_len(data).ok(),
        done => done,
    };
    match (&whole, second) {
        (Ok(Some(a)), Some(Some(b))) => assert_eq!(b, *a, "the framer and a whole read"),
        (Ok(Some(_)), Some(None)) => panic!("the framer missed a whole message"),
        _ => {}
    }
    match message::parse(data) {
        Ok(msg) => {
            let _ = (msg.method(), msg.status(), msg.call_id(), msg.cseq());
            let _ = (msg.branch(), msg.tag("From"), msg.tag("To"));
            let _ = msg.content_type();
            for (_, value) in &msg.headers {
                let _ = message::uri_user(message::uri_of(value));
                let _ = message::uri_socket_addr(message::uri_of(value));
            }
            let again = message::parse(&msg.to_bytes());
            assert!(again.is_ok(), "our own serialisation failed: {again:?}");
        }
        Err(e) => {
            let _ = (e.kind(), e.status());
            if let Some(salvaged) = message::salvage_for_400(data) {
                let _ = salvaged.to_bytes();
            }
        }
    }
}

/// The SIP endpoint (transactions, dialogs, stateless answers) fed a
/// script of datagrams from two sources, time passing, and the call's
/// answers. Everything it transmits, but a refusal of what could not be
/// read, must be SIP our own parser reads.
///
/// Operations (the byte modulo 8): 0, 1 a datagram (chunk) over UDP from
/// one of two sources; 2 a message on a TCP connection; 3 time passes
/// (next byte × 10 ms) and timers fire; 4 answer the oldest unanswered
/// call (180, 200 with an SDP answer, 486 or 503 by the next byte); 5 BYE
/// the oldest answered call; 6 answer the oldest INFO or re-INVITE; 7 the
/// gateway starts or stops shedding.
pub fn sip_endpoint(data: &[u8]) {
    let mut s = Script::new(data);
    let local = LocalAddr {
        advertise: IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2)),
        port: 5060,
    };
    // Seeded: a finding replays exactly (tags and branches included).
    let mut endpoint = Endpoint::with_seed(local, TimerConfig::default(), 0);
    let sources = [
        SocketAddr::from(([127, 0, 0, 1], 5062)),
        SocketAddr::from(([192, 0, 2, 7], 5060)),
    ];
    let mut now = Instant::now();
    let mut unanswered: Vec<(CallRef, Vec<u8>)> = Vec::new();
    let mut answered: Vec<CallRef> = Vec::new();
    let mut requests: Vec<(TxKey, bool)> = Vec::new();
    let mut shedding = false;
    let media = LocalMedia {
        addr: local.advertise,
        port: 46_000,
        session_id: 1,
        session_version: 1,
        codecs: ALL_CODECS.to_vec(),
    };

    while let Some(op) = s.byte() {
        // A 400 copies the headers of the request it refuses (RFC 3261
        // §8.2.6.2), however broken: only what answers a request we could
        // read must be readable.
        let mut readable_input = true;
        match op % 8 {
            op @ (0 | 1) => {
                let Some(datagram) = s.chunk() else { break };
                let flow = Flow {
                    transport: Transport::Udp,
                    remote: sources[usize::from(op)],
                };
                readable_input = message::parse(datagram).is_ok();
                endpoint.handle_input(now, flow, datagram);
            }
            2 => {
                let Some(stream) = s.chunk() else { break };
                let flow = Flow {
                    transport: Transport::Tcp(1),
                    remote: sources[0],
                };
                readable_input = message::parse(stream).is_ok();
                endpoint.handle_input(now, flow, stream);
            }
            3 => {
                let Some(step) = s.byte() else { break };
                now += Duration::from_millis(u64::from(step) * 10);
                // Fire everything due, as the shell's loop does; a timer
                // that re-arms at or before `now` must not spin forever.
                let mut fired = 0;
                while endpoint.poll_timeout().is_some_and(|at| at <= now) {
                    endpoint.handle_timeout(now);
                    fired += 1;
                    assert!(fired < 100_000, "timers keep firing at one instant");
                }
            }
            4 => {
                let Some(pick) = s.byte() else { break };
                if unanswered.is_empty() {
                    continue;
                }
                let (call, offer) = unanswered.remove(0);
                match pick % 4 {
                    0 => {
                        endpoint.respond_invite(now, call, StatusCode(180), Vec::new(), None);
                        unanswered.push((call, offer));
                    }
                    1 => {
                        let offer = String::from_utf8_lossy(&offer);
                        match sdp::answer(&offer, &media) {
                            Ok((_, answer)) => {
                                endpoint.respond_invite(
                                    now,
                                    call,
                                    StatusCode(200),
                                    Vec::new(),
                                    Some(answer.into_bytes()),
                                );
                                answered.push(call);
                            }
                            Err(_) => {
                                endpoint.respond_invite(
                                    now,
                                    call,
                                    StatusCode(488),
                                    Vec::new(),
                                    None,
                                );
                            }
                        }
                    }
                    2 => endpoint.respond_invite(now, call, StatusCode(486), Vec::new(), None),
                    _ => endpoint.respond_invite(
                        now,
                        call,
                        StatusCode(503),
                        vec![("Retry-After".into(), "5".into())],
                        None,
                    ),
                }
            }
            5 => {
                if !answered.is_empty() {
                    let call = answered.remove(0);
                    endpoint.send_bye(now, call, Some("Q.850;cause=16".into()));
                }
            }
            6 => {
                if !requests.is_empty() {
                    let (tx, reinvite) = requests.remove(0);
                    if reinvite {
                        endpoint.respond_reinvite(now, &tx, StatusCode(488), None);
                    } else {
                        endpoint.respond(now, &tx, StatusCode(200));
                    }
                }
            }
            _ => {
                shedding = !shedding;
                endpoint.set_overloaded(shedding.then_some(5));
            }
        }
        while let Some(output) = endpoint.poll_output() {
            match output {
                Output::Transmit { bytes, .. } => {
                    let parsed = message::parse(&bytes);
                    assert!(
                        parsed.is_ok() || !readable_input,
                        "we sent what we cannot read ({parsed:?}):\n{}",
                        String::from_utf8_lossy(&bytes)
                    );
                }
                Output::Incoming(call) => unanswered.push((call.call, call.body)),
                Output::Call(call, event) => match event {
                    CallEvent::Info { tx, .. } => requests.push((tx, false)),
                    CallEvent::Reinvite { tx, .. } => requests.push((tx, true)),
                    CallEvent::Cancelled
                    | CallEvent::Bye { .. }
                    | CallEvent::Ended
                    | CallEvent::Refused { .. } => {
                        unanswered.retain(|(c, _)| *c != call);
                        answered.retain(|c| *c != call);
                    }
                    CallEvent::AckTimeout => {
                        if answered.contains(&call) {
                            answered.retain(|c| *c != call);
                            endpoint.send_bye(now, call, None);
                        }
                    }
                    CallEvent::Ack | CallEvent::Answered { .. } => {}
                },
            }
        }
    }
}

/// An SDP offer answered with every codec we have; an answer we give must
/// itself be an offer we can answer.
pub fn sdp(data: &[u8]) {
    let offer = String::from_utf8_lossy(data);
    let local = LocalMedia {
        addr: IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2)),
        port: 46_000,
        session_id: 7,
        session_version: 7,
        codecs: ALL_CODECS.to_vec(),
    };
    if let Ok((negotiated, answer)) = sdp::answer(&offer, &local) {
        let _ = format!("{negotiated:?}");
        let again = sdp::answer(&answer, &local);
        assert!(
            again.is_ok(),
            "our answer is not an offer we take: {again:?}\n{answer}"
        );
    }
}

/// A stream of datagrams at a call's RTP port, as the media loop reads
/// them: the source checks of the latch, the jitter buffer, a room
/// member's inbound path (PCMU decode of packets of any length into 20 ms
/// frames, concealment), and the telephone-event receiver for payload
/// type 101.
///
/// Operations (the byte modulo 5): 0 a datagram (chunk) from the
/// caller's signalled address, 1 from a stranger's, 4 from another port of
/// the caller's (a NAT rebinding); 2 one 20 ms playout tick (the next
/// byte's low bit: a frame taken, or thrown away); 3 time passes (next
/// byte × 5 ms). A stranger's packet is never taken; the packet time read
/// from the stream stays within 120 ms.
pub fn rtp(data: &[u8]) {
    let mut s = Script::new(data);
    let caller = SocketAddr::from(([127, 0, 0, 1], 40_000));
    let rebound = SocketAddr::from(([127, 0, 0, 1], 40_002));
    let stranger = SocketAddr::from(([192, 0, 2, 9], 40_000));
    let mut latch = rtp::Latch::new(Some(caller), vec![caller.ip()]);
    let mut jitter: Jitter<Vec<u8>> = Jitter::new(8000);
    // The same packets through a room member's whole inbound path.
    let mut inbound = Inbound::new(Codec::Pcmu);
    let mut keys = Receiver::new();
    let mut now = Instant::now();
    while let Some(op) = s.byte() {
        match op % 5 {
            op @ (0 | 1 | 4) => {
                let Some(datagram) = s.chunk() else { break };
                let source = match op {
                    0 => caller,
                    1 => stranger,
                    _ => rebound,
                };
                let Some((header, payload)) = rtp::read(datagram) else {
                    continue;
                };
                assert!(payload.len() <= datagram.len());
                let taken = latch.on_media(now, source, &header);
                assert!(
                    !(taken && source == stranger),
                    "a stranger's packet was taken"
                );
                if !taken {
                    continue;
                }
                assert_ne!(latch.destination(), Some(stranger));
                if header.payload_type == rtp::PayloadType(101) {
                    let _ = keys.on_packet(now, header.timestamp, header.marker, payload);
                    jitter.push_not_audio(header.ssrc, header.sequence);
                    inbound.push_not_audio(&header);
                } else {
                    inbound.push_audio(now, &header, payload);
                    jitter.push(
                        now,
                        header.ssrc,
                        header.sequence,
                        header.timestamp,
                        payload.to_vec(),
                    );
                }
                assert!(jitter.buffered() <= dialgate::media::jitter::MAX_SLOTS);
                assert!(jitter.packet_time() <= dialgate::media::jitter::MAX_PACKET);
            }
            2 => {
                let _ = jitter.pop();
                let _ = (jitter.target(), jitter.jitter(), jitter.stats());
                // A frame a tick, or the tick thrown away (nobody hears).
                if s.byte().is_some_and(|b| b & 1 == 0) {
                    let _ = inbound.take_frame();
                } else {
                    inbound.discard();
                }
            }
            _ => {
                let Some(step) = s.byte() else { break };
                now += Duration::from_millis(u64::from(step) * 5);
            }
        }
    }
}

/// A compound RTCP packet's report blocks.
pub fn rtcp(data: &[u8]) {
    let _ = rtcp::report_blocks(data);
}

/// Telephone-event payloads, one by one and as a stream into the
/// receiver that counts each key press once.
///
/// The stream: per packet, a byte of time passing (× 5 ms), a byte that
/// moves the RTP timestamp (bit 7: a new press 160 × the low bits on, else
/// the same press), the marker bit (bit 0 of a third byte), then 4 payload
/// bytes.
pub fn rfc4733(data: &[u8]) {
    if let Ok(event) = TelephoneEvent::parse(data) {
        // Our encoding of what we read reads back the same (the R bit,
        // which §2.3 says to ignore, is not kept).
        assert_eq!(TelephoneEvent::parse(&event.to_bytes()), Ok(event));
        let _ = event.key();
    }
    let mut s = Script::new(data);
    let mut receiver = Receiver::new();
    let mut now = Instant::now();
    let mut timestamp: u32 = 0;
    let mut previous: Option<(Instant, u32, u8)> = None;
    while let (Some(step), Some(jump), Some(mark)) = (s.byte(), s.byte(), s.byte()) {
        let payload = [s.byte(), s.byte(), s.byte(), s.byte()];
        let Some(payload) = payload.into_iter().collect::<Option<Vec<u8>>>() else {
            break;
        };
        now += Duration::from_millis(u64::from(step) * 5);
        if jump & 0x80 != 0 {
            timestamp = timestamp.wrapping_add(160 * u32::from(jump & 0x7f));
        }
        let key = receiver.on_packet(now, timestamp, mark & 1 == 1, &payload);
        // The same event at the same timestamp straight after its last
        // packet (an update, or the end sent three times) is the same
        // press: never reported again.
        if let Some((at, ts, event)) = previous
            && ts == timestamp
            && Some(event) == payload.first().copied()
            && now.duration_since(at) < Duration::from_secs(1)
        {
            assert_eq!(key, None, "one press reported twice");
        }
        if TelephoneEvent::parse(&payload).is_ok_and(|e| e.key().is_some()) {
            previous = Some((now, timestamp, payload[0]));
        }
        let _ = receiver.newest();
    }
}

/// A SIP INFO's Content-Type (up to the first newline) and body.
pub fn sip_info(data: &[u8]) {
    let split = data.iter().position(|&b| b == b'\n').unwrap_or(data.len());
    let content_type = String::from_utf8_lossy(&data[..split]);
    let body = data.get(split + 1..).unwrap_or_default();
    let _ = sip_info::parse_info(&content_type, body);
}

/// A trace file for `dialgate replay` (pcap, pcapng or text), and the
/// text we write of what we read, read again.
pub fn trace(data: &[u8]) {
    let Ok(read) = trace::parse(data) else {
        return;
    };
    let start = chrono::NaiveDate::from_ymd_opt(2026, 1, 1)
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .unwrap_or_default();
    let _ = trace::from_text(&trace::to_text(&read, start));
}
