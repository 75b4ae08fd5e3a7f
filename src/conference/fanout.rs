//! Encodes each distinct (mix, codec) pair of a tick once and sends every
//! member its payload; a member hearing an announcement of its own (or the
//! one a chime is about) gets its own frame instead.

use std::collections::HashMap;
use std::sync::Arc;

use super::member::Member;
use super::mixer::{self, Tick};
use super::room::{ChimeFrame, overlay};
use crate::media::Codec;
use crate::media::codec::{self, Encoder, OpusParams};
use crate::media::pcm::{NARROW_FRAME, PCM_FRAME};

/// Which mix an encoder serves: the shared one, one talker's own, or the
/// waiting room's music.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum MixKey {
    Shared,
    Talker(u64),
    Music,
}

/// Encodes each distinct (mix, codec) pair of a tick once and sends every
/// member the payload for its pair. Encoders keep their state (Opus) from
/// tick to tick per (mix, codec), and are dropped when their mix goes
/// (a talker falls silent or leaves). Buffers are kept across ticks.
#[derive(Default)]
pub(super) struct Fanout {
    codecs: Vec<Option<Codec>>,
    plan: Vec<(usize, Option<Codec>)>,
    payloads: Vec<Vec<u8>>,
    /// Per plan entry, the 8 kHz PCM its payload was encoded from (G.711).
    narrows: Vec<Option<[i16; NARROW_FRAME]>>,
    encoders: HashMap<(MixKey, Codec), Box<dyn Encoder>>,
    used: Vec<(MixKey, Codec)>,
}

impl Fanout {
    /// Returns the number of encodes done. `music` is the index of the
    /// hold music in `tick.mixes`, if anyone is waiting; `chime` is added
    /// to every other mix before it is encoded.
    pub(super) fn send(
        &mut self,
        members: &[Arc<Member>],
        tick: &Tick,
        music: Option<usize>,
        chime: Option<&ChimeFrame>,
    ) -> usize {
        self.codecs.clear();
        self.codecs.extend(members.iter().map(|m| m.leg.codec()));
        mixer::encode_plan(&tick.heard, &self.codecs, &mut self.plan);
        self.payloads.resize_with(self.plan.len(), Vec::new);
        self.narrows.clear();
        self.narrows.resize(self.plan.len(), None);
        self.used.clear();
        for (((mix, codec), payload), narrow) in self
            .plan
            .iter()
            .zip(&mut self.payloads)
            .zip(&mut self.narrows)
        {
            let (Some(codec), Some(mixed)) = (codec, tick.mixes.get(*mix)) else {
                continue;
            };
            let mut frame = *mixed;
            if let Some(chime) = chime.filter(|_| Some(*mix) != music) {
                overlay(&mut frame, &chime.frame);
            }
            // A talker's own mix is keyed by that talker; the rest share one.
            let key = if *mix == mixer::SHARED {
                MixKey::Shared
            } else if Some(*mix) == music {
                MixKey::Music
            } else {
                tick.heard
                    .iter()
                    .position(|h| h == mix)
                    .and_then(|i| members.get(i))
                    .map_or(MixKey::Shared, |m| MixKey::Talker(m.call.0))
            };
            let encoder = self
                .encoders
                .entry((key, *codec))
                .or_insert_with(|| codec::encoder(*codec, OpusParams::default()));
            encoder.encode(&frame, payload);
            *narrow = encoder.narrow_pcm().map(|pcm| {
                let mut f = [0; NARROW_FRAME];
                let n = pcm.len().min(NARROW_FRAME);
                f[..n].copy_from_slice(&pcm[..n]);
                f
            });
            self.used.push((key, *codec));
        }
        let encodes = self.used.len();
        let used = &self.used;
        self.encoders.retain(|k, _| used.contains(k));
        for ((member, mix), codec) in members.iter().zip(&tick.heard).zip(&self.codecs) {
            // A member hearing an announcement gets its own encode; in the
            // waiting room it is said over silence, not over the music. So
            // does the member a chime is about, for as long as it plays.
            let in_room = Some(*mix) != music;
            let base = if in_room {
                tick.mixes.get(*mix).copied()
            } else {
                Some([0; PCM_FRAME])
            };
            let chime = chime.filter(|_| in_room);
            let spared = chime.is_some_and(|c| c.except == member.call.0);
            let at = self.plan.iter().position(|p| *p == (*mix, *codec));
            let announcing = member.announcing();
            // A member whose mix was encoded at 8 kHz (G.711) hears its
            // announcement added at that rate to the PCM the mix was encoded
            // from (chime and all), or to silence in the waiting room: no
            // filter of its own.
            let narrow = at
                .and_then(|i| self.narrows.get(i).copied().flatten())
                .filter(|_| announcing && !spared)
                .map(|mixed| if in_room { mixed } else { [0; NARROW_FRAME] });
            if let Some(mut frame) = narrow {
                member.overlay_announcement_narrow(&mut frame);
                member.leg.send_narrow(&frame);
                continue;
            }
            // The chime is added only to a frame that is encoded for this
            // member alone; the others get it in the shared payload.
            if (announcing || spared)
                && let Some(mut frame) = base
            {
                member.overlay_announcement(&mut frame);
                if let Some(chime) = chime.filter(|_| !spared) {
                    overlay(&mut frame, &chime.frame);
                }
                member.leg.send_frame(&frame);
                continue;
            }
            if let Some(payload) = at.and_then(|i| self.payloads.get(i)) {
                member.leg.send_payload(payload);
            }
        }
        encodes
    }
}
