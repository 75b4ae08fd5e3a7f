//! One room's state between ticks: its members and [`Roster`], the chime
//! everyone in it hears when someone comes or goes, and where the hold music
//! is. What the roster decides, the room applies ([`Room::apply`]): a count
//! for the newcomer ("you are the only person…", "there are N
//! participants…"), a chime for the others, the waiting-room prompt.

use std::sync::Arc;

use super::member::Member;
use super::roster::{Change, Presence, Roster};
use super::tones;
use crate::media::announcement::Announcement;
use crate::media::inbound::Frame;
use crate::media::pcm::PCM_FRAME;
use crate::media::prompts::PromptId;

#[derive(Debug, Default)]
pub(super) struct Room {
    pub(super) members: Vec<Arc<Member>>,
    pub(super) roster: Roster,
    /// Where the hold music is (one position for the whole waiting room).
    pub(super) music_at: usize,
    /// The entry or exit chime playing to everyone in the room.
    pub(super) chime: Option<Chime>,
    /// The node that owns the room, as its lease says.
    pub(super) owner: Option<Arc<str>>,
    /// The lease's epoch while this node holds it, renewed in time: legs
    /// from other nodes are taken only then.
    pub(super) leased_here: Option<i64>,
    /// This node held the room's lease at some time (its door was the
    /// room's; see [`super::Rooms::standing`]).
    pub(super) held_once: bool,
}

/// A chime heard by everyone in the room but the member it is about (the
/// newcomer hears the count instead). It is added to the room's mixes
/// before they are encoded, so the room encodes it once per mix and codec.
/// A newer chime replaces one still playing.
#[derive(Debug)]
pub(super) struct Chime {
    samples: Arc<[i16]>,
    at: usize,
    except: u64,
}

/// This tick's 20 ms of the room's chime, and whom it is not for.
#[derive(Debug)]
pub(super) struct ChimeFrame {
    pub(super) frame: Frame,
    pub(super) except: u64,
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
pub(super) fn overlay(frame: &mut [i16], over: &[i16]) {
    for (f, s) in frame.iter_mut().zip(over) {
        *f = f.saturating_add(*s);
    }
}

impl Room {
    pub(super) fn member(&self, key: u64) -> Option<&Arc<Member>> {
        self.members.iter().find(|m| m.call.0 == key)
    }

    /// Locks or unlocks the room; its members' watchers hear of it
    /// ([`Member::watch_standing`]: a leg from another node reports it).
    pub(super) fn set_locked(&mut self, locked: bool) {
        if self.roster.is_locked() != locked {
            self.roster.set_locked(locked);
            for m in &self.members {
                m.touch();
            }
        }
    }

    /// Plays `samples` to every member in the room proper but `except`,
    /// in the room's mixes.
    pub(super) fn chime_in_room(&mut self, except: u64, samples: Arc<[i16]>) {
        self.chime = Some(Chime {
            samples,
            at: 0,
            except,
        });
    }

    /// This tick's part of the chime, if one is playing.
    pub(super) fn next_chime_frame(&mut self) -> Option<ChimeFrame> {
        let frame = self.chime.as_mut().and_then(Chime::next_frame);
        if frame.is_none() {
            self.chime = None;
        }
        frame
    }

    /// Publishes the roster's changes and says what each means: an entry
    /// chime to those already in, the waiting-room prompt to those sent
    /// back to wait. (An ended member's call hangs itself up.)
    pub(super) fn apply(&mut self, changes: &[Change]) {
        for (key, presence) in changes {
            let Some(m) = self.member(*key).cloned() else {
                continue;
            };
            // A member on its way to another node keeps that presence.
            if m.presence() == Presence::Moved {
                continue;
            }
            m.set_presence(*presence);
            match presence {
                Presence::InRoom => self.entered(&m),
                Presence::WaitingForHost => m.say(PromptId::WaitingForHost),
                Presence::WaitingForAdmission => m.say(PromptId::WaitingForAdmission),
                Presence::Ended | Presence::Moved => {}
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
    pub(super) fn count_for(&self, m: &Member) -> Announcement {
        match self.roster.in_room() {
            0 | 1 => m.prompts.shared(PromptId::OnlyPerson),
            n => m.prompts.count_sentence(n),
        }
    }
}

/// The next 20 ms of `music` from `at`, looping.
pub(super) fn music_frame(music: &[i16], at: &mut usize) -> Frame {
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
