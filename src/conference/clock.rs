//! A room's 20 ms clock: each tick takes one frame from every member in the
//! room, picks the active speakers and makes the mixes ([`super::mixer`]),
//! puts the waiting members on the hold music, and hands it all to the
//! [`Fanout`] to encode and send. `tokio::time::interval`, anchored, so it
//! does not drift; it ends when the room is removed.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::MissedTickBehavior;

use super::fanout::Fanout;
use super::member::Member;
use super::mixer::{Input, Mixer, Tick};
use super::room::{Room, music_frame};
use super::rooms::Rooms;
use super::roster::Presence;

use crate::ids::RoomId;

/// The room's 20 ms clock; ends when the room has been removed.
pub(super) async fn run_room(
    rooms: Rooms,
    room_id: RoomId,
    room: Arc<Mutex<Room>>,
    mut mixer: Mixer,
) {
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    tick.set_missed_tick_behavior(MissedTickBehavior::Burst);
    let mut members: Vec<Arc<Member>> = Vec::new();
    let mut waiting: Vec<Arc<Member>> = Vec::new();
    let mut inputs: Vec<Input> = Vec::new();
    let mut out = Tick::default();
    let mut fanout = Fanout::default();
    let tick_seconds = metrics::histogram!("dialgate_mixer_tick_seconds");
    let encodes = metrics::counter!("dialgate_mixer_encodes_total");
    tracing::debug!(room_id = room_id.0, "room mixer started");
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
    tracing::debug!(room_id = room_id.0, "room mixer stopped");
}
