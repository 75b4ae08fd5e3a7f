//! A small SIP/RTP test caller: dials over UDP, keys codes as RFC 4733,
//! sends and receives G.711, answers the gateway's BYE. Every wait is bounded.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::Duration;

use dialgate::media::Codec;
use dialgate::media::codec::{self, Decoder, Encoder, OpusParams};
use dialgate::media::rtp::{self, Header};
use dialgate::sip::message::{self, Message, Method, StartLine};
use dialgate::sip::transaction::{InviteClientTx, InviteResponse, TimerConfig, TimerOutput};
use dialgate_replay::synth::{Keying, Signal, TimedPacket, keyed_code};
use tokio::net::UdpSocket;
use tokio::time::{Instant, sleep_until, timeout};

pub struct Caller {
    pub sip: UdpSocket,
    pub rtp: UdpSocket,
    gateway: SocketAddr,
    call_id: String,
    from_tag: String,
    from_user: String,
    pub to: String,
    pub invite_status: u16,
    /// The final answer's `Retry-After`, if it had one.
    pub retry_after: Option<String>,
    cseq: u32,
    /// Where the gateway's SDP answer says to send media.
    pub gateway_rtp: Option<SocketAddr>,
    pub codec: Codec,
    pub payload_type: u8,
    seq: u16,
    ts: u32,
    ssrc: u32,
    encoder: Box<dyn Encoder>,
    decoder: Box<dyn Decoder>,
    /// The last 8 kHz sample sent, for interpolation.
    last_sample: i16,
    /// Talk and listen at 16 kHz (320 samples a frame) instead of 8 kHz.
    pub wideband: bool,
    /// Whether our offers (the INVITE's, re-INVITEs') include telephone-event.
    pub telephone_event: bool,
    /// The address our offers name for our media.
    sdp_ip: String,
}

pub struct Dial<'a> {
    pub number: &'a str,
    pub codecs: &'a [Codec],
    /// Port written in our SDP (default: the real RTP port) — to test latching.
    pub advertised_rtp_port: Option<u16>,
    /// Address written in our SDP's `c=` (default: 127.0.0.1, where our
    /// sockets are) — a caller behind NAT names one it cannot be reached at.
    pub advertised_rtp_ip: Option<&'a str>,
    /// Address our RTP socket is bound to (default: 127.0.0.1).
    pub rtp_ip: Option<&'a str>,
    /// A Via below ours, as when we act as a proxy in front of the phone.
    pub via_below: Option<&'a str>,
    /// Offer telephone-event (default: yes).
    pub telephone_event: bool,
    /// The From user, the caller-ID the gateway sees (default: `tester`).
    pub from_user: &'a str,
    /// The address both our sockets are bound to and our SDP names, unless
    /// `rtp_ip` or `advertised_rtp_ip` say otherwise (default: 127.0.0.1).
    pub local_ip: Option<&'a str>,
}

impl Default for Dial<'_> {
    fn default() -> Self {
        Dial {
            number: "+15550100",
            codecs: &[Codec::Pcmu],
            advertised_rtp_port: None,
            advertised_rtp_ip: None,
            rtp_ip: None,
            via_below: None,
            telephone_event: true,
            from_user: "tester",
            local_ip: None,
        }
    }
}

/// Our SDP offer of media at `ip`:`rtp_port`: `codecs` then (if `events`)
/// telephone-event, in `direction`.
fn offer(
    ip: &str,
    rtp_port: u16,
    codecs: &[Codec],
    events: bool,
    direction: &str,
    version: u32,
) -> String {
    let pts: Vec<String> = codecs
        .iter()
        .map(|c| c.payload_type().to_string())
        .collect();
    let maps: String = codecs
        .iter()
        .map(|c| format!("a=rtpmap:{} {}\r\n", c.payload_type(), c.rtpmap()))
        .collect();
    let (event_pt, event_maps) = if events {
        (
            " 101",
            "a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\n",
        )
    } else {
        ("", "")
    };
    format!(
        "v=0\r\no=tester 1 {version} IN IP4 {ip}\r\ns=-\r\nc=IN IP4 {ip}\r\nt=0 0\r\n\
m=audio {rtp_port} RTP/AVP {}{event_pt}\r\n{maps}{event_maps}a=ptime:20\r\na={direction}\r\n",
        pts.join(" ")
    )
}

async fn recv_sip(sock: &UdpSocket, limit: Duration) -> Option<Message> {
    let mut buf = vec![0u8; 65536];
    let (n, _) = timeout(limit, sock.recv_from(&mut buf)).await.ok()?.ok()?;
    message::parse(&buf[..n]).ok()
}

impl Caller {
    pub async fn dial(gateway: &str, dial: Dial<'_>) -> Caller {
        let gateway: SocketAddr = gateway.parse().expect("gateway address");
        let local_ip = dial.local_ip.unwrap_or("127.0.0.1");
        let sip = UdpSocket::bind(format!("{local_ip}:0"))
            .await
            .expect("sip socket");
        let rtp_bind = format!("{}:0", dial.rtp_ip.unwrap_or(local_ip));
        let rtp = UdpSocket::bind(rtp_bind).await.expect("rtp socket");
        let local = sip.local_addr().expect("addr");
        let rtp_port = dial
            .advertised_rtp_port
            .unwrap_or(rtp.local_addr().expect("addr").port());
        let sdp_ip = dial.advertised_rtp_ip.unwrap_or(local_ip).to_owned();
        let sdp = offer(
            &sdp_ip,
            rtp_port,
            dial.codecs,
            dial.telephone_event,
            "sendrecv",
            1,
        );
        let call_id = format!("{}@tester", rand::random::<u64>());
        let from_tag = format!("{:x}", rand::random::<u32>());
        let branch = format!("z9hG4bK{:x}", rand::random::<u64>());
        let invite = format!(
            "INVITE sip:{num}@{gateway} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch={branch};rport\r\n{below}\
From: <sip:{from}@127.0.0.1>;tag={from_tag}\r\nTo: <sip:{num}@{gateway}>\r\nCall-ID: {call_id}\r\n\
CSeq: 1 INVITE\r\nContact: <sip:{from}@{local}>\r\nMax-Forwards: 70\r\nContent-Type: application/sdp\r\n\
Content-Length: {}\r\n\r\n{sdp}",
            sdp.len(),
            num = dial.number,
            from = dial.from_user,
            below = dial
                .via_below
                .map(|v| format!("Via: {v}\r\n"))
                .unwrap_or_default(),
        );
        sip.send_to(invite.as_bytes(), gateway)
            .await
            .expect("send INVITE");
        // The INVITE's client transaction: resent at T1 doubling until a
        // response, ACKed by the transaction when refused.
        let mut tx = InviteClientTx::new(
            Instant::now().into_std(),
            bytes::Bytes::from(invite.into_bytes()),
            false,
            TimerConfig::default(),
        );
        let mut caller = Caller {
            sip,
            rtp,
            gateway,
            call_id,
            from_tag,
            from_user: dial.from_user.to_owned(),
            to: String::new(),
            invite_status: 0,
            retry_after: None,
            cseq: 1,
            gateway_rtp: None,
            codec: Codec::Pcmu,
            payload_type: 0,
            seq: 1,
            ts: 0,
            ssrc: rand::random(),
            encoder: codec::encoder(Codec::Pcmu, OpusParams::default()),
            decoder: codec::decoder(Codec::Pcmu),
            last_sample: 0,
            wideband: false,
            telephone_event: dial.telephone_event,
            sdp_ip,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let now = Instant::now();
            assert!(now < deadline, "a final response to INVITE within 10 s");
            let wake = tx
                .poll_timeout()
                .map_or(deadline, Instant::from_std)
                .min(deadline);
            let Some(resp) = recv_sip(&caller.sip, wake.saturating_duration_since(now)).await
            else {
                match tx.handle_timeout(Instant::now().into_std()) {
                    TimerOutput::Retransmit(again) => {
                        caller
                            .sip
                            .send_to(&again, gateway)
                            .await
                            .expect("send INVITE again");
                    }
                    TimerOutput::RequestTimeout => panic!("no response to INVITE (Timer B)"),
                    _ => {}
                }
                continue;
            };
            let Some(status) = resp.status() else {
                continue;
            };
            let refused = match tx.recv_response(Instant::now().into_std(), status.0) {
                InviteResponse::Deliver if status.0 >= 200 => false,
                InviteResponse::Rejected => true,
                _ => continue,
            };
            caller.invite_status = status.0;
            caller.retry_after = resp.header("Retry-After").map(str::to_owned);
            caller.to = resp.header("To").unwrap_or_default().to_owned();
            // A 2xx's ACK is a new transaction; a failure's is the INVITE's.
            let ack_branch = if refused {
                branch.clone()
            } else {
                format!("z9hG4bK{:x}", rand::random::<u64>())
            };
            let ack = caller.request("ACK", 1, &ack_branch, "");
            caller
                .sip
                .send_to(ack.as_bytes(), gateway)
                .await
                .expect("send ACK");
            // A refused caller is done: its transaction goes with it.
            if !refused {
                caller.read_answer(&String::from_utf8_lossy(&resp.body));
            }
            return caller;
        }
    }

    fn read_answer(&mut self, sdp: &str) {
        let mut ip = None;
        let mut port = None;
        for line in sdp.lines() {
            if let Some(c) = line.strip_prefix("c=IN IP4 ") {
                ip = c.trim().parse::<std::net::IpAddr>().ok();
            }
            if let Some(m) = line.strip_prefix("m=audio ") {
                let mut it = m.split_whitespace();
                port = it.next().and_then(|p| p.parse::<u16>().ok());
                let pt = it.nth(1).and_then(|p| p.parse::<u8>().ok()).unwrap_or(0);
                self.payload_type = pt;
                self.codec = dialgate::media::ALL_CODECS
                    .into_iter()
                    .find(|c| c.payload_type().0 == pt)
                    .unwrap_or(Codec::Pcmu);
                self.encoder = codec::encoder(self.codec, OpusParams::default());
                self.decoder = codec::decoder(self.codec);
            }
        }
        self.gateway_rtp = ip.zip(port).map(|(i, p)| SocketAddr::new(i, p));
    }

    fn request(&self, method: &str, cseq: u32, branch: &str, extra: &str) -> String {
        let local = self.sip.local_addr().expect("addr");
        format!(
            "{method} sip:dialgate@{gw} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch={branch};rport\r\n\
From: <sip:{from}@127.0.0.1>;tag={tag}\r\nTo: {to}\r\nCall-ID: {cid}\r\nCSeq: {cseq} {method}\r\n\
Max-Forwards: 70\r\n{extra}Content-Length: 0\r\n\r\n",
            gw = self.gateway,
            tag = self.from_tag,
            from = self.from_user,
            to = self.to,
            cid = self.call_id
        )
    }

    /// Sends a re-INVITE offering `codecs` in `direction` (`sendonly` puts
    /// the call on hold); on 2xx takes the answer's codec and sends the ACK.
    /// Returns the final status and the answer's SDP.
    pub async fn reinvite(&mut self, codecs: &[Codec], direction: &str) -> (u16, String) {
        self.cseq += 1;
        let port = self.rtp.local_addr().expect("addr").port();
        let sdp = offer(
            &self.sdp_ip,
            port,
            codecs,
            self.telephone_event,
            direction,
            self.cseq,
        );
        let local = self.sip.local_addr().expect("addr");
        let extra = format!("Contact: <sip:tester@{local}>\r\nContent-Type: application/sdp\r\n");
        let branch = format!("z9hG4bK{:x}", rand::random::<u64>());
        let req = self.request("INVITE", self.cseq, &branch, &extra).replace(
            "Content-Length: 0\r\n\r\n",
            &format!("Content-Length: {}\r\n\r\n{sdp}", sdp.len()),
        );
        self.sip
            .send_to(req.as_bytes(), self.gateway)
            .await
            .expect("send re-INVITE");
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let resp = recv_sip(&self.sip, left)
                .await
                .expect("a final response to the re-INVITE within 5 s");
            let Some(status) = resp.status() else {
                continue;
            };
            if status.0 < 200 || resp.cseq().map(|(n, _)| n) != Some(self.cseq) {
                continue;
            }
            let answer = String::from_utf8_lossy(&resp.body).into_owned();
            let ack_branch = if status.0 < 300 {
                format!("z9hG4bK{:x}", rand::random::<u64>())
            } else {
                branch.clone()
            };
            let ack = self.request("ACK", self.cseq, &ack_branch, "");
            self.sip
                .send_to(ack.as_bytes(), self.gateway)
                .await
                .expect("send ACK");
            if status.0 < 300 {
                self.read_answer(&answer);
            }
            return (status.0, answer);
        }
    }

    /// Keys `code` as RFC 4733 events (G.711 silence around), paced in real time.
    pub async fn key_rfc4733(&mut self, code: &str) {
        self.key(code, Signal::Events).await;
    }

    /// Keys `code` as `signal` says (events, tones in the G.711 audio, or
    /// both), paced in real time.
    pub async fn key(&mut self, code: &str, signal: Signal) {
        let dest = self.gateway_rtp.expect("gateway RTP address");
        let keying = Keying {
            signal,
            audio_payload_type: self.payload_type,
            ssrc: self.ssrc,
            first_sequence: self.seq,
            first_timestamp: self.ts,
            lead: Duration::from_millis(200),
            ..Keying::default()
        };
        let packets = keyed_code(code, &keying).expect("keypad code");
        send_paced(&self.rtp, dest, &packets).await;
        self.seq = self.seq.wrapping_add(packets.len() as u16);
        self.ts = self.ts.wrapping_add(160 * packets.len() as u32);
    }

    /// Moves sequence number and timestamp on as if `n` packets were sent
    /// and lost on the way.
    pub fn lose_packets(&mut self, n: u16) {
        self.seq = self.seq.wrapping_add(n);
        self.ts = self.ts.wrapping_add(160 * u32::from(n));
    }

    /// Sends `frames` 20 ms frames of `pcm_for(frame_index)`, paced in real time,
    /// while collecting what arrives; returns the received packets.
    pub async fn talk_and_listen(
        &mut self,
        frames: usize,
        pcm_for: impl FnMut(usize) -> Vec<i16>,
    ) -> Vec<(Header, Vec<i16>)> {
        self.talk_and_listen_timed(frames, pcm_for)
            .await
            .into_iter()
            .map(|(h, pcm, _)| (h, pcm))
            .collect()
    }

    /// [`Caller::talk_and_listen`], with each packet's arrival time.
    pub async fn talk_and_listen_timed(
        &mut self,
        frames: usize,
        mut pcm_for: impl FnMut(usize) -> Vec<i16>,
    ) -> Vec<(Header, Vec<i16>, Instant)> {
        let dest = self.gateway_rtp.expect("gateway RTP address");
        let mut received = Vec::new();
        let start = Instant::now();
        let mut buf = vec![0u8; 2048];
        let mut payload = Vec::new();
        for i in 0..frames {
            let pcm = pcm_for(i);
            if self.wideband {
                self.encoder.encode(&pcm, &mut payload);
            } else {
                self.encoder
                    .encode(&widen(&pcm, &mut self.last_sample), &mut payload);
            }
            let packet = rtp_rs::RtpPacketBuilder::new()
                .payload_type(self.payload_type)
                .ssrc(self.ssrc)
                .sequence(rtp_rs::Seq::from(self.seq))
                .timestamp(self.ts)
                .payload(&payload)
                .build()
                .expect("rtp packet");
            self.seq = self.seq.wrapping_add(1);
            self.ts = self.ts.wrapping_add(codec::timestamp_step(self.codec));
            self.rtp.send_to(&packet, dest).await.expect("send RTP");
            let next = start + Duration::from_millis(20 * (i as u64 + 1));
            while let Ok(Ok((n, _))) = timeout(
                next.saturating_duration_since(Instant::now()),
                self.rtp.recv_from(&mut buf),
            )
            .await
            {
                if let Some((h, p)) = rtp::read(&buf[..n]) {
                    let mut pcm = Vec::new();
                    self.decoder.decode(p, &mut pcm);
                    let pcm = if self.wideband { pcm } else { narrow(&pcm) };
                    received.push((h, pcm, Instant::now()));
                }
            }
        }
        received
    }

    /// Waits for the gateway's BYE, answers 200 and returns it.
    pub async fn wait_bye(&self, limit: Duration) -> Option<Message> {
        let deadline = Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let msg = recv_sip(&self.sip, left).await?;
            if msg.method() == Some(&Method::Bye) {
                let mut ok = String::from("SIP/2.0 200 OK\r\n");
                for h in ["Via", "From", "To", "Call-ID", "CSeq"] {
                    for v in msg.headers_named(h) {
                        ok.push_str(&format!("{h}: {v}\r\n"));
                    }
                }
                ok.push_str("Content-Length: 0\r\n\r\n");
                let _ = self.sip.send_to(ok.as_bytes(), self.gateway).await;
                return Some(msg);
            }
        }
    }

    /// Sends one key by SIP INFO (`application/dtmf-relay`); returns the
    /// status it got.
    pub async fn info_key(&mut self, key: char) -> Option<u16> {
        self.cseq += 1;
        let body = format!("Signal={key}\r\nDuration=100\r\n");
        let req = self
            .request(
                "INFO",
                self.cseq,
                &format!("z9hG4bK{:x}", rand::random::<u64>()),
                "Content-Type: application/dtmf-relay\r\n",
            )
            .replace(
                "Content-Length: 0\r\n\r\n",
                &format!("Content-Length: {}\r\n\r\n{body}", body.len()),
            );
        self.sip.send_to(req.as_bytes(), self.gateway).await.ok()?;
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let msg = recv_sip(&self.sip, left).await?;
            if let StartLine::Response { status } = msg.start
                && msg.cseq() == Some((self.cseq, Method::Info))
            {
                return Some(status.0);
            }
        }
    }

    /// Hangs up; returns the status the BYE got.
    pub async fn hang_up(&mut self) -> Option<u16> {
        self.cseq += 1;
        let bye = self.request(
            "BYE",
            self.cseq,
            &format!("z9hG4bK{:x}", rand::random::<u64>()),
            "",
        );
        self.sip.send_to(bye.as_bytes(), self.gateway).await.ok()?;
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let msg = recv_sip(&self.sip, left).await?;
            if let StartLine::Response { status } = msg.start
                && msg.cseq().map(|(_, m)| m) == Some(Method::Bye)
            {
                return Some(status.0);
            }
        }
    }
}

/// Sends `packets` from `socket` to `dest`, each at its time from now.
pub async fn send_paced(socket: &UdpSocket, dest: SocketAddr, packets: &[TimedPacket]) {
    let start = Instant::now();
    for p in packets {
        sleep_until(start + p.at).await;
        socket.send_to(&p.bytes, dest).await.expect("send RTP");
    }
}

/// Goertzel power of `freq` Hz in 8 kHz samples (A²/4 for a steady sine).
/// Written here again on purpose: the tests must not measure the gateway
/// with the gateway's own code.
pub fn tone_power(samples: &[i16], freq: f64) -> f64 {
    tone_power_at(samples, freq, 8000.0)
}

/// [`tone_power`] for samples at `rate` Hz.
pub fn tone_power_at(samples: &[i16], freq: f64, rate: f64) -> f64 {
    let k = 2.0 * (2.0 * std::f64::consts::PI * freq / rate).cos();
    let (mut s1, mut s2) = (0.0f64, 0.0f64);
    for &x in samples {
        let s0 = f64::from(x) + k * s1 - s2;
        s2 = s1;
        s1 = s0;
    }
    (s1 * s1 + s2 * s2 - k * s1 * s2) / (samples.len().max(1) as f64).powi(2)
}

/// The tests talk and listen at 8 kHz; the gateway's codecs take 16 kHz.
/// Up: linear interpolation.
fn widen(pcm: &[i16], last: &mut i16) -> Vec<i16> {
    let mut out = Vec::with_capacity(2 * pcm.len());
    for &s in pcm {
        out.push(((i32::from(*last) + i32::from(s)) / 2) as i16);
        out.push(s);
        *last = s;
    }
    out
}

/// Down: the mean of each pair.
fn narrow(pcm: &[i16]) -> Vec<i16> {
    pcm.chunks(2)
        .map(|p| (p.iter().map(|s| i32::from(*s)).sum::<i32>() / p.len() as i32) as i16)
        .collect()
}

/// The samples of the last `frames` packets of `heard`, in order.
pub fn tail(heard: &[(Header, Vec<i16>)], frames: usize) -> Vec<i16> {
    heard[heard.len().saturating_sub(frames)..]
        .iter()
        .flat_map(|(_, pcm)| pcm.iter().copied())
        .collect()
}

/// `x` and `y` talk, each its own tone (`x_tone`, `y_tone` Hz), 2 s at a
/// time until each hears the other's over the last second: true then,
/// false if that has not come within `within`.
pub async fn until_they_hear_each_other(
    x: &mut Caller,
    y: &mut Caller,
    [x_tone, y_tone]: [f64; 2],
    within: std::time::Duration,
) -> bool {
    let deadline = std::time::Instant::now() + within;
    while std::time::Instant::now() < deadline {
        let (heard_x, heard_y) = tokio::join!(
            x.talk_and_listen(100, |i| sine_frame(x_tone, 8000.0, i)),
            y.talk_and_listen(100, |i| sine_frame(y_tone, 8000.0, i)),
        );
        let (at_x, at_y) = (tail(&heard_x, 50), tail(&heard_y, 50));
        let (x_hears_y, y_hears_x) = (tone_power(&at_x, y_tone), tone_power(&at_y, x_tone));
        eprintln!("x hears y {x_hears_y:.0}, y hears x {y_hears_x:.0}");
        if x_hears_y > 1e6 && y_hears_x > 1e6 {
            return true;
        }
    }
    false
}

/// A sine at `freq` Hz, amplitude `amp`, for 20 ms frame `index`.
pub fn sine_frame(freq: f64, amp: f64, index: usize) -> Vec<i16> {
    (0..160)
        .map(|n| {
            let t = (index * 160 + n) as f64 / 8000.0;
            (amp * (2.0 * std::f64::consts::PI * freq * t).sin()) as i16
        })
        .collect()
}

/// [`sine_frame`] at 16 kHz (320 samples), for [`Caller::wideband`].
pub fn wide_sine_frame(freq: f64, amp: f64, index: usize) -> Vec<i16> {
    (0..320)
        .map(|n| {
            let t = (index * 320 + n) as f64 / 16000.0;
            (amp * (2.0 * std::f64::consts::PI * freq * t).sin()) as i16
        })
        .collect()
}
