//! Conference rooms: who is in which room.
//!
//! This slice keeps membership only (join, leave, a room empties itself when
//! its last member leaves). The N-1 mixer on its own 20 ms clock joins in the
//! next slice; roles, waiting room and keypad controls come with issue 5.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use crate::sip::endpoint::CallRef;

#[derive(Clone, Debug, Default)]
pub struct Rooms {
    inner: Arc<Mutex<HashMap<i64, HashSet<CallRef>>>>,
}

impl Rooms {
    pub fn new() -> Rooms {
        Rooms::default()
    }

    /// Adds `call` to `room_id`; returns the member count after joining.
    pub fn join(&self, room_id: i64, call: CallRef) -> usize {
        let Ok(mut rooms) = self.inner.lock() else {
            return 0;
        };
        let members = rooms.entry(room_id).or_default();
        members.insert(call);
        members.len()
    }

    /// Removes `call`; the room disappears with its last member.
    pub fn leave(&self, room_id: i64, call: CallRef) {
        let Ok(mut rooms) = self.inner.lock() else {
            return;
        };
        if let Some(members) = rooms.get_mut(&room_id) {
            members.remove(&call);
            if members.is_empty() {
                rooms.remove(&room_id);
            }
        }
    }

    pub fn members(&self, room_id: i64) -> usize {
        self.inner
            .lock()
            .map_or(0, |r| r.get(&room_id).map_or(0, HashSet::len))
    }

    pub fn room_count(&self) -> usize {
        self.inner.lock().map_or(0, |r| r.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn room_empties_itself_when_the_last_member_leaves() {
        let rooms = Rooms::new();
        assert_eq!(rooms.join(1, CallRef(1)), 1);
        assert_eq!(rooms.join(1, CallRef(2)), 2);
        rooms.leave(1, CallRef(1));
        assert_eq!(rooms.members(1), 1);
        rooms.leave(1, CallRef(2));
        assert_eq!(rooms.room_count(), 0);
    }
}
