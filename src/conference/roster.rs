//! Who is in a room, and where: hosts and participants, the waiting room,
//! the lock and the member limit. Pure: joins, leaves and admissions in,
//! each member's new [`Presence`] out, so every rule is a direct test.
//!
//! - A host always goes straight in, even into a locked room.
//! - A participant waits for admission when the room is set to "host
//!   admits"; else waits for a host when the room is set to "wait for host"
//!   and no host is in; else goes in.
//! - When a host goes in, everyone waiting for a host goes in with it.
//! - When the last host leaves, everyone else is ended if the room is set
//!   to "end with host"; else, with "wait for host", the participants go
//!   back to the waiting room.
//! - The limit counts waiting members too; a locked room refuses
//!   participants. Both are checked before anything changes.
//! - A member coming back (it was in the room on its previous owner node,
//!   [`Roster::rejoin`]) is neither refused nor held at the door again: no
//!   limit, no lock, no admission wait if it had been let in. It still
//!   waits for a host when there is none.

/// What a member may do in the room.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Host,
    Participant,
}

/// Where a member is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Presence {
    /// Hears the room and is heard.
    InRoom,
    /// Hears hold music until a host goes in.
    WaitingForHost,
    /// Hears hold music until admitted through the API.
    WaitingForAdmission,
    /// The room ended (its last host left): the call is hung up.
    Ended,
    /// Not the roster's: another node owns the room, and the member's call
    /// is to leave it here and go to the owner ([`super::Rooms::move_members`]).
    /// Not mixed meanwhile.
    Moved,
}

impl Presence {
    pub fn is_waiting(self) -> bool {
        matches!(
            self,
            Presence::WaitingForHost | Presence::WaitingForAdmission
        )
    }
}

/// A room's settings, from its row when a caller joins.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Policy {
    pub wait_for_host: bool,
    pub host_admits: bool,
    pub end_with_host: bool,
    /// Members counted with the waiting ones.
    pub max_members: Option<usize>,
}

/// Why a room turned a caller away.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    Full,
    Locked,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AdmitError {
    NotFound,
    NotWaiting,
}

/// A member whose presence changed, and the new presence.
pub type Change = (u64, Presence);

#[derive(Clone, Debug, Default)]
pub struct Roster {
    policy: Policy,
    locked: bool,
    members: Vec<(u64, Role, Presence)>,
}

impl Roster {
    pub fn new(policy: Policy) -> Roster {
        Roster {
            policy,
            ..Roster::default()
        }
    }

    /// The settings the room runs by now.
    pub fn policy(&self) -> Policy {
        self.policy
    }

    /// The settings as stored now (an operator may have changed them).
    pub fn set_policy(&mut self, policy: Policy) {
        self.policy = policy;
    }

    fn host_in(&self) -> bool {
        self.members
            .iter()
            .any(|(_, r, p)| *r == Role::Host && *p == Presence::InRoom)
    }

    /// Adds `key`, or refuses it (changing nothing). Others who go in with
    /// it are pushed to `changes`.
    pub fn join(
        &mut self,
        key: u64,
        role: Role,
        changes: &mut Vec<Change>,
    ) -> Result<Presence, Refusal> {
        let present = self
            .members
            .iter()
            .filter(|(_, _, p)| *p != Presence::Ended)
            .count();
        if self.policy.max_members.is_some_and(|max| present >= max) {
            return Err(Refusal::Full);
        }
        if self.locked && role == Role::Participant {
            return Err(Refusal::Locked);
        }
        Ok(self.enter(key, role, false, changes))
    }

    /// Adds `key`, a member that was in the room before it moved here
    /// (`admitted`: it had got past the "host admits" waiting room). Never
    /// refused: it was counted and let in already.
    pub fn rejoin(
        &mut self,
        key: u64,
        role: Role,
        admitted: bool,
        changes: &mut Vec<Change>,
    ) -> Presence {
        self.enter(key, role, admitted, changes)
    }

    fn enter(
        &mut self,
        key: u64,
        role: Role,
        admitted: bool,
        changes: &mut Vec<Change>,
    ) -> Presence {
        let presence = match role {
            Role::Host => Presence::InRoom,
            Role::Participant if self.policy.host_admits && !admitted => {
                Presence::WaitingForAdmission
            }
            Role::Participant if self.policy.wait_for_host && !self.host_in() => {
                Presence::WaitingForHost
            }
            Role::Participant => Presence::InRoom,
        };
        if role == Role::Host {
            self.move_all(Presence::WaitingForHost, Presence::InRoom, changes);
        }
        self.members.push((key, role, presence));
        presence
    }

    fn move_all(&mut self, from: Presence, to: Presence, changes: &mut Vec<Change>) {
        for (key, _, p) in self.members.iter_mut().filter(|(_, _, p)| *p == from) {
            *p = to;
            changes.push((*key, to));
        }
    }

    /// Removes `key`; what its leaving does to the others goes to `changes`.
    pub fn leave(&mut self, key: u64, changes: &mut Vec<Change>) {
        let Some(at) = self.members.iter().position(|(k, _, _)| *k == key) else {
            return;
        };
        let (_, role, presence) = self.members.remove(at);
        if role != Role::Host || presence != Presence::InRoom || self.host_in() {
            return;
        }
        if self.policy.end_with_host {
            for (key, _, p) in self.members.iter_mut() {
                if *p != Presence::Ended {
                    *p = Presence::Ended;
                    changes.push((*key, Presence::Ended));
                }
            }
        } else if self.policy.wait_for_host {
            for (key, r, p) in self.members.iter_mut() {
                if *r == Role::Participant && *p == Presence::InRoom {
                    *p = Presence::WaitingForHost;
                    changes.push((*key, Presence::WaitingForHost));
                }
            }
        }
    }

    /// Removes `key` with none of the rules of a leave: it moved to the
    /// room on another node (the others there still count it; here, a
    /// host moving away must not end the room or send anyone back to
    /// wait).
    pub fn forget(&mut self, key: u64) {
        self.members.retain(|(k, _, _)| *k != key);
    }

    /// Lets a waiting member in (the operator or the host's app decided).
    pub fn admit(&mut self, key: u64) -> Result<(), AdmitError> {
        let (_, _, p) = self
            .members
            .iter_mut()
            .find(|(k, _, _)| *k == key)
            .ok_or(AdmitError::NotFound)?;
        if !p.is_waiting() {
            return Err(AdmitError::NotWaiting);
        }
        *p = Presence::InRoom;
        Ok(())
    }

    pub fn set_locked(&mut self, locked: bool) {
        self.locked = locked;
    }

    pub fn is_locked(&self) -> bool {
        self.locked
    }

    pub fn presence(&self, key: u64) -> Option<Presence> {
        self.members
            .iter()
            .find(|(k, _, _)| *k == key)
            .map(|(_, _, p)| *p)
    }

    /// Members in the room proper (not waiting, not ended).
    pub fn in_room(&self) -> usize {
        self.members
            .iter()
            .filter(|(_, _, p)| *p == Presence::InRoom)
            .count()
    }

    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(wait: bool, admits: bool, end: bool, max: Option<usize>) -> Policy {
        Policy {
            wait_for_host: wait,
            host_admits: admits,
            end_with_host: end,
            max_members: max,
        }
    }

    #[test]
    fn without_options_everyone_goes_straight_in() {
        let mut r = Roster::new(Policy::default());
        let mut ch = Vec::new();
        assert_eq!(r.join(1, Role::Participant, &mut ch), Ok(Presence::InRoom));
        assert_eq!(r.join(2, Role::Host, &mut ch), Ok(Presence::InRoom));
        r.leave(2, &mut ch);
        assert!(ch.is_empty(), "{ch:?}");
        assert_eq!(r.presence(1), Some(Presence::InRoom));
    }

    #[test]
    fn participants_wait_for_the_host_and_go_in_with_it() {
        let mut r = Roster::new(policy(true, false, false, None));
        let mut ch = Vec::new();
        assert_eq!(
            r.join(1, Role::Participant, &mut ch),
            Ok(Presence::WaitingForHost)
        );
        assert_eq!(
            r.join(2, Role::Participant, &mut ch),
            Ok(Presence::WaitingForHost)
        );
        assert_eq!(r.in_room(), 0);
        assert_eq!(r.join(3, Role::Host, &mut ch), Ok(Presence::InRoom));
        assert_eq!(ch, vec![(1, Presence::InRoom), (2, Presence::InRoom)]);
        ch.clear();
        assert_eq!(r.join(4, Role::Participant, &mut ch), Ok(Presence::InRoom));
        // The host leaves: participants go back to waiting.
        r.leave(3, &mut ch);
        assert_eq!(
            ch,
            vec![
                (1, Presence::WaitingForHost),
                (2, Presence::WaitingForHost),
                (4, Presence::WaitingForHost)
            ]
        );
    }

    #[test]
    fn the_room_ends_when_its_last_host_leaves() {
        let mut r = Roster::new(policy(true, false, true, None));
        let mut ch = Vec::new();
        r.join(1, Role::Host, &mut ch).unwrap();
        r.join(2, Role::Host, &mut ch).unwrap();
        r.join(3, Role::Participant, &mut ch).unwrap();
        r.leave(1, &mut ch);
        assert!(ch.is_empty(), "another host is still in: {ch:?}");
        r.leave(2, &mut ch);
        assert_eq!(ch, vec![(3, Presence::Ended)]);
        // The ended member is not ended twice, and leaves cleanly.
        ch.clear();
        r.leave(3, &mut ch);
        assert!(r.is_empty() && ch.is_empty());
    }

    #[test]
    fn host_admits_holds_participants_until_admitted() {
        let mut r = Roster::new(policy(false, true, false, None));
        let mut ch = Vec::new();
        assert_eq!(r.join(1, Role::Host, &mut ch), Ok(Presence::InRoom));
        assert_eq!(
            r.join(2, Role::Participant, &mut ch),
            Ok(Presence::WaitingForAdmission)
        );
        assert_eq!(r.admit(1), Err(AdmitError::NotWaiting));
        assert_eq!(r.admit(9), Err(AdmitError::NotFound));
        assert_eq!(r.admit(2), Ok(()));
        assert_eq!(r.presence(2), Some(Presence::InRoom));
        assert!(ch.is_empty(), "admission is the caller's own change");
    }

    #[test]
    fn a_host_arriving_does_not_admit_those_waiting_for_admission() {
        let mut r = Roster::new(policy(true, true, false, None));
        let mut ch = Vec::new();
        assert_eq!(
            r.join(1, Role::Participant, &mut ch),
            Ok(Presence::WaitingForAdmission)
        );
        r.join(2, Role::Host, &mut ch).unwrap();
        assert!(ch.is_empty());
        assert_eq!(r.presence(1), Some(Presence::WaitingForAdmission));
    }

    #[test]
    fn a_member_coming_back_is_not_held_at_the_door_again() {
        let mut r = Roster::new(policy(true, true, false, Some(1)));
        let mut ch = Vec::new();
        r.join(1, Role::Host, &mut ch).unwrap();
        r.set_locked(true);
        assert_eq!(r.join(2, Role::Participant, &mut ch), Err(Refusal::Full));
        // Past the limit and the lock; let in before, so not waiting again.
        assert_eq!(
            r.rejoin(2, Role::Participant, true, &mut ch),
            Presence::InRoom
        );
        // One that was still waiting to be admitted waits again.
        assert_eq!(
            r.rejoin(3, Role::Participant, false, &mut ch),
            Presence::WaitingForAdmission
        );
        // Without a host, an admitted participant still waits for one.
        let mut r = Roster::new(policy(true, true, false, None));
        assert_eq!(
            r.rejoin(4, Role::Participant, true, &mut ch),
            Presence::WaitingForHost
        );
        assert!(ch.is_empty(), "{ch:?}");
    }

    #[test]
    fn limit_counts_waiting_members_and_lock_stops_participants_only() {
        let mut r = Roster::new(policy(true, false, false, Some(2)));
        let mut ch = Vec::new();
        r.join(1, Role::Participant, &mut ch).unwrap();
        r.join(2, Role::Participant, &mut ch).unwrap();
        assert_eq!(r.join(3, Role::Host, &mut ch), Err(Refusal::Full));
        assert!(ch.is_empty(), "a refusal changes nothing");
        r.leave(2, &mut ch);
        r.set_locked(true);
        assert_eq!(r.join(4, Role::Participant, &mut ch), Err(Refusal::Locked));
        assert_eq!(r.join(5, Role::Host, &mut ch), Ok(Presence::InRoom));
        assert_eq!(ch, vec![(1, Presence::InRoom)]);
    }
}
