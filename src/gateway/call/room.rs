//! The call in its room: joining it as a member, and the in-room keypad's
//! commands (mute, lock, count, host's admit). A leg from another node
//! reports its member's standing to that node after every change, and
//! takes that node's requests for its caller (mute, admit, lock).

use super::Shell;
use crate::access::leg::Standing;
use crate::conference::keypad::Command;
use crate::conference::standing::{MEMBER_PACKAGE, MemberInfo};
use crate::conference::{Member, Policy, Role};
use crate::ids::RoomId;
use crate::media::prompts::PromptId;
use crate::sip::command::SipCommand;

impl Shell {
    /// Bridges the caller into its room; `back`: it was in the room on the
    /// room's previous owner, with this standing.
    pub(super) fn join(
        &mut self,
        room_id: RoomId,
        host: bool,
        policy: Option<Policy>,
        back: Option<Standing>,
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
        if self.is_leg {
            member.mark_from_node();
        }
        let now = match back {
            Some(back) => self
                .shared
                .rooms
                .rejoin(room_id, member.clone(), policy, back)?,
            None => self.shared.rooms.join(room_id, member.clone(), policy)?,
        };
        self.shared
            .live
            .joined(self.call.0, room_id, member.clone());
        tracing::info!(room_id = room_id.0, ?role, presence = ?now, back = back.is_some(), "joined room");
        m.presence = Some(member.watch());
        if self.reports {
            m.standing = Some(member.watch_standing());
        }
        m.room = Some((room_id, member));
        self.report_standing();
        Ok(())
    }

    /// A leg's member: tells the node that placed the leg where its caller
    /// is, whether it is muted and whether the room is locked, when that
    /// changed since the last report.
    pub(super) fn report_standing(&mut self) {
        if !self.reports {
            return;
        }
        let Some((room_id, member)) = self.media.as_ref().and_then(|m| m.room.as_ref()) else {
            return;
        };
        let report = MemberInfo::Report {
            presence: member.presence(),
            muted: member.is_muted(),
            locked: self.shared.rooms.locked(*room_id).unwrap_or(false),
        };
        if self.reported == Some(report) {
            return;
        }
        let Some(body) = report.body() else {
            return;
        };
        self.reported = Some(report);
        self.sip(SipCommand::Info {
            call: self.call,
            package: MEMBER_PACKAGE,
            body,
        });
    }

    /// What the node that placed this leg asks for its caller, applied as
    /// this node's operator would (its change is reported back).
    pub(super) fn member_request(&mut self, info: MemberInfo) {
        let Some(room_id) = self
            .media
            .as_ref()
            .and_then(|m| m.room.as_ref())
            .map(|r| r.0)
        else {
            return;
        };
        let live = &self.shared.live;
        let done = match info {
            MemberInfo::Mute(muted) => live.set_muted(self.call.0, muted).is_ok(),
            MemberInfo::Admit => live.admit(self.call.0).is_ok(),
            MemberInfo::Lock(locked) => live.lock_room(room_id, locked).is_ok(),
            MemberInfo::Report { .. } => false,
        };
        tracing::info!(room_id = room_id.0, request = ?info, done, "asked by the caller's node");
        // Reported whether it changed anything or not: that node showed
        // the change before it was made.
        self.reported = None;
        self.report_standing();
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
