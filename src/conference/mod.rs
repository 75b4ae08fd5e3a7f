//! Conference rooms: membership and the room's audio on its own clock.
//!
//! A room exists while it has members. Its task ticks every 20 ms
//! (`tokio::time::interval`, anchored, so it does not drift): it takes one
//! frame from each member's inbox, picks the active speakers and makes the
//! mixes ([`mixer`], [`speakers`]), encodes each distinct (mix, codec)
//! pair once and sends every member its packet through the member's
//! [`Leg`], which keeps one SSRC and continuous sequence numbers and
//! timestamps after the prompts.
//!
//! Each member's audio waits in its own adaptive jitter buffer
//! ([`crate::media::jitter`]) until the room's tick takes a frame. A lost
//! Opus frame is decoded from the in-band FEC of the packet after it when
//! that packet is already buffered; otherwise a lost frame is concealed
//! (Opus PLC, or the last frame repeated at half the level each time),
//! then silence.
//!
//! Who is in and who waits is the [`roster`]'s decision; the room applies
//! it. Members in the waiting room are not mixed: they hear the hold music
//! (one position per room, encoded once per codec like any mix), after a
//! spoken "the host has not joined yet". Joining and leaving members are
//! signalled to those in the room with a chime, mixed into the room's mixes
//! so it costs no encode of its own (at a busy top of the hour a room hears
//! chimes nearly all the time); a member alone in the room
//! hears "you are the only person in this conference". Each member's
//! [`Presence`] is published on a watch channel, so its call sees at once
//! that it went in, back to waiting, or that the room ended.

pub mod keypad;
pub mod mixer;
pub mod roster;
pub mod speakers;
pub mod tones;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::MissedTickBehavior;

use tokio::sync::watch;

use crate::media::Codec;
use crate::media::announcement::{Announcement, Rate};
use crate::media::codec::{self, Decoder, Encoder, OpusParams};
use crate::media::jitter::{Jitter, Playout};
use crate::media::leg::Leg;
use crate::media::pcm::{NARROW_FRAME, PCM_FRAME};
use crate::media::prompts::{PromptId, PromptSet};
use crate::media::rtp::Header;
use crate::sip::endpoint::CallRef;
use mixer::{Frame, Input, Mixer, Tick};
pub use roster::{AdmitError, Policy, Presence, Refusal, Role};
use roster::{Change, Roster};

/// Payload buffers a member keeps for reuse (the jitter buffer's most).
const SPARE_PAYLOADS: usize = 16;

/// Lost frames in a row that are concealed before the member goes silent.
pub const CONCEAL_FRAMES: u8 = 3;

/// A member's inbound audio: the jitter buffer (payloads, decoded in
/// order as they are played, so Opus's decoder state and its loss
/// concealment stay right), the decoder and the concealment state.
struct Inbound {
    jitter: Jitter<Vec<u8>>,
    /// Payload buffers played and kept for reuse: no allocation per
    /// packet once the buffer has warmed up.
    spare: Vec<Vec<u8>>,
    decoder: Box<dyn Decoder>,
    pcm: Vec<i16>,
    last: Option<Frame>,
    concealed: u8,
}

impl std::fmt::Debug for Inbound {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inbound")
            .field("jitter", &self.jitter.stats())
            .field("concealed", &self.concealed)
            .finish_non_exhaustive()
    }
}

/// One caller in a room.
#[derive(Debug)]
pub struct Member {
    pub call: CallRef,
    pub role: Role,
    /// The caller's language, for what the room says to it.
    prompts: PromptSet,
    presence: watch::Sender<Presence>,
    leg: Arc<Leg>,
    inbound: Mutex<Inbound>,
    /// A muted member is heard by no one (it still hears the room).
    muted: std::sync::atomic::AtomicBool,
    /// A member that put the room on hold is not heard either (its phone
    /// may be playing its own hold music) and hears nothing.
    held: std::sync::atomic::AtomicBool,
    /// An announcement for this member alone, over its mix: samples and
    /// how far it has played.
    announcement: Mutex<Option<(Announcement, usize)>>,
}

impl Member {
    /// A member whose far end sends `codec` (at its RTP clock rate).
    pub fn new(
        call: CallRef,
        role: Role,
        prompts: PromptSet,
        leg: Arc<Leg>,
        codec: Codec,
    ) -> Arc<Member> {
        Arc::new(Member {
            call,
            role,
            prompts,
            presence: watch::Sender::new(Presence::InRoom),
            leg,
            inbound: Mutex::new(Inbound {
                jitter: Jitter::new(codec.clock_rate()),
                spare: Vec::with_capacity(SPARE_PAYLOADS),
                decoder: codec::decoder(codec),
                pcm: Vec::with_capacity(PCM_FRAME),
                last: None,
                concealed: 0,
            }),
            muted: std::sync::atomic::AtomicBool::new(false),
            held: std::sync::atomic::AtomicBool::new(false),
            announcement: Mutex::new(None),
        })
    }

    /// Where the member is now.
    pub fn presence(&self) -> Presence {
        *self.presence.borrow()
    }

    /// Follows the member's presence (it went in, back to waiting, ended).
    pub fn watch(&self) -> watch::Receiver<Presence> {
        self.presence.subscribe()
    }

    fn set_presence(&self, presence: Presence) {
        self.presence.send_replace(presence);
    }

    /// Plays one of the member's prompts to it alone.
    pub fn say(&self, prompt: PromptId) {
        self.announce(self.prompts.shared(prompt));
    }

    /// Plays `said` to this member alone, over the room's mix; replaces an
    /// announcement still playing.
    pub fn announce(&self, said: Announcement) {
        if let Ok(mut a) = self.announcement.lock() {
            *a = Some((said, 0));
        }
    }

    /// Whether an announcement is playing to this member.
    fn announcing(&self) -> bool {
        self.announcement.lock().is_ok_and(|a| a.is_some())
    }

    /// Adds the next 20 ms of the announcement into `frame`; false when
    /// there is none (the shared payload can be sent as it is).
    fn overlay_announcement(&self, frame: &mut Frame) -> bool {
        self.next_announcement(|said, at| said.overlay(at, Rate::Wide, &mut frame[..]))
    }

    /// As [`overlay_announcement`](Self::overlay_announcement), at 8 kHz
    /// into `frame`, from the announcement's 8 kHz copy.
    fn overlay_announcement_narrow(&self, frame: &mut [i16; NARROW_FRAME]) -> bool {
        self.next_announcement(|said, at| said.overlay(at, Rate::Narrow, frame))
    }

    /// Hands `add` the announcement and where it is (in 16 kHz samples),
    /// then moves on 20 ms; false when there is none.
    fn next_announcement(&self, add: impl FnOnce(&Announcement, usize)) -> bool {
        let Ok(mut guard) = self.announcement.lock() else {
            return false;
        };
        let Some((said, at)) = guard.as_mut() else {
            return false;
        };
        add(said, *at);
        *at += PCM_FRAME;
        if *at >= said.len() {
            *guard = None;
        }
        true
    }

    /// One 20 ms packet of the caller's audio (its payload) arrived at `now`.
    pub fn push_audio(&self, now: std::time::Instant, header: &Header, payload: &[u8]) {
        if let Ok(mut i) = self.inbound.lock() {
            let mut buffer = i.spare.pop().unwrap_or_default();
            buffer.clear();
            buffer.extend_from_slice(payload);
            i.jitter
                .push(now, header.ssrc, header.sequence, header.timestamp, buffer);
        }
    }

    /// A packet of the caller's stream that is not audio (RFC 4733) arrived.
    pub fn push_not_audio(&self, header: &Header) {
        if let Ok(mut i) = self.inbound.lock() {
            i.jitter.push_not_audio(header.ssrc, header.sequence);
        }
    }

    /// This tick's frame: played, concealed, or none.
    fn take_frame(&self) -> Option<Frame> {
        let mut guard = self.inbound.lock().ok()?;
        let i = &mut *guard;
        let played = i.jitter.pop();
        // A lost Opus frame comes back from the next packet's FEC when it is here.
        if matches!(played, Playout::Lost)
            && let Some(next) = i.jitter.peek_next()
            && i.decoder.recover(next, &mut i.pcm)
        {
            i.jitter.note_recovered();
            let f = codec::padded(&i.pcm);
            i.concealed = 0;
            i.last = Some(f);
            return Some(f).filter(|_| !self.is_muted() && !self.is_held());
        }
        let frame = match played {
            Playout::Frame(payload) => {
                i.decoder.decode(&payload, &mut i.pcm);
                if i.spare.len() < SPARE_PAYLOADS {
                    i.spare.push(payload);
                }
                let f = codec::padded(&i.pcm);
                i.concealed = 0;
                i.last = Some(f);
                Some(f)
            }
            // A loss, or the buffering that follows an underrun mid-stream:
            // the codec's own concealment (Opus PLC), else the last frame
            // repeated at half the level each time.
            Playout::Lost | Playout::Buffering
                if i.last.is_some() && i.concealed < CONCEAL_FRAMES =>
            {
                i.concealed += 1;
                if i.decoder.conceal(&mut i.pcm) {
                    Some(codec::padded(&i.pcm))
                } else {
                    let fade = i.concealed;
                    i.last.map(|mut f| {
                        f.iter_mut().for_each(|s| *s >>= fade);
                        f
                    })
                }
            }
            Playout::Silence => {
                i.concealed = CONCEAL_FRAMES;
                None
            }
            Playout::Lost | Playout::Buffering => None,
        };
        frame.filter(|_| !self.is_muted() && !self.is_held())
    }

    /// Plays this tick's packet into nothing (a waiting member is not
    /// heard): the buffer stays current, nothing is decoded.
    fn discard_frame(&self) {
        if let Ok(mut guard) = self.inbound.lock() {
            let i = &mut *guard;
            if let Playout::Frame(payload) = i.jitter.pop()
                && i.spare.len() < SPARE_PAYLOADS
            {
                i.spare.push(payload);
            }
        }
    }

    /// The far end now sends `codec`: a fresh jitter buffer and decoder.
    pub fn set_codec(&self, codec: Codec) {
        if let Ok(mut i) = self.inbound.lock() {
            i.jitter = Jitter::new(codec.clock_rate());
            i.decoder = codec::decoder(codec);
            i.last = None;
        }
    }

    pub fn is_held(&self) -> bool {
        self.held.load(std::sync::atomic::Ordering::Relaxed)
    }

    pub fn set_held(&self, held: bool) {
        self.held.store(held, std::sync::atomic::Ordering::Relaxed);
    }

    /// The member's jitter-buffer counters.
    pub fn jitter_stats(&self) -> Option<crate::media::jitter::Stats> {
        self.inbound.lock().ok().map(|i| i.jitter.stats())
    }

    pub fn is_muted(&self) -> bool {
        self.muted.load(std::sync::atomic::Ordering::Relaxed)
    }

    pub fn set_muted(&self, muted: bool) {
        self.muted
            .store(muted, std::sync::atomic::Ordering::Relaxed);
    }
}

#[derive(Debug, Default)]
struct Room {
    members: Vec<Arc<Member>>,
    roster: Roster,
    /// Where the hold music is (one position for the whole waiting room).
    music_at: usize,
    /// The entry or exit chime playing to everyone in the room.
    chime: Option<Chime>,
}

/// A chime heard by everyone in the room but the member it is about (the
/// newcomer hears the count instead). It is added to the room's mixes
/// before they are encoded, so the room encodes it once per mix and codec.
/// A newer chime replaces one still playing.
#[derive(Debug)]
struct Chime {
    samples: Arc<[i16]>,
    at: usize,
    except: u64,
}

/// This tick's 20 ms of the room's chime, and whom it is not for.
#[derive(Debug)]
struct ChimeFrame {
    frame: Frame,
    except: u64,
}

impl Chime {
    /// The next 20 ms (the last one padded with silence); `None` once played.
    fn next_frame(&mut self) -> Option<ChimeFrame> {
        let chunk = self.samples.get(self.at..).filter(|c| !c.is_empty())?;
        let mut frame = [0; PCM_FRAME];
        let n = chunk.len().min(PCM_FRAME);
        frame[..n].copy_from_slice(&chunk[..n]);
        self.at += n;
        Some(ChimeFrame {
            frame,
            except: self.except,
        })
    }
}

/// Adds `over` into the start of `frame`, saturating.
fn overlay(frame: &mut [i16], over: &[i16]) {
    for (f, s) in frame.iter_mut().zip(over) {
        *f = f.saturating_add(*s);
    }
}

impl Room {
    fn member(&self, key: u64) -> Option<&Arc<Member>> {
        self.members.iter().find(|m| m.call.0 == key)
    }

    /// Plays `samples` to every member in the room proper but `except`,
    /// in the room's mixes.
    fn chime_in_room(&mut self, except: u64, samples: Arc<[i16]>) {
        self.chime = Some(Chime {
            samples,
            at: 0,
            except,
        });
    }

    /// This tick's part of the chime, if one is playing.
    fn next_chime_frame(&mut self) -> Option<ChimeFrame> {
        let frame = self.chime.as_mut().and_then(Chime::next_frame);
        if frame.is_none() {
            self.chime = None;
        }
        frame
    }

    /// Publishes the roster's changes and says what each means: an entry
    /// chime to those already in, the waiting-room prompt to those sent
    /// back to wait. (An ended member's call hangs itself up.)
    fn apply(&mut self, changes: &[Change]) {
        for (key, presence) in changes {
            let Some(m) = self.member(*key).cloned() else {
                continue;
            };
            m.set_presence(*presence);
            match presence {
                Presence::InRoom => self.entered(&m),
                Presence::WaitingForHost => m.say(PromptId::WaitingForHost),
                Presence::WaitingForAdmission => m.say(PromptId::WaitingForAdmission),
                Presence::Ended => {}
            }
        }
    }

    /// `m` went into the room proper: it hears how many are in, the
    /// others a chime.
    fn entered(&mut self, m: &Member) {
        m.announce(self.count_for(m));
        if self.roster.in_room() > 1 {
            self.chime_in_room(m.call.0, tones::entry());
        }
    }

    /// "You are the only person…" or "there are N participants…", in `m`'s
    /// language.
    fn count_for(&self, m: &Member) -> Announcement {
        match self.roster.in_room() {
            0 | 1 => m.prompts.shared(PromptId::OnlyPerson),
            n => m.prompts.count_sentence(n),
        }
    }
}

/// Every live room of this gateway.
#[derive(Clone, Debug)]
pub struct Rooms {
    inner: Arc<Mutex<HashMap<i64, Arc<Mutex<Room>>>>>,
    max_talkers: usize,
    /// The waiting room's music, 16 kHz, looped.
    music: Arc<[i16]>,
}

impl Rooms {
    /// Rooms that mix at most `max_talkers` members at once and play
    /// `music` (16 kHz) to those waiting.
    pub fn new(max_talkers: usize, music: Arc<[i16]>) -> Rooms {
        Rooms {
            inner: Arc::default(),
            max_talkers,
            music,
        }
    }

    /// Adds `member` to room `room_id` under `policy` (the room's settings
    /// now), starting the room's mixer if it was empty: it goes in, or
    /// waits, or is refused (changing nothing). Call inside a tokio runtime.
    pub fn join(
        &self,
        room_id: i64,
        member: Arc<Member>,
        policy: Policy,
    ) -> Result<Presence, Refusal> {
        let Ok(mut rooms) = self.inner.lock() else {
            return Err(Refusal::Full);
        };
        let room = rooms.entry(room_id).or_insert_with(|| {
            let room = Arc::new(Mutex::new(Room::default()));
            let mixer = Mixer::new(self.max_talkers);
            tokio::spawn(run_room(self.clone(), room_id, room.clone(), mixer));
            room
        });
        let Ok(mut room) = room.lock() else {
            return Err(Refusal::Full);
        };
        room.roster.set_policy(policy);
        let mut changes = Vec::new();
        let joined = room.roster.join(member.call.0, member.role, &mut changes);
        let presence = match joined {
            Ok(p) => p,
            Err(refusal) => {
                if room.roster.is_empty() {
                    drop(room);
                    rooms.remove(&room_id);
                }
                return Err(refusal);
            }
        };
        member.set_presence(presence);
        room.members.push(member.clone());
        room.apply(&changes);
        room.apply(&[(member.call.0, presence)]);
        Ok(presence)
    }

    /// Removes `call` (an exit chime for those in the room, if it was in);
    /// the room disappears with its last member.
    pub fn leave(&self, room_id: i64, call: CallRef) {
        let Ok(mut rooms) = self.inner.lock() else {
            return;
        };
        let empty = match rooms.get(&room_id).map(|r| r.lock()) {
            Some(Ok(mut room)) => {
                let was_in = room.roster.presence(call.0) == Some(Presence::InRoom);
                let mut changes = Vec::new();
                room.roster.leave(call.0, &mut changes);
                room.members.retain(|m| m.call != call);
                if was_in {
                    room.chime_in_room(call.0, tones::exit());
                }
                room.apply(&changes);
                room.members.is_empty()
            }
            _ => false,
        };
        if empty {
            rooms.remove(&room_id);
        }
    }

    /// Lets a waiting member of `room_id` in.
    pub fn admit(&self, room_id: i64, call: CallRef) -> Result<(), AdmitError> {
        let rooms = self.inner.lock().map_err(|_| AdmitError::NotFound)?;
        let room = rooms.get(&room_id).ok_or(AdmitError::NotFound)?;
        let mut room = room.lock().map_err(|_| AdmitError::NotFound)?;
        room.roster.admit(call.0)?;
        room.apply(&[(call.0, Presence::InRoom)]);
        Ok(())
    }

    fn with_room<R>(&self, room_id: i64, f: impl FnOnce(&mut Room) -> R) -> Option<R> {
        let rooms = self.inner.lock().ok()?;
        let mut room = rooms.get(&room_id)?.lock().ok()?;
        Some(f(&mut room))
    }

    /// Tells `call` how many are in the room (`*#`).
    pub fn say_count(&self, room_id: i64, call: CallRef) {
        self.with_room(room_id, |room| {
            if let Some(m) = room.member(call.0) {
                m.announce(room.count_for(m));
            }
        });
    }

    /// Locks the room to new participants, or unlocks it; returns whether it
    /// is locked now.
    pub fn toggle_lock(&self, room_id: i64) -> Option<bool> {
        self.with_room(room_id, |room| {
            let locked = !room.roster.is_locked();
            room.roster.set_locked(locked);
            locked
        })
    }

    /// Locks or unlocks a live room; `None` when nobody is in it.
    pub fn set_locked(&self, room_id: i64, locked: bool) -> Option<()> {
        self.with_room(room_id, |room| room.roster.set_locked(locked))
    }

    /// Mutes every participant (hosts keep talking), or unmutes them all when
    /// none is left unmuted; each hears its new state. Returns whether they
    /// are muted now.
    pub fn toggle_mute_all(&self, room_id: i64) -> Option<bool> {
        self.with_room(room_id, |room| {
            let participants = || room.members.iter().filter(|m| m.role == Role::Participant);
            let mute = participants().any(|m| !m.is_muted());
            for m in participants() {
                if m.is_muted() != mute {
                    m.set_muted(mute);
                    m.say(if mute {
                        PromptId::Muted
                    } else {
                        PromptId::Unmuted
                    });
                }
            }
            mute
        })
    }

    /// Members of the room, waiting ones included.
    pub fn members(&self, room_id: i64) -> usize {
        let Ok(rooms) = self.inner.lock() else {
            return 0;
        };
        rooms
            .get(&room_id)
            .and_then(|r| r.lock().ok().map(|r| r.members.len()))
            .unwrap_or(0)
    }

    pub fn room_count(&self) -> usize {
        self.inner.lock().map_or(0, |r| r.len())
    }

    fn is_live(&self, room_id: i64, room: &Arc<Mutex<Room>>) -> bool {
        self.inner
            .lock()
            .is_ok_and(|rooms| rooms.get(&room_id).is_some_and(|r| Arc::ptr_eq(r, room)))
    }
}

/// The next 20 ms of `music` from `at`, looping.
fn music_frame(music: &[i16], at: &mut usize) -> Frame {
    let mut frame = [0i16; PCM_FRAME];
    if music.is_empty() {
        return frame;
    }
    for s in frame.iter_mut() {
        *at %= music.len();
        *s = music[*at];
        *at += 1;
    }
    frame
}

/// The room's 20 ms clock; ends when the room has been removed.
async fn run_room(rooms: Rooms, room_id: i64, room: Arc<Mutex<Room>>, mut mixer: Mixer) {
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    tick.set_missed_tick_behavior(MissedTickBehavior::Burst);
    let mut members: Vec<Arc<Member>> = Vec::new();
    let mut waiting: Vec<Arc<Member>> = Vec::new();
    let mut inputs: Vec<Input> = Vec::new();
    let mut out = Tick::default();
    let mut fanout = Fanout::default();
    let tick_seconds = metrics::histogram!("dialgate_mixer_tick_seconds");
    let encodes = metrics::counter!("dialgate_mixer_encodes_total");
    tracing::debug!(room_id, "room mixer started");
    loop {
        tick.tick().await;
        if !rooms.is_live(room_id, &room) {
            break;
        }
        let started = std::time::Instant::now();
        members.clear();
        waiting.clear();
        let mut music = None;
        let mut chime = None;
        if let Ok(mut r) = room.lock() {
            chime = r.next_chime_frame();
            for m in &r.members {
                match m.presence() {
                    Presence::InRoom => members.push(m.clone()),
                    p if p.is_waiting() => waiting.push(m.clone()),
                    _ => {}
                }
            }
            if !waiting.is_empty() {
                let r = &mut *r;
                music = Some(music_frame(&rooms.music, &mut r.music_at));
            }
        }
        inputs.clear();
        inputs.extend(members.iter().map(|m| Input {
            key: m.call.0,
            frame: m.take_frame(),
            muted: m.is_muted() || m.is_held(),
        }));
        mixer.tick(&inputs, &mut out);
        // The waiting room hears the music, not the room (nor is heard).
        let music_mix = music.map(|frame| {
            out.mixes.push(frame);
            let at = out.mixes.len() - 1;
            for m in waiting.drain(..) {
                m.discard_frame();
                out.heard.push(at);
                members.push(m);
            }
            at
        });
        let done = fanout.send(&members, &out, music_mix, chime.as_ref());
        encodes.increment(done as u64);
        tick_seconds.record(started.elapsed().as_secs_f64());
    }
    tracing::debug!(room_id, "room mixer stopped");
}

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
struct Fanout {
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
    fn send(
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::rtp::{Latch, Outbound};
    use crate::media::socket::MediaSocket;

    async fn member(call: u64) -> Arc<Member> {
        member_as(call, Role::Participant).await
    }

    async fn member_as(call: u64, role: Role) -> Arc<Member> {
        member_with(call, role, Codec::Pcmu).await
    }

    async fn member_with(call: u64, role: Role, codec: Codec) -> Arc<Member> {
        let socket = Arc::new(MediaSocket::bind("127.0.0.1:0").unwrap());
        let leg = Arc::new(Leg::new(
            socket,
            Outbound::new(codec, codec.payload_type()),
            Latch::new(None, Vec::new()),
        ));
        let prompts =
            PromptSet::from_samples(PromptId::ALL.map(|id| (id, vec![id as i16 + 1; 10])));
        Member::new(CallRef(call), role, prompts, leg, codec)
    }

    /// The announcement queued for `m`, as the prompt it is.
    fn heard(m: &Member) -> Option<i16> {
        let mut frame = [0; PCM_FRAME];
        m.overlay_announcement(&mut frame).then_some(frame[0])
    }

    fn said(id: PromptId) -> Option<i16> {
        Some(id as i16 + 1)
    }

    #[tokio::test]
    async fn room_empties_itself_when_the_last_member_leaves() {
        let rooms = Rooms::new(3, Arc::from(vec![]));
        let open = Policy::default();
        assert_eq!(rooms.join(1, member(1).await, open), Ok(Presence::InRoom));
        assert_eq!(rooms.join(1, member(2).await, open), Ok(Presence::InRoom));
        rooms.leave(1, CallRef(1));
        assert_eq!(rooms.members(1), 1);
        rooms.leave(1, CallRef(2));
        assert_eq!(rooms.room_count(), 0);
    }

    #[tokio::test]
    async fn the_waiting_room_is_told_why_and_follows_the_host() {
        let rooms = Rooms::new(3, Arc::from(vec![]));
        let policy = Policy {
            wait_for_host: true,
            end_with_host: true,
            ..Policy::default()
        };
        let p = member(1).await;
        let mut seen = p.watch();
        assert_eq!(
            rooms.join(7, p.clone(), policy),
            Ok(Presence::WaitingForHost)
        );
        assert_eq!(heard(&p), said(PromptId::WaitingForHost));
        let h = member_as(2, Role::Host).await;
        assert_eq!(rooms.join(7, h.clone(), policy), Ok(Presence::InRoom));
        assert!(seen.has_changed().unwrap());
        assert_eq!(*seen.borrow_and_update(), Presence::InRoom);
        rooms.leave(7, CallRef(2));
        assert_eq!(*seen.borrow_and_update(), Presence::Ended);
        rooms.leave(7, CallRef(1));
        assert_eq!(rooms.room_count(), 0);
    }

    #[tokio::test]
    async fn host_mutes_everyone_else_and_locks_the_room() {
        let rooms = Rooms::new(3, Arc::from(vec![]));
        let open = Policy::default();
        let h = member_as(1, Role::Host).await;
        let (p, q) = (member(2).await, member(3).await);
        for m in [&h, &p, &q] {
            rooms.join(4, m.clone(), open).unwrap();
        }
        // The last to join is told how many are in: "there are …".
        assert_eq!(heard(&q), said(PromptId::ThereAre));
        q.set_muted(true);
        assert_eq!(rooms.toggle_mute_all(4), Some(true));
        assert!(p.is_muted() && q.is_muted() && !h.is_muted());
        assert_eq!(heard(&p), said(PromptId::Muted));
        assert_ne!(heard(&q), said(PromptId::Muted), "q was muted already");
        assert_eq!(rooms.toggle_mute_all(4), Some(false));
        assert!(!p.is_muted() && !q.is_muted());
        assert_eq!(rooms.toggle_lock(4), Some(true));
        assert_eq!(rooms.join(4, member(5).await, open), Err(Refusal::Locked));
        assert_eq!(rooms.toggle_lock(4), Some(false));
        assert_eq!(rooms.toggle_lock(99), None, "no such room");
    }

    #[tokio::test]
    async fn a_refused_caller_leaves_no_room_behind() {
        let rooms = Rooms::new(3, Arc::from(vec![]));
        let none = Policy {
            max_members: Some(0),
            ..Policy::default()
        };
        assert_eq!(rooms.join(1, member(1).await, none), Err(Refusal::Full));
        assert_eq!(rooms.room_count(), 0);
    }

    #[test]
    fn music_loops_without_a_gap() {
        let music: Vec<i16> = (0..300).collect();
        let mut at = 0;
        let a = music_frame(&music, &mut at);
        let b = music_frame(&music, &mut at);
        assert_eq!(a[0], 0);
        // 320 samples a frame: b starts at 20 and wraps after 280 samples.
        assert_eq!(b[279], 299);
        assert_eq!(b[280], 0, "wraps to the start");
        assert!(music_frame(&[], &mut at).iter().all(|s| *s == 0));
    }

    /// A PCMU payload of a constant level (μ-law: the decoded value is close).
    fn pcmu(level: i16) -> Vec<u8> {
        let mut out = Vec::new();
        crate::media::g711::encode(crate::media::g711::Law::Mu, &[level; 160], &mut out);
        out
    }

    /// What `level` sounds like after μ-law.
    fn lvl(level: i16) -> i16 {
        let mut pcm = Vec::new();
        crate::media::g711::decode(crate::media::g711::Law::Mu, &pcmu(level), &mut pcm);
        pcm[0]
    }

    /// A frame's level once the 8 → 16 kHz filter has settled: its last sample.
    fn steady(f: Frame) -> i16 {
        f[PCM_FRAME - 1]
    }

    fn near(got: Option<i16>, want: i16) -> bool {
        got.is_some_and(|g| g.abs_diff(want) <= 2)
    }

    fn header(seq: u16) -> Header {
        Header {
            payload_type: 0,
            marker: false,
            sequence: seq,
            timestamp: u32::from(seq) * 160,
            ssrc: 42,
        }
    }

    #[tokio::test]
    async fn a_muted_member_contributes_nothing_to_the_mix() {
        let m = member(1).await;
        let t0 = std::time::Instant::now();
        m.push_audio(t0, &header(1), &pcmu(500));
        m.set_muted(true);
        assert_eq!(m.take_frame(), None);
        m.set_muted(false);
        m.push_audio(t0, &header(2), &pcmu(600));
        let got = m.take_frame().map(steady);
        assert!(near(got, lvl(600)), "{got:?} vs {}", lvl(600));
    }

    #[tokio::test]
    async fn a_lost_frame_is_concealed_fading_then_silence() {
        let m = member(1).await;
        let t0 = std::time::Instant::now();
        m.push_audio(t0, &header(1), &pcmu(800));
        let played = m.take_frame().map(steady);
        assert!(near(played, lvl(800)), "{played:?}");
        let concealed: Vec<Option<i16>> = (0..4).map(|_| m.take_frame().map(steady)).collect();
        let l = played.unwrap_or_default();
        assert_eq!(
            concealed,
            vec![Some(l >> 1), Some(l >> 2), Some(l >> 3), None]
        );
        assert_eq!(m.jitter_stats().map(|s| s.underruns), Some(1));
    }

    #[tokio::test]
    async fn a_lost_opus_frame_is_decoded_from_the_next_packets_fec() {
        let m = member_with(1, Role::Participant, Codec::Opus).await;
        let mut enc = codec::encoder(Codec::Opus, OpusParams::default());
        let t0 = std::time::Instant::now();
        let mut payload = Vec::new();
        let mut frames: Vec<Option<Frame>> = Vec::new();
        for seq in 1..=20u16 {
            let pcm: Vec<i16> = (0..320)
                .map(|n| {
                    let t = f64::from(u32::from(seq) * 320 + n) / 16000.0;
                    (6000.0 * (2.0 * std::f64::consts::PI * 300.0 * t).sin()) as i16
                })
                .collect();
            enc.encode(&pcm, &mut payload);
            // One packet ahead of playout, as a buffer of two frames holds.
            let at = t0 + std::time::Duration::from_millis(20 * u64::from(seq));
            if seq != 15 {
                m.push_audio(at, &header(seq), &payload);
            }
            if seq > 1 {
                frames.push(m.take_frame());
            }
        }
        let stats = m.jitter_stats().unwrap();
        assert_eq!((stats.lost, stats.recovered), (1, 1), "{stats:?}");
        // frames[k] plays sequence k + 1: the lost 15 is frames[14].
        let rebuilt = frames[14].expect("the lost frame is played");
        let level = rebuilt.iter().map(|s| i32::from(*s).abs()).max();
        assert!(level > Some(1000), "and it carries the tone: {level:?}");
    }

    #[tokio::test]
    async fn keypad_packets_between_audio_are_silence_not_loss() {
        let m = member(1).await;
        let t0 = std::time::Instant::now();
        m.push_audio(t0, &header(1), &pcmu(300));
        m.push_not_audio(&header(2));
        m.push_audio(t0, &header(3), &pcmu(300));
        let got: Vec<Option<i16>> = (0..3).map(|_| m.take_frame().map(steady)).collect();
        assert!(
            near(got[0], lvl(300)) && got[1].is_none() && near(got[2], lvl(300)),
            "{got:?}"
        );
        assert_eq!(m.jitter_stats().map(|s| s.lost), Some(0));
    }

    /// A PCMU member whose leg sends to a socket of the test's own.
    async fn listened_member(call: u64) -> (Arc<Member>, tokio::net::UdpSocket) {
        let receiver = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let socket = Arc::new(MediaSocket::bind("127.0.0.1:0").unwrap());
        let leg = Arc::new(Leg::new(
            socket,
            Outbound::new(Codec::Pcmu, 0),
            Latch::new(Some(receiver.local_addr().unwrap()), Vec::new()),
        ));
        let prompts = PromptSet::from_samples(PromptId::ALL.map(|id| (id, vec![0; 10])));
        let m = Member::new(CallRef(call), Role::Participant, prompts, leg, Codec::Pcmu);
        (m, receiver)
    }

    /// Members 1..=n as [`listened_member`] makes them, and their receivers.
    async fn listened_members(n: u64) -> (Vec<Arc<Member>>, Vec<tokio::net::UdpSocket>) {
        let mut members = Vec::new();
        let mut receivers = Vec::new();
        for call in 1..=n {
            let (m, r) = listened_member(call).await;
            members.push(m);
            receivers.push(r);
        }
        (members, receivers)
    }

    /// The level of the last sample of the next PCMU packet on `receiver`.
    async fn level_received(receiver: &tokio::net::UdpSocket) -> i16 {
        let mut buf = [0u8; 1500];
        let wait = Duration::from_secs(5);
        let n = tokio::time::timeout(wait, receiver.recv(&mut buf))
            .await
            .expect("a packet within 5 s")
            .unwrap();
        let (_, payload) = crate::media::rtp::read(&buf[..n]).unwrap();
        let mut pcm = Vec::new();
        crate::media::g711::decode(crate::media::g711::Law::Mu, payload, &mut pcm);
        pcm.last().copied().unwrap_or_default()
    }

    #[tokio::test]
    async fn a_chime_is_encoded_once_for_the_room_and_spares_the_newcomer() {
        let (members, receivers) = listened_members(3).await;
        // Everyone hears the (silent) shared mix; the chime is about member 3.
        let tick = Tick {
            mixes: vec![[0; PCM_FRAME]],
            heard: vec![mixer::SHARED; 3],
            talkers: vec![false; 3],
        };
        let chime = ChimeFrame {
            frame: [4000; PCM_FRAME],
            except: 3,
        };
        let mut fanout = Fanout::default();
        assert_eq!(
            fanout.send(&members, &tick, None, Some(&chime)),
            1,
            "one encode for the whole room, chime included"
        );
        for r in &receivers[..2] {
            let level = level_received(r).await;
            assert!(level > 3000, "the others hear the chime: {level}");
        }
        let newcomer = level_received(&receivers[2]).await;
        assert!(newcomer.abs() < 100, "the newcomer does not: {newcomer}");
        // Without a chime, the room's mix as it is.
        assert_eq!(fanout.send(&members, &tick, None, None), 1);
        for r in &receivers {
            assert!(level_received(r).await.abs() < 100);
        }
    }

    #[tokio::test]
    async fn a_g711_members_announcement_is_added_at_8_khz_to_the_pcm_its_mix_was_encoded_from() {
        let (members, receivers) = listened_members(2).await;
        members[1].announce(Announcement::new(Arc::from(vec![2000i16; 16_000])));
        let tick = Tick {
            mixes: vec![[1000; PCM_FRAME]],
            heard: vec![mixer::SHARED; 2],
            talkers: vec![false; 2],
        };
        let mut fanout = Fanout::default();
        let mut heard = (0, 0);
        // Past the filters' first frames: the levels are steady.
        for _ in 0..5 {
            assert_eq!(fanout.send(&members, &tick, None, None), 1, "one encode");
            heard = (
                level_received(&receivers[0]).await,
                level_received(&receivers[1]).await,
            );
        }
        let near = |got: i16, want: i16| (got - want).abs() < 60;
        assert!(near(heard.0, 1000), "the room's mix as it is: {heard:?}");
        assert!(
            near(heard.1, 3000),
            "the mix and the announcement: {heard:?}"
        );
        // In the waiting room it is said over silence, not over the music.
        let music = Tick {
            mixes: vec![[1000; PCM_FRAME], [500; PCM_FRAME]],
            heard: vec![mixer::SHARED, 1],
            talkers: vec![false; 2],
        };
        fanout.send(&members, &music, Some(1), None);
        let waiting = level_received(&receivers[1]).await;
        level_received(&receivers[0]).await;
        assert!(near(waiting, 2000), "{waiting}");
    }

    #[tokio::test]
    async fn a_joining_member_makes_a_room_chime_that_plays_out() {
        let rooms = Rooms::new(3, Arc::from(vec![]));
        let open = Policy::default();
        rooms.join(5, member(1).await, open).unwrap();
        let second = member(2).await;
        // No await from here on: the room's tick task (same single-threaded
        // runtime) takes none of the chime before we read it.
        rooms.join(5, second, open).unwrap();
        let played = rooms
            .with_room(5, |room| {
                let mut frames = Vec::new();
                while let Some(f) = room.next_chime_frame() {
                    assert_eq!(f.except, 2, "not for the newcomer");
                    frames.push(f.frame);
                }
                frames
            })
            .unwrap();
        let samples = tones::entry().len();
        assert_eq!(played.len(), samples.div_ceil(PCM_FRAME));
        assert!(played.iter().flatten().any(|s| *s != 0));
        assert!(rooms.with_room(5, |room| room.chime.is_none()).unwrap());
    }

    #[tokio::test]
    async fn an_announcement_overlays_the_mix_then_ends() {
        let m = member(1).await;
        let mut frame = [100i16; PCM_FRAME];
        assert!(!m.overlay_announcement(&mut frame), "nothing to announce");
        m.announce(Announcement::new(Arc::from(vec![5i16; 400])));
        assert!(m.overlay_announcement(&mut frame));
        assert_eq!(frame, [105; PCM_FRAME]);
        let mut frame = [0i16; PCM_FRAME];
        assert!(m.overlay_announcement(&mut frame));
        assert_eq!((frame[79], frame[80]), (5, 0), "the last 80 samples");
        assert!(!m.overlay_announcement(&mut frame), "it ended");
    }
}
