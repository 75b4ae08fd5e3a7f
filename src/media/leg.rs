//! One call's outbound media, shared by the call task (prompts) and the
//! room's mixer (the mix): the socket, the RTP stream state (one SSRC,
//! continuous sequence and timestamp whoever sends) and the symmetric-RTP
//! latch. Sends never wait: a full socket buffer drops the frame, as a
//! network would.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use super::prompts::{PromptFrame, PromptSet};
use super::rtp::{Header, Latch, Outbound, PayloadType, Ssrc};
use super::socket::MediaSocket;
use super::tally::Tally;

#[derive(Debug)]
struct State {
    outbound: Outbound,
    latch: Latch,
    /// False while the far end does not want our media (it put us on hold).
    sending: bool,
    /// Packets sent (`dialgate_rtp_packets_total{direction="out"}`).
    sent: Tally,
}

pub struct Leg {
    socket: Arc<MediaSocket>,
    state: Mutex<State>,
}

impl std::fmt::Debug for Leg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Leg")
            .field("socket", &self.socket)
            .finish_non_exhaustive()
    }
}

impl Leg {
    pub fn new(socket: Arc<MediaSocket>, outbound: Outbound, latch: Latch) -> Leg {
        Leg {
            socket,
            state: Mutex::new(State {
                outbound,
                latch,
                sending: true,
                sent: Tally::new(
                    metrics::counter!("dialgate_rtp_packets_total", "direction" => "out"),
                ),
            }),
        }
    }

    /// Media of the call's payload types arrived from `source`; `false`
    /// means it is not the caller's stream and must be dropped ([`Latch`]).
    #[must_use]
    pub fn on_media(&self, now: Instant, source: SocketAddr, header: &Header) -> bool {
        self.state
            .lock()
            .is_ok_and(|mut s| s.latch.on_media(now, source, header))
    }

    /// The codec this leg sends; `None` while it sends nothing (on hold).
    pub fn codec(&self) -> Option<crate::media::Codec> {
        self.state
            .lock()
            .ok()
            .filter(|s| s.sending)
            .map(|s| s.outbound.codec())
    }

    /// The SSRC of the stream this leg sends.
    pub fn ssrc(&self) -> Option<Ssrc> {
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
        codec: crate::media::Codec,
        payload_type: PayloadType,
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
            s.latch.resignal(remote);
        }
    }

    /// The caller's media may also come from `ips` (see [`Latch::add_peers`]).
    pub fn add_media_peers(&self, ips: &[std::net::IpAddr]) {
        if let Ok(mut s) = self.state.lock() {
            s.latch.add_peers(ips);
        }
    }

    /// Encodes and sends one 20 ms frame, if the far end's address is known.
    pub fn send_frame(&self, pcm: &[i16]) {
        self.send_built(|o| o.packet(pcm));
    }

    /// Sends one 20 ms frame of 8 kHz PCM, encoded as it is (G.711: a room
    /// mixes an announcement over its mix at 8 kHz, with no filter per
    /// member); nothing is sent if this leg's codec is another by now (a
    /// re-INVITE changed it since the room planned the tick).
    pub fn send_narrow(&self, narrow: &[i16]) {
        self.send_built(|o| o.packet_narrow(narrow));
    }

    /// Sends one 20 ms payload already encoded in this leg's codec (the
    /// room encodes each distinct mix once and fans it out).
    pub fn send_payload(&self, payload: &[u8]) {
        self.send_built(|o| o.packet_with(payload));
    }

    /// Sends one 20 ms frame of a prompt, or silence for `None`: a copy of
    /// the payload encoded once for every call in this leg's encoding, or,
    /// for a codec each call encodes itself (G.722) and while the shared
    /// table is still being built, the frame's PCM through this leg's own
    /// encoder (the call never waits for a table). Chosen under the leg's
    /// lock, so a re-INVITE changing the codec never gets a payload of the
    /// old one.
    pub fn send_prompt(&self, prompts: &PromptSet, at: Option<PromptFrame>) {
        self.send_built(|o| match prompts.encoded_ready(o.encoding()) {
            Some(table) => {
                let payload = at.and_then(|at| table.frame(at));
                o.packet_with(payload.unwrap_or(table.silence()))
            }
            None => o.packet(at.map_or(&[], |at| prompts.frame_pcm(at))),
        });
    }

    /// Adds the packets this leg sent to the shared counter now, not with
    /// the next batch (the call's media ends).
    pub fn flush_counts(&self) {
        if let Ok(mut s) = self.state.lock() {
            s.sent.flush();
        }
    }

    /// Builds the stream's next packet with `build` and sends it, if the
    /// far end wants our media and its address is known; `None` from
    /// `build` (a packet that could not be built) sends nothing. Built and
    /// sent under the lock: the send never waits, and the packet lives in
    /// the stream's own buffer.
    fn send_built(&self, build: impl FnOnce(&mut Outbound) -> Option<&[u8]>) {
        let Ok(mut s) = self.state.lock() else { return };
        let Some(dest) = s.latch.destination().filter(|_| s.sending) else {
            return;
        };
        let Some(packet) = build(&mut s.outbound) else {
            return;
        };
        let result = self.socket.try_send_to(packet, dest);
        s.sent.add(1);
        if let Err(e) = result
            && e.kind() != std::io::ErrorKind::WouldBlock
        {
            tracing::debug!(%e, %dest, "RTP send failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::Codec;
    use crate::media::codec::{self, OpusParams};
    use crate::media::prompts::PromptId;
    use crate::media::rtp;
    use tokio::net::UdpSocket;

    /// A leg sending `codec` to a socket of the test's own.
    async fn leg_to_receiver(codec: Codec) -> (Leg, UdpSocket) {
        let receiver = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let socket = Arc::new(MediaSocket::bind("127.0.0.1:0").unwrap());
        let to = Latch::new(Some(receiver.local_addr().unwrap()), Vec::new());
        let leg = Leg::new(
            socket,
            Outbound::new(codec, codec.payload_type(), &mut rand::rng()),
            to,
        );
        (leg, receiver)
    }

    async fn payload_received(receiver: &UdpSocket) -> Vec<u8> {
        let mut buf = [0u8; 1500];
        let wait = std::time::Duration::from_secs(5);
        let len = tokio::time::timeout(wait, receiver.recv(&mut buf))
            .await
            .expect("a packet within 5 s")
            .unwrap();
        rtp::read(&buf[..len]).unwrap().1.to_vec()
    }

    fn prompts() -> PromptSet {
        let tone = (0..700).map(|n| ((n as f32 * 0.3).sin() * 8000.0) as i16);
        PromptSet::from_samples([(PromptId::Welcome, tone.collect())])
    }

    /// What a fresh Opus encoder (a leg's own, before it sent anything)
    /// makes of `pcm`.
    fn fresh_opus(pcm: &[i16]) -> Vec<u8> {
        let mut payload = Vec::new();
        codec::encoder(Codec::Opus, OpusParams::default()).encode(pcm, &mut payload);
        payload
    }

    #[tokio::test]
    async fn prompt_frames_go_out_as_the_payloads_encoded_once() {
        let (leg, receiver) = leg_to_receiver(Codec::Opus).await;
        let prompts = prompts();
        let at = PromptFrame {
            prompt: PromptId::Welcome,
            index: 2,
        };
        // Built before the call plays it, as the gateway does at start-up.
        let table = prompts.encoded(leg_encoding(&leg)).unwrap();
        let shared = table.frame(at).unwrap().to_vec();
        assert_ne!(
            shared,
            fresh_opus(prompts.frame_pcm(at)),
            "the table's payload is not what the leg would encode itself"
        );
        leg.send_prompt(&prompts, Some(at));
        leg.send_prompt(&prompts, None);
        assert_eq!(payload_received(&receiver).await, shared);
        assert_eq!(payload_received(&receiver).await, table.silence());
    }

    #[tokio::test]
    async fn a_call_does_not_wait_for_a_table_not_built_yet() {
        let (leg, receiver) = leg_to_receiver(Codec::Opus).await;
        let prompts = prompts();
        let encoding = leg_encoding(&leg);
        let at = |index| PromptFrame {
            prompt: PromptId::Welcome,
            index,
        };
        leg.send_prompt(&prompts, Some(at(0)));
        assert_eq!(
            payload_received(&receiver).await,
            fresh_opus(prompts.frame_pcm(at(0))),
            "no table yet: the leg encodes the frame itself"
        );
        // The first send started the build; this waits for it (or builds).
        let table = prompts.encoded(encoding).unwrap();
        assert!(
            prompts.encoded_ready(encoding).is_some(),
            "built once for all"
        );
        leg.send_prompt(&prompts, Some(at(1)));
        assert_eq!(
            payload_received(&receiver).await,
            table.frame(at(1)).unwrap()
        );
    }

    #[tokio::test]
    async fn g722_prompt_frames_are_encoded_by_the_legs_own_encoder() {
        let (leg, receiver) = leg_to_receiver(Codec::G722).await;
        let prompts = prompts();
        let mut own = codec::encoder(Codec::G722, OpusParams::default());
        let mut expected = Vec::new();
        for index in 0..3 {
            let at = PromptFrame {
                prompt: PromptId::Welcome,
                index,
            };
            leg.send_prompt(&prompts, Some(at));
            own.encode(prompts.frame_pcm(at), &mut expected);
            assert_eq!(payload_received(&receiver).await, expected, "frame {index}");
        }
        leg.send_prompt(&prompts, None);
        own.encode(&[], &mut expected);
        assert_eq!(payload_received(&receiver).await, expected, "silence");
    }

    fn leg_encoding(leg: &Leg) -> crate::media::codec::Encoding {
        leg.state.lock().unwrap().outbound.encoding()
    }
}
