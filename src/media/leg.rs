//! One call's outbound media, shared by the call task (prompts) and the
//! room's mixer (the mix): the socket, the RTP stream state (one SSRC,
//! continuous sequence and timestamp whoever sends) and the symmetric-RTP
//! latch. Sends never wait: a full socket buffer drops the frame, as a
//! network would.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use tokio::net::UdpSocket;

use super::rtp::{Latch, Outbound};

#[derive(Debug)]
struct State {
    outbound: Outbound,
    latch: Latch,
    /// False while the far end does not want our media (it put us on hold).
    sending: bool,
}

pub struct Leg {
    socket: Arc<UdpSocket>,
    state: Mutex<State>,
    sent: metrics::Counter,
}

impl std::fmt::Debug for Leg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Leg")
            .field("socket", &self.socket)
            .finish_non_exhaustive()
    }
}

impl Leg {
    pub fn new(socket: Arc<UdpSocket>, outbound: Outbound, latch: Latch) -> Leg {
        Leg {
            socket,
            state: Mutex::new(State {
                outbound,
                latch,
                sending: true,
            }),
            sent: metrics::counter!("dialgate_rtp_packets_total", "direction" => "out"),
        }
    }

    /// Media of the call's payload types arrived from `source`; `false`
    /// means it is not from the latched source and must be dropped.
    #[must_use]
    pub fn on_media(&self, now: Instant, source: SocketAddr) -> bool {
        self.state
            .lock()
            .is_ok_and(|mut s| s.latch.on_media(now, source))
    }

    /// The codec this leg sends; `None` while it sends nothing (on hold).
    pub fn codec(&self) -> Option<crate::sip::sdp::Codec> {
        self.state
            .lock()
            .ok()
            .filter(|s| s.sending)
            .map(|s| s.outbound.codec())
    }

    /// The SSRC of the stream this leg sends.
    pub fn ssrc(&self) -> Option<u32> {
        self.state.lock().ok().map(|s| s.outbound.ssrc())
    }

    /// Where this leg sends now.
    pub fn destination(&self) -> Option<SocketAddr> {
        self.state.lock().ok().and_then(|s| s.latch.destination())
    }

    /// What a re-INVITE settled: the codec, whether the far end wants our
    /// media, and its signalled address (a new one starts latching afresh).
    pub fn renegotiated(
        &self,
        codec: crate::sip::sdp::Codec,
        payload_type: u8,
        opus: crate::media::codec::OpusParams,
        sending: bool,
        remote: Option<SocketAddr>,
    ) {
        let Ok(mut s) = self.state.lock() else { return };
        if (s.outbound.codec(), s.outbound.payload_type()) != (codec, payload_type) {
            s.outbound.set_codec(codec, payload_type, opus);
        }
        s.sending = sending;
        if remote != s.latch.signalled() {
            s.latch = Latch::new(remote);
        }
    }

    /// Encodes and sends one 20 ms frame, if the far end's address is known.
    pub fn send_frame(&self, pcm: &[i16]) {
        let Ok(mut s) = self.state.lock() else { return };
        let Some(dest) = s.latch.destination().filter(|_| s.sending) else {
            return;
        };
        // Sent under the lock: the send never waits, and the packet lives
        // in the stream's own buffer.
        let packet = s.outbound.packet(pcm);
        self.send(packet, dest);
    }

    /// Sends one 20 ms payload already encoded in this leg's codec (the
    /// room encodes each distinct mix once and fans it out).
    pub fn send_payload(&self, payload: &[u8]) {
        let Ok(mut s) = self.state.lock() else { return };
        let Some(dest) = s.latch.destination().filter(|_| s.sending) else {
            return;
        };
        let packet = s.outbound.packet_with(payload);
        self.send(packet, dest);
    }

    fn send(&self, packet: &[u8], dest: SocketAddr) {
        self.sent.increment(1);
        if let Err(e) = self.socket.try_send_to(packet, dest)
            && e.kind() != std::io::ErrorKind::WouldBlock
        {
            tracing::debug!(%e, %dest, "RTP send failed");
        }
    }
}
