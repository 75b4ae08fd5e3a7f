//! The call's media in the shell: sockets and the leg started once the
//! call is acknowledged, RTP and RTCP in, keys from them to the core, a
//! re-INVITE's new codec or hold, and the media's end.

use super::super::keys::CallKeys;
use super::control::{CallCore, Input, media_flow};
use super::{Media, Shell};
use crate::live::{CallState, LiveCall};
use crate::media::leg::Leg;
use crate::media::ports::RtpPort;
use crate::media::rtp::{self, Latch, Outbound};
use crate::media::socket::MediaSocket;
use crate::sip::endpoint::CallEvent;
use crate::sip::identity::identify;
use crate::sip::sdp::Negotiated;
use std::sync::Arc;

/// Our Opus encoder's settings for this call: the far end's bitrate cap.
fn opus_params(negotiated: &Negotiated) -> crate::media::codec::OpusParams {
    let mut params = crate::media::codec::OpusParams::default();
    if let Some(cap) = negotiated.max_average_bitrate {
        params.max_average_bitrate = params.max_average_bitrate.min(cap);
    }
    params
}

fn codec_name(codec: crate::media::Codec) -> String {
    format!("{codec:?}").to_uppercase()
}

impl Shell {
    /// Binds the media of an acknowledged call; `None` if its socket fails.
    pub(super) fn start_media(&mut self, negotiated: Negotiated) -> Option<()> {
        let RtpPort {
            socket,
            rtcp,
            lease,
            ..
        } = self.port.take()?;
        self.lease = Some(lease);
        // Without an RTCP socket the call goes on; the far end's reports are lost.
        let rtcp = MediaSocket::from_std(rtcp)
            .inspect_err(|e| tracing::warn!(%e, "RTCP socket"))
            .ok();
        let socket = MediaSocket::from_std(socket)
            .inspect_err(|e| tracing::error!(%e, "RTP socket"))
            .ok()?;
        let (_, on_hold) = media_flow(&negotiated);
        let number = self
            .number
            .as_ref()
            .map(|n| n.number.clone())
            .unwrap_or_default();
        self.shared.live.add(LiveCall {
            id: self.call.0,
            number,
            caller_id: self.who.caller_id.clone(),
            state: CallState::Ivr,
            room_id: None,
            since: crate::store::format_time(chrono::Utc::now()),
            codec: codec_name(negotiated.codec),
            dtmf_sources: Default::default(),
            dtmf: Vec::new(),
            muted: false,
            role: None,
            // A first offer may already be on hold (sendonly, inactive).
            on_hold,
            far_end: None,
            node: self.shared.node.id().to_owned(),
            room_owner: None,
        });
        let socket = Arc::new(socket);
        let leg = Arc::new(Leg::new(
            socket.clone(),
            Outbound::with_params(
                negotiated.codec,
                negotiated.payload_type,
                opus_params(&negotiated),
                &mut rand::rng(),
            ),
            Latch::new(negotiated.remote_rtp, self.media_peers()),
        ));
        leg.renegotiated(
            negotiated.codec,
            negotiated.payload_type,
            opus_params(&negotiated),
            !on_hold,
            negotiated.remote_rtp,
        );
        let keys = CallKeys::new(
            self.call.0,
            self.shared.live.clone(),
            self.shared.settings.dtmf_mode,
            &negotiated,
        );
        let prompts = self
            .shared
            .prompts
            .for_language(self.number.as_ref().map_or("en", |n| n.language.as_str()))
            .clone();
        let playout = self.shared.prompt_clock.add(leg.clone(), prompts);
        self.media = Some(Media {
            socket,
            rtcp,
            leg,
            keys,
            playout,
            negotiated,
            on_hold,
            reception: crate::media::reception::Reception::new(),
            rtp_in: crate::media::tally::Tally::new(metrics::counter!(
                "dialgate_rtp_packets_total",
                "direction" => "in"
            )),
            rtp_dropped: metrics::counter!("dialgate_rtp_packets_dropped_total"),
            rtp_lost: metrics::counter!("dialgate_rtp_packets_lost_total"),
            room: None,
            presence: None,
            standing: None,
        });
        Some(())
    }

    /// Keeps where a re-INVITE came from, for when it is accepted.
    pub(super) fn note_reinvite_source(&mut self, event: &CallEvent) {
        if let CallEvent::Reinvite { source, vias, .. } = event {
            let who = identify(&self.shared.settings.trusted_peers, *source, vias, None, "");
            self.reinvite_from = vec![source.ip(), who.source_ip];
        }
    }

    /// Where the caller's media may come from besides its SDP address: the
    /// caller's own public address (a phone behind NAT, whether it signals
    /// directly or through a trusted proxy: then the first untrusted Via's),
    /// the INVITE's last hop and the trusted peers (an SBC relaying media).
    pub(super) fn media_peers(&self) -> Vec<std::net::IpAddr> {
        let mut peers = self.shared.settings.trusted_peers.clone();
        peers.push(self.signalling.ip());
        peers.push(self.caller_ip);
        peers
    }

    /// An RTP datagram on the call's port: true if it is the caller's
    /// stream (latched source, negotiated payload types).
    pub(super) fn on_rtp(&mut self, source: std::net::SocketAddr, packet: &[u8]) -> bool {
        let Some(m) = self.media.as_mut() else {
            return false;
        };
        let Some((header, payload)) = rtp::read(packet) else {
            m.rtp_dropped.increment(1);
            return false;
        };
        let now = std::time::Instant::now();
        let ours = header.payload_type == m.negotiated.payload_type
            || Some(header.payload_type) == m.negotiated.telephone_event;
        // Media that is not the caller's stream is dropped whole (RTP bleed,
        // a stranger spraying the port): it keys nothing and latches nothing.
        if !ours || !m.leg.on_media(now, source, &header) {
            m.rtp_dropped.increment(1);
            return false;
        }
        m.rtp_in.add(1);
        let lost = m.reception.on_packet(header.ssrc, header.sequence);
        if lost > 0 {
            m.rtp_lost.increment(lost);
        }
        // Bridged to the room's owner: it mixes this caller and reads its
        // keys (RFC 4733 and in-band) itself; nothing is decoded here.
        if self.bridge.as_ref().is_some_and(|b| b.forward(packet)) {
            return true;
        }
        if header.payload_type == m.negotiated.payload_type {
            m.keys.on_audio(now, payload);
            if let Some((_, member)) = &m.room {
                member.push_audio(now, &header, payload);
            }
        } else {
            if let Some((_, member)) = &m.room {
                // Keypad packets share the stream: not audio, not loss.
                member.push_not_audio(&header);
            }
            m.keys.on_event(now, &header, payload);
        }
        true
    }

    /// Keys the merger has ready, to the core.
    pub(super) fn keys_to(&mut self, core: &mut CallCore, now: std::time::Instant) {
        while let Some(key) = self.media.as_mut().and_then(|m| m.keys.poll_key()) {
            core.handle(now, Input::Key(key));
        }
    }

    /// The far end's RTCP: its reports on the stream we send it go to the
    /// metrics and the live-call view. Only from where our media goes.
    pub(super) fn on_rtcp(&self, source: std::net::SocketAddr, packet: &[u8]) {
        let Some(m) = &self.media else { return };
        let (Some(ours), Some(dest)) = (m.leg.ssrc(), m.leg.destination()) else {
            return;
        };
        if source.ip() != dest.ip() {
            return;
        }
        let clock = f64::from(m.negotiated.codec.clock_rate());
        for block in crate::media::rtcp::report_blocks(packet)
            .into_iter()
            .filter(|b| b.ssrc == ours)
        {
            let jitter = f64::from(block.jitter) / clock;
            metrics::counter!("dialgate_rtcp_reports_total").increment(1);
            metrics::histogram!("dialgate_rtcp_fraction_lost").record(block.fraction_lost);
            metrics::histogram!("dialgate_rtcp_jitter_seconds").record(jitter);
            self.shared
                .live
                .far_end_report(self.call.0, block.fraction_lost, jitter);
        }
    }

    /// Applies a session a re-INVITE changed: codec both ways, where and
    /// whether to send, and whether the room hears this caller.
    pub(super) fn renegotiated(&mut self, old: &Negotiated, new: &Negotiated, held: bool) {
        let Some(m) = self.media.as_mut() else { return };
        m.leg.renegotiated(
            new.codec,
            new.payload_type,
            opus_params(new),
            !held,
            new.remote_rtp,
        );
        // A phone behind NAT that moved (Wi-Fi to mobile) re-INVITEs from
        // its new address with an SDP that may still name a private one.
        m.leg
            .add_media_peers(&std::mem::take(&mut self.reinvite_from));
        if let Some((_, member)) = &m.room {
            if new.codec != old.codec {
                member.set_codec(new.codec);
            }
            member.set_held(held);
        }
        m.keys.renegotiated(new);
        let relayed_differently = (new.codec, new.payload_type, new.telephone_event)
            != (old.codec, old.payload_type, old.telephone_event);
        m.negotiated = new.clone();
        m.on_hold = held;
        self.shared
            .live
            .media_changed(self.call.0, codec_name(new.codec), held);
        if relayed_differently {
            self.caller_renegotiated();
        }
    }

    /// The call's media part is over: out of the live view and the room.
    pub(super) fn media_ended(&mut self, outcome: &'static str) {
        // The call's packet counts reach the metric by the time it leaves
        // the live view (a packet the mix sends after this is added when
        // the leg is dropped).
        if let Some(m) = self.media.as_mut() {
            m.rtp_in.flush();
            m.leg.flush_counts();
        }
        self.shared.live.remove(self.call.0);
        self.end_leg();
        metrics::counter!("dialgate_calls_total", "outcome" => outcome).increment(1);
        let Some((room_id, member)) = self.media.as_mut().and_then(|m| m.room.take()) else {
            return;
        };
        if let Some(m) = self.media.as_mut() {
            m.presence = None;
        }
        self.shared.rooms.leave(room_id, self.call);
        if let Some(stats) = member.jitter_stats() {
            tracing::info!(room_id = room_id.0, ?stats, "left room");
            for (event, n) in [
                ("lost", stats.lost),
                ("late", stats.late),
                ("duplicate", stats.duplicates),
                ("drift_drop", stats.drift_drops),
                ("underrun", stats.underruns),
                ("fec_recovered", stats.recovered),
            ] {
                metrics::counter!("dialgate_jitter_frames_total", "event" => event).increment(n);
            }
        }
    }
}
