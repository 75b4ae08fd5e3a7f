//! Conference rooms: membership and the room's audio on its own clock.
//!
//! A room exists while it has members. Its task ticks every 20 ms
//! (`tokio::time::interval`, anchored, so it does not drift): it takes one
//! frame from each member's inbox, picks the active speakers and makes the
//! mixes ([`mixer`], [`speakers`]), encodes each distinct (mix, codec)
//! pair once and sends every member its packet through the member's
//! [`Sink`]: its call's RTP leg (`media::leg::Leg`), which keeps one SSRC
//! and continuous sequence numbers and timestamps after the prompts.
//!
//! Each member's audio waits in its own adaptive jitter buffer and is
//! decoded, recovered or concealed as the tick takes it
//! ([`crate::media::inbound`]).
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
//!
//! - [`Rooms`] (`rooms.rs`): every live room; join, leave, admit, lock.
//! - [`lease`]: which node owns each live room (the sans-IO half of the
//!   room leases in the store).
//! - `room.rs`: one room's state and what it says when members change.
//! - [`Member`] (`member.rs`): one caller in a room.
//! - `clock.rs`: the room's 20 ms tick; `fanout.rs`: encode once, send all.
//! - [`mixer`], [`speakers`]: the mixes and who is heard; [`roster`]: who is
//!   in, who waits; [`keypad`]: the in-call menu; [`tones`]: chimes.
//! - [`standing`]: what the owner and the caller's node tell each other
//!   about a member over its leg (INFO), and what it brings when it moves.

mod clock;
mod fanout;
pub mod keypad;
pub mod lease;
mod member;
pub mod mixer;
mod room;
mod rooms;
pub mod roster;
pub mod speakers;
pub mod standing;
pub mod tones;

pub use crate::media::inbound::CONCEAL_FRAMES;
pub use member::{Member, Sink};
pub use rooms::{RoomEvent, Rooms};
pub use roster::{AdmitError, Policy, Presence, Refusal, Role};

#[cfg(test)]
mod tests;
