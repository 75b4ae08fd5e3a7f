//! Live calls, for the operator: what each call is doing now, and handles
//! to hang it up (through the SIP endpoint) or mute it (in its room's mix).
//! A call bridged to the node that mixes its room shows the standing that
//! node reports, and is muted or admitted there (asked over its leg).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use serde::Serialize;
use tokio::sync::mpsc;

use crate::cause::Cause;
use crate::conference::standing::{MEMBER_PACKAGE, MemberInfo};
use crate::conference::{AdmitError, Member, Role, Rooms};
use crate::ids::RoomId;
use crate::sip::command::SipCommand;
use crate::sip::endpoint::CallRef;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CallState {
    Ivr,
    /// In the room's waiting room: for a host, or to be admitted.
    Waiting,
    InRoom,
}

impl CallState {
    /// A member's state: waiting, or in the room proper.
    fn in_room(waiting: bool) -> CallState {
        if waiting {
            CallState::Waiting
        } else {
            CallState::InRoom
        }
    }
}

/// One call as `GET /v1/calls` shows it.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct LiveCall {
    pub id: u64,
    pub number: String,
    pub caller_id: String,
    pub state: CallState,
    #[schema(value_type = Option<i64>)]
    pub room_id: Option<RoomId>,
    pub since: String,
    pub codec: String,
    /// DTMF sources seen so far: `rfc4733`, `sip_info`, `inband`.
    #[schema(value_type = Vec<String>)]
    pub dtmf_sources: BTreeSet<&'static str>,
    /// The call's latest key presses (at most 32), oldest first.
    pub dtmf: Vec<DtmfPress>,
    pub muted: bool,
    /// In a room: host or participant.
    pub role: Option<Role>,
    /// The caller put the call on hold (re-INVITE sendonly or inactive).
    pub on_hold: bool,
    /// The far end's latest RTCP report on the audio we send it.
    pub far_end: Option<FarEnd>,
    /// The gateway node the call is on (`--node-id`).
    pub node: String,
    /// In a room: the node that owns the room (mixes it), as the room's
    /// lease says; `null` while it is being claimed.
    pub room_owner: Option<String>,
}

/// One key press in a call's DTMF trace. Which key is never kept: the
/// trace would give access codes away.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct DtmfPress {
    /// How it arrived: `rfc4733`, `sip_info` or `inband`.
    #[schema(value_type = String)]
    pub source: &'static str,
    /// When the key went down, RFC 3339 UTC with milliseconds.
    pub start: String,
    /// How long it was held, where the source says (RFC 4733, in-band).
    pub duration_ms: Option<u64>,
    /// False when another source had already delivered this press.
    pub counted: bool,
}

/// Presses kept per call in the live view.
const DTMF_TRACE: usize = 32;

/// What the far end's RTCP says of the stream the gateway sends it.
#[derive(Clone, Copy, Debug, Serialize, utoipa::ToSchema)]
pub struct FarEnd {
    /// Fraction lost since its previous report, 0 to 1.
    pub fraction_lost: f64,
    /// Interarrival jitter, in milliseconds.
    pub jitter_ms: f64,
}

struct Entry {
    info: LiveCall,
    member: Option<Arc<Member>>,
    /// Bridged to the node that owns its room: that node's id.
    bridged_to: Option<String>,
}

#[derive(Clone)]
pub struct LiveCalls {
    calls: Arc<Mutex<BTreeMap<u64, Entry>>>,
    sip: mpsc::UnboundedSender<SipCommand>,
    rooms: Rooms,
}

#[derive(Debug, PartialEq, Eq)]
pub enum ControlError {
    NotFound,
    NotInRoom,
    /// Admitting a caller that is not in a waiting room.
    NotWaiting,
}

impl Entry {
    /// The call as it is now (a room member's presence and the room's
    /// owner are read live).
    fn view(&self, rooms: &Rooms) -> LiveCall {
        let mut info = self.info.clone();
        info.room_owner = match &self.bridged_to {
            Some(owner) => Some(owner.clone()),
            None => info
                .room_id
                .and_then(|room| rooms.owner(room))
                .map(|owner| owner.to_string()),
        };
        if let Some(m) = &self.member {
            // Read from the member: mute-all and the room change it there.
            info.muted = m.is_muted();
            info.role = Some(m.role);
            info.state = CallState::in_room(m.presence().is_waiting());
        }
        info
    }
}

impl LiveCalls {
    pub(crate) fn new(sip: mpsc::UnboundedSender<SipCommand>, rooms: Rooms) -> LiveCalls {
        LiveCalls {
            calls: Arc::new(Mutex::new(BTreeMap::new())),
            sip,
            rooms,
        }
    }

    pub fn add(&self, info: LiveCall) {
        if let Ok(mut c) = self.calls.lock() {
            c.insert(
                info.id,
                Entry {
                    info,
                    member: None,
                    bridged_to: None,
                },
            );
        }
    }

    pub fn remove(&self, id: u64) {
        if let Ok(mut c) = self.calls.lock() {
            c.remove(&id);
        }
    }

    pub fn joined(&self, id: u64, room_id: RoomId, member: Arc<Member>) {
        if let Ok(mut c) = self.calls.lock()
            && let Some(e) = c.get_mut(&id)
        {
            e.info.room_id = Some(room_id);
            e.member = Some(member);
            e.bridged_to = None;
        }
    }

    /// The call is in `room_id`, mixed on `owner`, another node, over a
    /// leg (`None`: not any more). Either way it is no member of a room
    /// here (one it was in here it left to move to the owner).
    pub fn bridged(&self, id: u64, room_id: RoomId, role: Role, owner: Option<String>) {
        if let Ok(mut c) = self.calls.lock()
            && let Some(e) = c.get_mut(&id)
        {
            e.member = None;
            e.info.room_id = owner.as_ref().map(|_| room_id);
            e.info.role = owner.as_ref().map(|_| role);
            e.info.state = if owner.is_some() {
                CallState::InRoom
            } else {
                CallState::Ivr
            };
            e.bridged_to = owner;
        }
    }

    /// The node that mixes the call's room (it is bridged there) reported
    /// its standing: muted, waiting or in the room.
    pub fn reported(&self, id: u64, muted: bool, waiting: bool) {
        if let Ok(mut c) = self.calls.lock()
            && let Some(e) = c.get_mut(&id)
            && e.bridged_to.is_some()
        {
            e.info.muted = muted;
            e.info.state = CallState::in_room(waiting);
        }
    }

    /// Asks the node that mixes a bridged call's room for `info`, over
    /// the call's leg.
    fn ask_owner(&self, id: u64, info: MemberInfo) {
        if let Some(body) = info.body() {
            let _ = self.sip.send(SipCommand::LegInfo {
                call: CallRef(id),
                package: MEMBER_PACKAGE,
                body,
            });
        }
    }

    /// A re-INVITE changed the call's codec or hold state.
    pub fn media_changed(&self, id: u64, codec: String, on_hold: bool) {
        if let Ok(mut c) = self.calls.lock()
            && let Some(e) = c.get_mut(&id)
        {
            e.info.codec = codec;
            e.info.on_hold = on_hold;
        }
    }

    /// The far end reported on our stream (RTCP).
    pub fn far_end_report(&self, id: u64, fraction_lost: f64, jitter_seconds: f64) {
        if let Ok(mut c) = self.calls.lock()
            && let Some(e) = c.get_mut(&id)
        {
            e.info.far_end = Some(FarEnd {
                fraction_lost,
                jitter_ms: jitter_seconds * 1000.0,
            });
        }
    }

    /// A key press reached the call (`counted` unless another source had
    /// already delivered it), which went down at `start`.
    pub fn dtmf_press(
        &self,
        id: u64,
        source: crate::dtmf::DtmfSource,
        start: std::time::Instant,
        counted: bool,
    ) {
        let name = source.as_str();
        if counted {
            metrics::counter!("dialgate_dtmf_digits_total", "source" => name).increment(1);
        } else {
            metrics::counter!("dialgate_dtmf_duplicates_total", "source" => name).increment(1);
        }
        let ago = chrono::Duration::from_std(start.elapsed()).unwrap_or_default();
        let start = (chrono::Utc::now() - ago).to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        if let Ok(mut c) = self.calls.lock()
            && let Some(e) = c.get_mut(&id)
        {
            e.info.dtmf_sources.insert(name);
            if e.info.dtmf.len() == DTMF_TRACE {
                e.info.dtmf.remove(0);
            }
            e.info.dtmf.push(DtmfPress {
                source: name,
                start,
                duration_ms: None,
                counted,
            });
        }
    }

    /// The latest press from `source` was released after `length`.
    pub fn dtmf_length(
        &self,
        id: u64,
        source: crate::dtmf::DtmfSource,
        length: std::time::Duration,
    ) {
        let name = source.as_str();
        metrics::histogram!("dialgate_dtmf_press_seconds", "source" => name)
            .record(length.as_secs_f64());
        if let Ok(mut c) = self.calls.lock()
            && let Some(e) = c.get_mut(&id)
            && let Some(p) = e.info.dtmf.iter_mut().rev().find(|p| p.source == name)
            && p.duration_ms.is_none()
        {
            p.duration_ms = Some(u64::try_from(length.as_millis()).unwrap_or(u64::MAX));
        }
    }

    pub fn list(&self) -> Vec<LiveCall> {
        self.calls
            .lock()
            .map(|c| c.values().map(|e| e.view(&self.rooms)).collect())
            .unwrap_or_default()
    }

    pub fn get(&self, id: u64) -> Option<LiveCall> {
        self.calls
            .lock()
            .ok()?
            .get(&id)
            .map(|e| e.view(&self.rooms))
    }

    /// Hangs the call up with BYE (the call task ends when it is answered).
    pub fn hang_up(&self, id: u64) -> Result<(), ControlError> {
        self.get(id).ok_or(ControlError::NotFound)?;
        let _ = self.sip.send(SipCommand::Bye {
            call: CallRef(id),
            reason: Some(Cause::Operator.reason()),
        });
        Ok(())
    }

    /// Mutes or unmutes a caller in its room's mix; a caller bridged to
    /// the node that mixes its room is muted there (asked over its leg;
    /// shown muted at once, and as that node reports it after).
    pub fn set_muted(&self, id: u64, muted: bool) -> Result<LiveCall, ControlError> {
        let mut c = self.calls.lock().map_err(|_| ControlError::NotFound)?;
        let e = c.get_mut(&id).ok_or(ControlError::NotFound)?;
        if e.bridged_to.is_some() {
            e.info.muted = muted;
            let view = e.view(&self.rooms);
            drop(c);
            self.ask_owner(id, MemberInfo::Mute(muted));
            return Ok(view);
        }
        let member = e.member.as_ref().ok_or(ControlError::NotInRoom)?;
        member.set_muted(muted);
        Ok(e.view(&self.rooms))
    }

    /// Locks or unlocks a room with callers in it; `NotFound` when it has
    /// none here. A room mixed on another node is locked there, asked
    /// over the leg of one of its callers here.
    pub fn lock_room(&self, room_id: RoomId, locked: bool) -> Result<(), ControlError> {
        if self.rooms.set_locked(room_id, locked).is_some() {
            return Ok(());
        }
        let bridged = self.calls.lock().ok().and_then(|c| {
            c.values()
                .find(|e| e.bridged_to.is_some() && e.info.room_id == Some(room_id))
                .map(|e| e.info.id)
        });
        let id = bridged.ok_or(ControlError::NotFound)?;
        self.ask_owner(id, MemberInfo::Lock(locked));
        Ok(())
    }

    /// Lets a caller in from its room's waiting room (on the node that
    /// mixes the room, for a bridged caller).
    pub fn admit(&self, id: u64) -> Result<LiveCall, ControlError> {
        let (room_id, member) = {
            let mut c = self.calls.lock().map_err(|_| ControlError::NotFound)?;
            let e = c.get_mut(&id).ok_or(ControlError::NotFound)?;
            if e.bridged_to.is_some() {
                if e.info.state != CallState::Waiting {
                    return Err(ControlError::NotWaiting);
                }
                e.info.state = CallState::InRoom;
                let view = e.view(&self.rooms);
                drop(c);
                self.ask_owner(id, MemberInfo::Admit);
                return Ok(view);
            }
            match (e.info.room_id, &e.member) {
                (Some(room_id), Some(m)) => (room_id, m.clone()),
                _ => return Err(ControlError::NotInRoom),
            }
        };
        self.rooms
            .admit(room_id, member.call)
            .map_err(|e| match e {
                AdmitError::NotFound => ControlError::NotFound,
                AdmitError::NotWaiting => ControlError::NotWaiting,
            })?;
        self.get(id).ok_or(ControlError::NotFound)
    }
}
