//! One call's keypad: RFC 4733 events, SIP INFO and in-band tones merged
//! into one stream of presses ([`crate::dtmf::merge`]), the tone detector
//! switched on and off as the mode and the negotiated session say, and each
//! press written to the call's DTMF trace (source, start, length; never the
//! key) for the live-call view and the metrics.

use std::time::{Duration, Instant};

use crate::dtmf::inband::Tone;
use crate::dtmf::merge::Merger;
use crate::dtmf::tap::ToneTap;
use crate::dtmf::{DtmfSource, InbandMode, Key, rfc4733};
use crate::media::Codec;
use crate::media::rtp::{Header, Ssrc};
use crate::sip::sdp::Negotiated;

use crate::live::LiveCalls;

pub(crate) struct CallKeys {
    call: u64,
    live: LiveCalls,
    mode: InbandMode,
    merger: Merger,
    events: rfc4733::Receiver,
    events_ssrc: Option<Ssrc>,
    /// The telephone-event clock, for event lengths.
    event_rate: u32,
    /// An RFC 4733 press whose end has not arrived yet.
    event_open: bool,
    /// The tone detector and the codec it decodes, while it listens.
    tap: Option<(ToneTap, Codec)>,
    ready: std::collections::VecDeque<Key>,
}

impl CallKeys {
    pub fn new(call: u64, live: LiveCalls, mode: InbandMode, session: &Negotiated) -> CallKeys {
        let mut keys = CallKeys {
            call,
            live,
            mode,
            merger: Merger::new(),
            events: rfc4733::Receiver::new(),
            events_ssrc: None,
            event_rate: session.telephone_event_rate,
            event_open: false,
            tap: None,
            ready: Default::default(),
        };
        keys.renegotiated(session);
        keys
    }

    /// Whether the tone detector listens now.
    pub fn listening(&self) -> bool {
        self.tap.is_some()
    }

    /// The session changed (first offer or re-INVITE): the detector follows
    /// the mode, a new codec gets a new decoder.
    pub fn renegotiated(&mut self, session: &Negotiated) {
        self.event_rate = session.telephone_event_rate.max(1);
        let listens = self.mode.listens(session.telephone_event.is_some());
        let was = self.listening();
        match &self.tap {
            Some((_, codec)) if listens && *codec == session.codec => {}
            _ if listens => self.tap = Some((ToneTap::new(session.codec), session.codec)),
            _ => self.tap = None,
        }
        if was != listens {
            tracing::info!(
                listening = listens,
                mode = ?self.mode,
                telephone_event = session.telephone_event.is_some(),
                "in-band DTMF detection"
            );
        }
    }

    /// The next key to act on, oldest first.
    #[must_use]
    pub fn poll_key(&mut self) -> Option<Key> {
        self.ready.pop_front()
    }

    /// An audio packet of the negotiated codec.
    pub fn on_audio(&mut self, now: Instant, payload: &[u8]) {
        let Some((tap, _)) = &mut self.tap else {
            return;
        };
        tap.push(payload);
        loop {
            let Some((tap, _)) = &mut self.tap else {
                return;
            };
            let Some(tone) = tap.poll_tone() else { return };
            match tone {
                Tone::Began { key, at } => {
                    let started = now.checked_sub(tap.ago(at)).unwrap_or(now);
                    self.press(started, key, DtmfSource::Inband);
                }
                Tone::Ended { length, .. } => {
                    self.live.dtmf_length(self.call, DtmfSource::Inband, length);
                }
            }
        }
    }

    /// A telephone-event packet (RFC 4733).
    pub fn on_event(&mut self, now: Instant, header: &Header, payload: &[u8]) {
        if self.events_ssrc != Some(header.ssrc) {
            // A new stream: its event timestamps start afresh.
            self.events = rfc4733::Receiver::new();
            self.events_ssrc = Some(header.ssrc);
        }
        if let Some(key) = self
            .events
            .on_packet(now, header.timestamp, header.marker, payload)
        {
            self.event_open = true;
            self.press(now, key, DtmfSource::Rfc4733);
        }
        if self.event_open
            && let Some((duration, true)) = self.events.newest()
        {
            self.event_open = false;
            let length =
                Duration::from_micros(u64::from(duration) * 1_000_000 / u64::from(self.event_rate));
            self.live
                .dtmf_length(self.call, DtmfSource::Rfc4733, length);
        }
    }

    /// A key from a SIP INFO request.
    pub fn on_info(&mut self, now: Instant, key: Key) {
        self.press(now, key, DtmfSource::SipInfo);
    }

    fn press(&mut self, started: Instant, key: Key, source: DtmfSource) {
        let counted = self.merger.on_press(started, key, source);
        tracing::debug!(source = source.as_str(), counted, "key");
        self.live.dtmf_press(self.call, source, started, counted);
        if counted {
            self.ready.push_back(key);
        }
    }
}
