//! From a recorded trace to a caller's script: what the caller sent (SIP
//! requests and RTP, in time order), what the gateway answered, and which
//! keys the caller pressed — and a script with other codes keyed in their
//! place.
//!
//! The caller is the sender of the trace's first INVITE that has no To tag;
//! the gateway is its destination. Only that call (its Call-ID) is taken.
//! Retransmitted requests are dropped, and so are ACKs: the replay builds
//! its own ACKs from the responses it really gets. The caller's RTP is what
//! comes from the address and port its SDP offered (RTCP, one port up, is
//! left out). Responses the caller sent are left out too: the replay answers
//! the gateway's requests itself.
//!
//! Key presses are read from RFC 4733 telephone-events (one press per event
//! timestamp) or, when the RTP has none, from SIP INFO bodies. In-band tones
//! are not recognised here.

use std::time::Duration;

use dialgate::dtmf::Key;
use dialgate::dtmf::rfc4733::TelephoneEvent;
use dialgate::dtmf::sip_info::parse_info;
use dialgate::media::ALL_CODECS;
use dialgate::media::rtp;
use dialgate::sip::message::{self, Message, Method, StartLine};
use dialgate::sip::sdp::{self, LocalMedia};

use super::trace::{Trace, looks_like_sip};

/// An RTP packet the caller sent, header fields apart.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RtpPacket {
    pub payload_type: u8,
    pub marker: bool,
    pub sequence: u16,
    pub timestamp: u32,
    pub payload: Vec<u8>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StepKind {
    /// A request the caller sent after its INVITE (INFO, BYE, CANCEL, a
    /// re-INVITE…), with the final status the trace's gateway gave it.
    Request {
        message: Message,
        expect: Option<u16>,
    },
    Rtp(RtpPacket),
}

/// One thing the caller does, `at` after it sent the INVITE.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Step {
    pub at: Duration,
    pub kind: StepKind,
}

/// What the trace's gateway did, to compare a replay with.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Expected {
    /// Final status of the INVITE.
    pub invite_status: Option<u16>,
    /// The gateway hung up, with this `Reason` header (if it sent one).
    pub gateway_bye: Option<Option<String>>,
}

/// The RTP the caller's offer set up.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MediaPlan {
    /// Payload type of the caller's audio packets, if it sent any.
    pub audio_payload_type: Option<u8>,
    /// The caller's telephone-event payload type, if offered.
    pub event_payload_type: Option<u8>,
    /// RTP clock of the stream (the audio codec's; telephone-events share it).
    pub clock_rate: u32,
}

/// How a key was sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Via {
    Rfc4733,
    SipInfo,
}

/// One key press of the script.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Press {
    pub key: Key,
    pub via: Via,
    /// Steps that carry it (for RFC 4733, its event packets).
    pub steps: Vec<usize>,
    pub start: Duration,
    pub end: Duration,
}

/// A caller's side of one recorded call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Script {
    pub invite: Message,
    /// After the INVITE, in time order.
    pub steps: Vec<Step>,
    /// When the trace's INVITE got its 2xx, after it was sent.
    pub answered_at: Option<Duration>,
    pub expected: Expected,
    pub media: MediaPlan,
}

#[derive(thiserror::Error, Debug, PartialEq, Eq)]
pub enum ScriptError {
    #[error("the trace holds no initial INVITE")]
    NoInvite,
    #[error("--codes given, but the trace keys no digits (RFC 4733 or SIP INFO)")]
    NoKeys,
    #[error("code {0:?} holds a character that is not a keypad digit")]
    BadCode(String),
}

impl Script {
    /// Takes the first call of `trace`.
    pub fn from_trace(trace: &Trace) -> Result<Script, ScriptError> {
        let sip: Vec<(Duration, std::net::SocketAddr, Message)> = trace
            .datagrams
            .iter()
            .filter(|d| looks_like_sip(&d.payload))
            .filter_map(|d| Some((d.at, d.src, message::parse(&d.payload).ok()?)))
            .collect();
        let (t0, caller, invite) = sip
            .iter()
            .find(|(_, _, m)| m.method() == Some(&Method::Invite) && m.tag("To").is_none())
            .cloned()
            .ok_or(ScriptError::NoInvite)?;
        let call_id = invite.call_id().to_owned();
        let invite_branch = invite.branch().map(str::to_owned);
        let offer = offer_of(&invite);
        let mut steps = Vec::new();
        let mut expected = Expected::default();
        let mut answered_at = None;
        // The trace's answer: its codec's clock is the RTP clock.
        let mut answer = None;
        let mut seen_branches: Vec<(String, String)> = Vec::new();
        // (cseq, method) of each request step, to attach its final status.
        let mut pending: Vec<(u32, String, usize)> = Vec::new();
        for (at, src, msg) in sip.iter().filter(|(_, _, m)| m.call_id() == call_id) {
            let at = at.saturating_sub(t0);
            let from_caller = *src == caller;
            match (&msg.start, from_caller) {
                (StartLine::Request { method, .. }, true) => {
                    let branch = msg.branch().unwrap_or_default().to_owned();
                    let key = (branch.clone(), method.as_str().to_owned());
                    if *method == Method::Ack
                        || Some(&branch) == invite_branch.as_ref() && *method == Method::Invite
                        || seen_branches.contains(&key)
                    {
                        continue;
                    }
                    seen_branches.push(key);
                    if let Some((cseq, _)) = msg.cseq() {
                        pending.push((cseq, method.as_str().to_owned(), steps.len()));
                    }
                    steps.push(Step {
                        at,
                        kind: StepKind::Request {
                            message: msg.clone(),
                            expect: None,
                        },
                    });
                }
                (StartLine::Response { status }, false) if status.0 >= 200 => {
                    let Some((cseq, method)) = msg.cseq() else {
                        continue;
                    };
                    if method == Method::Invite
                        && Some(cseq) == invite.cseq().map(|c| c.0)
                        && msg.branch() == invite_branch.as_deref()
                    {
                        expected.invite_status.get_or_insert(status.0);
                        if status.is_success() && answered_at.is_none() {
                            answered_at = Some(at);
                            answer = read_sdp(&String::from_utf8_lossy(&msg.body));
                        }
                    } else if let Some(&(_, _, i)) = pending
                        .iter()
                        .find(|(c, m, _)| *c == cseq && m == method.as_str())
                        && let Some(StepKind::Request { expect, .. }) =
                            steps.get_mut(i).map(|s: &mut Step| &mut s.kind)
                    {
                        expect.get_or_insert(status.0);
                    }
                }
                (StartLine::Request { method, .. }, false)
                    if *method == Method::Bye && expected.gateway_bye.is_none() =>
                {
                    expected.gateway_bye = Some(msg.header("Reason").map(str::to_owned));
                }
                _ => {}
            }
        }
        let media_source = offer.as_ref().and_then(|o| o.remote_rtp);
        let mut media = MediaPlan {
            event_payload_type: offer.as_ref().and_then(|o| o.telephone_event.map(|p| p.0)),
            clock_rate: answer.map_or(8000, |a| a.codec.clock_rate()),
            audio_payload_type: None,
        };
        if let Some(source) = media_source {
            for d in &trace.datagrams {
                let from_media =
                    d.src == source || (d.src.port() == source.port() && d.src.ip() == caller.ip());
                if !from_media || d.at < t0 || looks_like_sip(&d.payload) {
                    continue;
                }
                let Some((h, payload)) = rtp::read(&d.payload) else {
                    continue;
                };
                if Some(h.payload_type.0) != media.event_payload_type
                    && media.audio_payload_type.is_none()
                {
                    media.audio_payload_type = Some(h.payload_type.0);
                }
                steps.push(Step {
                    at: d.at - t0,
                    kind: StepKind::Rtp(RtpPacket {
                        payload_type: h.payload_type.0,
                        marker: h.marker,
                        sequence: h.sequence,
                        timestamp: h.timestamp,
                        payload: payload.to_vec(),
                    }),
                });
            }
        }
        steps.sort_by_key(|s| s.at);
        Ok(Script {
            invite,
            steps,
            answered_at,
            expected,
            media,
        })
    }

    /// The key presses, in order: RFC 4733 if the RTP carries any, else SIP INFO.
    pub fn presses(&self) -> Vec<Press> {
        let rtp = self.rfc4733_presses();
        if rtp.is_empty() {
            self.info_presses()
        } else {
            rtp
        }
    }

    /// The keys pressed, as a string (`"123#"`).
    pub fn keyed(&self) -> String {
        self.presses().iter().map(|p| p.key.to_char()).collect()
    }

    fn rfc4733_presses(&self) -> Vec<Press> {
        let Some(event_pt) = self.media.event_payload_type else {
            return Vec::new();
        };
        let mut presses: Vec<(u32, Press)> = Vec::new();
        for (i, step) in self.steps.iter().enumerate() {
            let StepKind::Rtp(p) = &step.kind else {
                continue;
            };
            if p.payload_type != event_pt {
                continue;
            }
            let Some(key) = TelephoneEvent::parse(&p.payload).ok().and_then(|e| e.key()) else {
                continue;
            };
            match presses.last_mut() {
                Some((ts, press)) if *ts == p.timestamp && press.key == key => {
                    press.steps.push(i);
                    press.end = step.at;
                }
                _ => presses.push((
                    p.timestamp,
                    Press {
                        key,
                        via: Via::Rfc4733,
                        steps: vec![i],
                        start: step.at,
                        end: step.at,
                    },
                )),
            }
        }
        presses.into_iter().map(|(_, p)| p).collect()
    }

    fn info_presses(&self) -> Vec<Press> {
        self.steps
            .iter()
            .enumerate()
            .filter_map(|(i, step)| {
                let StepKind::Request { message, .. } = &step.kind else {
                    return None;
                };
                (message.method() == Some(&Method::Info)).then_some(())?;
                let key = parse_info(message.content_type()?, &message.body).ok()?;
                Some(Press {
                    key,
                    via: Via::SipInfo,
                    steps: vec![i],
                    start: step.at,
                    end: step.at,
                })
            })
            .collect()
    }

    /// This script with `codes` keyed in place of the trace's: the first
    /// code replaces the first group of keys (up to and including its `#`),
    /// the second (a security code, if given) the second group. Later
    /// groups, and everything else the caller did, stay; what follows a
    /// longer or shorter code moves in time with it.
    pub fn with_codes(&self, codes: &[&str]) -> Result<Script, ScriptError> {
        for code in codes {
            if !code.chars().all(|c| c.is_ascii_digit() || c == '*') {
                return Err(ScriptError::BadCode((*code).to_owned()));
            }
        }
        let mut script = self.clone();
        for (group, code) in codes.iter().enumerate() {
            let presses = script.presses();
            if presses.is_empty() {
                return Err(ScriptError::NoKeys);
            }
            let groups = groups(&presses);
            let Some(range) = groups.get(group) else {
                break;
            };
            let old = &presses[range.clone()];
            let terminated = old.last().is_some_and(|p| p.key == Key::Pound);
            let keys: Vec<Key> = code
                .chars()
                .chain(terminated.then_some('#'))
                .filter_map(Key::from_char)
                .collect();
            script = match old.first().map(|p| p.via) {
                Some(Via::SipInfo) => script.rekey_info(old, &keys),
                _ => script.rekey_rtp(old, &keys),
            };
        }
        Ok(script)
    }

    /// Replaces the INFO steps of `old` with one INFO per key.
    fn rekey_info(&self, old: &[Press], keys: &[Key]) -> Script {
        let (Some(first), Some(last)) = (old.first(), old.last()) else {
            return self.clone();
        };
        let pitch = pitch(old).unwrap_or(Duration::from_millis(250));
        let Some(StepKind::Request { message, expect }) = first
            .steps
            .first()
            .and_then(|&i| self.steps.get(i))
            .map(|s| &s.kind)
        else {
            return self.clone();
        };
        let new_len = pitch * (keys.len().saturating_sub(1) as u32);
        let generated = keys.iter().enumerate().map(|(n, key)| Step {
            at: first.start + pitch * n as u32,
            kind: StepKind::Request {
                message: info_with_key(message, *key),
                expect: *expect,
            },
        });
        self.splice(first.start, last.end, new_len, generated.collect(), |k| {
            matches!(k, StepKind::Request { message, .. } if message.method() == Some(&Method::Info))
        })
    }

    /// Replaces the telephone-event packets of `old`, and the audio between
    /// them, with presses of `keys` shaped like the first old press.
    fn rekey_rtp(&self, old: &[Press], keys: &[Key]) -> Script {
        let (Some(first), Some(last)) = (old.first(), old.last()) else {
            return self.clone();
        };
        let template: Vec<(Duration, &RtpPacket)> = first
            .steps
            .iter()
            .filter_map(|&i| {
                let step = self.steps.get(i)?;
                match &step.kind {
                    StepKind::Rtp(p) => Some((step.at.saturating_sub(first.start), p)),
                    _ => None,
                }
            })
            .collect();
        let Some(&(_, head)) = template.first() else {
            return self.clone();
        };
        let press_len = template.last().map_or(Duration::ZERO, |t| t.0);
        let pitch = pitch(old).unwrap_or(press_len + Duration::from_millis(120));
        let pitch = pitch.max(press_len + Duration::from_millis(40));
        let new_len = pitch * (keys.len().saturating_sub(1) as u32) + press_len;
        // Audio to fill the gaps with: the packet before the first press.
        let filler = self.steps[..first.steps[0]]
            .iter()
            .rev()
            .find_map(|s| match &s.kind {
                StepKind::Rtp(p) if Some(p.payload_type) == self.media.audio_payload_type => {
                    Some(p)
                }
                _ => None,
            });
        let clock = u64::from(self.media.clock_rate);
        let samples = |d: Duration| (d.as_micros() as u64 * clock / 1_000_000) as u32;
        let mut generated = Vec::new();
        for (n, key) in keys.iter().enumerate() {
            let start = pitch * n as u32;
            for (offset, p) in &template {
                let mut event = TelephoneEvent::parse(&p.payload).unwrap_or(TelephoneEvent {
                    event: 0,
                    end: false,
                    volume: 10,
                    duration: 0,
                });
                event.event = key.event_code();
                let mut payload = p.payload.clone();
                if let Some(block) = payload.get_mut(..4) {
                    block.copy_from_slice(&event.to_bytes());
                }
                generated.push(Step {
                    at: first.start + start + *offset,
                    kind: StepKind::Rtp(RtpPacket {
                        payload_type: p.payload_type,
                        marker: p.marker,
                        sequence: 0,
                        timestamp: head.timestamp.wrapping_add(samples(start)),
                        payload,
                    }),
                });
            }
            // Silence until the next press.
            if let (Some(filler), true) = (filler, n + 1 < keys.len()) {
                let mut t = press_len + Duration::from_millis(20);
                while t + Duration::from_millis(10) < pitch {
                    generated.push(Step {
                        at: first.start + start + t,
                        kind: StepKind::Rtp(RtpPacket {
                            timestamp: head.timestamp.wrapping_add(samples(start + t)),
                            sequence: 0,
                            ..filler.clone()
                        }),
                    });
                    t += Duration::from_millis(20);
                }
            }
        }
        let mut script = self.splice(first.start, last.end, new_len, generated, |k| {
            matches!(k, StepKind::Rtp(_))
        });
        // Shift later timestamps with the time, then number the packets anew.
        // Saturating: a capture's steps need not be in time order.
        let old_len = last.end.saturating_sub(first.start);
        let end = first.start + new_len;
        let moved = samples(new_len).wrapping_sub(samples(old_len));
        let mut seq = self.first_sequence();
        for step in &mut script.steps {
            if let StepKind::Rtp(p) = &mut step.kind {
                if step.at > end {
                    p.timestamp = p.timestamp.wrapping_add(moved);
                }
                p.sequence = seq;
                seq = seq.wrapping_add(1);
            }
        }
        script
    }

    fn first_sequence(&self) -> u16 {
        self.steps
            .iter()
            .find_map(|s| match &s.kind {
                StepKind::Rtp(p) => Some(p.sequence),
                _ => None,
            })
            .unwrap_or(0)
    }

    /// Steps in `[start, end]` that `replaced` matches give way to
    /// `generated`; steps after `end` move by the change in length.
    fn splice(
        &self,
        start: Duration,
        end: Duration,
        new_len: Duration,
        generated: Vec<Step>,
        replaced: impl Fn(&StepKind) -> bool,
    ) -> Script {
        let mut steps: Vec<Step> = Vec::with_capacity(self.steps.len() + generated.len());
        for step in &self.steps {
            let inside = step.at >= start && step.at <= end;
            if inside && replaced(&step.kind) {
                continue;
            }
            let mut step = step.clone();
            if step.at > end {
                step.at = start + new_len + (step.at - end);
            }
            steps.push(step);
        }
        steps.extend(generated);
        steps.sort_by_key(|s| s.at);
        Script {
            steps,
            ..self.clone()
        }
    }
}

/// Press groups, each up to and including a `#` (the last may have none).
fn groups(presses: &[Press]) -> Vec<std::ops::Range<usize>> {
    let mut out = Vec::new();
    let mut start = 0;
    for (i, p) in presses.iter().enumerate() {
        if p.key == Key::Pound {
            out.push(start..i + 1);
            start = i + 1;
        }
    }
    if start < presses.len() {
        out.push(start..presses.len());
    }
    out
}

/// The median time from one press's start to the next's.
fn pitch(presses: &[Press]) -> Option<Duration> {
    let mut gaps: Vec<Duration> = presses
        .windows(2)
        .map(|w| w[1].start - w[0].start)
        .collect();
    gaps.sort();
    gaps.get(gaps.len() / 2).copied()
}

fn info_with_key(template: &Message, key: Key) -> Message {
    let mut m = template.clone();
    let relay = m
        .content_type()
        .is_some_and(|c| c.to_ascii_lowercase().starts_with("application/dtmf-relay"));
    m.body = if relay {
        let text = String::from_utf8_lossy(&template.body);
        let mut out = format!("Signal={}\r\n", key.to_char());
        for line in text.lines() {
            let name = line.split('=').next().unwrap_or_default().trim();
            if !name.eq_ignore_ascii_case("signal") && !line.trim().is_empty() {
                out.push_str(line.trim_end());
                out.push_str("\r\n");
            }
        }
        out.into_bytes()
    } else {
        key.to_char().to_string().into_bytes()
    };
    m
}

fn offer_body(invite: &Message) -> Option<String> {
    invite
        .content_type()
        .filter(|c| c.to_ascii_lowercase().starts_with("application/sdp"))
        .map(|_| String::from_utf8_lossy(&invite.body).into_owned())
}

/// Reads an SDP (offer or answer) as if answering it: where its RTP comes
/// from, the first codec, telephone-event.
pub fn read_sdp(text: &str) -> Option<sdp::Negotiated> {
    let local = LocalMedia {
        addr: std::net::IpAddr::from([127, 0, 0, 1]),
        port: 9,
        session_id: 0,
        session_version: 0,
        codecs: ALL_CODECS.to_vec(),
    };
    sdp::answer(text, &local).ok().map(|(n, _)| n)
}

fn offer_of(invite: &Message) -> Option<sdp::Negotiated> {
    read_sdp(&offer_body(invite)?)
}

#[cfg(test)]
mod tests;
