//! The call in its room: joining it as a member, and the in-room keypad's
//! commands (mute, lock, count, host's admit).

use super::Shell;
use crate::conference::keypad::Command;
use crate::conference::{Member, Policy, Role};
use crate::ids::RoomId;
use crate::media::prompts::PromptId;

impl Shell {
    /// Bridges the caller into its room.
    pub(super) fn join(
        &mut self,
        room_id: RoomId,
        host: bool,
        policy: Option<Policy>,
    ) -> Result<(), crate::conference::Refusal> {
        let policy = match policy {
            Some(policy) => policy,
            // The room's own settings: it must be live here.
            None => self
                .shared
                .rooms
                .policy(room_id)
                .ok_or(crate::conference::Refusal::Full)?,
        };
        let Some(m) = self.media.as_mut() else {
            return Err(crate::conference::Refusal::Full);
        };
        let role = if host { Role::Host } else { Role::Participant };
        let member = Member::new(
            self.call,
            role,
            m.playout.prompts().clone(),
            m.leg.clone(),
            m.negotiated.codec,
        );
        member.set_held(m.on_hold);
        let now = self.shared.rooms.join(room_id, member.clone(), policy)?;
        self.shared
            .live
            .joined(self.call.0, room_id, member.clone());
        tracing::info!(room_id = room_id.0, ?role, presence = ?now, "joined room");
        m.presence = Some(member.watch());
        m.room = Some((room_id, member));
        Ok(())
    }

    /// A keypad command in the room (the core checked the role).
    pub(super) fn room_command(&self, command: Command) {
        let Some((room_id, member)) = self.media.as_ref().and_then(|m| m.room.as_ref()) else {
            return;
        };
        let rooms = &self.shared.rooms;
        match command {
            Command::ToggleMute => {
                let muted = !member.is_muted();
                if self.shared.live.set_muted(self.call.0, muted).is_ok() {
                    tracing::info!(muted, "mute toggled from the keypad");
                    member.say(if muted {
                        PromptId::Muted
                    } else {
                        PromptId::Unmuted
                    });
                }
            }
            Command::Count => rooms.say_count(*room_id, self.call),
            Command::ToggleLock => {
                if let Some(locked) = rooms.toggle_lock(*room_id) {
                    tracing::info!(locked, "room lock toggled by the host");
                    member.say(if locked {
                        PromptId::NowLocked
                    } else {
                        PromptId::NowUnlocked
                    });
                }
            }
            Command::ToggleMuteAll => {
                if let Some(muted) = rooms.toggle_mute_all(*room_id) {
                    tracing::info!(muted, "participants muted by the host");
                    member.say(if muted {
                        PromptId::AllMuted
                    } else {
                        PromptId::AllUnmuted
                    });
                }
            }
        }
    }
}
