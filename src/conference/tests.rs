use std::sync::Arc;
use std::time::Duration;

use super::fanout::Fanout;
use super::mixer::Tick;
use super::room::{ChimeFrame, music_frame};
use super::*;
use crate::ids::RoomId;
use crate::media::Codec;
use crate::media::announcement::Announcement;
use crate::media::inbound::tests::{header, lvl, near, pcmu, steady};
use crate::media::leg::Leg;
use crate::media::pcm::PCM_FRAME;
use crate::media::prompts::{PromptId, PromptSet};
use crate::media::rtp::PayloadType;
use crate::media::rtp::{Latch, Outbound};
use crate::media::socket::MediaSocket;
use crate::sip::endpoint::CallRef;

async fn member(call: u64) -> Arc<Member> {
    member_as(call, Role::Participant).await
}

async fn member_as(call: u64, role: Role) -> Arc<Member> {
    member_with(call, role, Codec::Pcmu).await
}

/// What a member was sent, kept in memory.
#[derive(Debug)]
struct Recorded {
    codec: Codec,
    sent: std::sync::Mutex<Vec<Sent>>,
}

#[derive(Clone, Debug, PartialEq)]
enum Sent {
    Frame(Vec<i16>),
    Narrow(Vec<i16>),
    Payload(Vec<u8>),
}

impl Sink for Recorded {
    fn codec(&self) -> Option<Codec> {
        Some(self.codec)
    }
    fn send_frame(&self, pcm: &[i16]) {
        self.sent.lock().unwrap().push(Sent::Frame(pcm.to_vec()));
    }
    fn send_narrow(&self, narrow: &[i16]) {
        self.sent
            .lock()
            .unwrap()
            .push(Sent::Narrow(narrow.to_vec()));
    }
    fn send_payload(&self, payload: &[u8]) {
        self.sent
            .lock()
            .unwrap()
            .push(Sent::Payload(payload.to_vec()));
    }
}

/// A member whose audio goes to memory, and that record.
fn recorded_member(call: u64, role: Role, codec: Codec) -> (Arc<Member>, Arc<Recorded>) {
    let sink = Arc::new(Recorded {
        codec,
        sent: Default::default(),
    });
    let prompts = PromptSet::from_samples(PromptId::ALL.map(|id| (id, vec![id as i16 + 1; 10])));
    let m = Member::new(CallRef(call), role, prompts, sink.clone(), codec);
    (m, sink)
}

async fn member_with(call: u64, role: Role, codec: Codec) -> Arc<Member> {
    recorded_member(call, role, codec).0
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
    assert_eq!(
        rooms.join(RoomId(1), member(1).await, open),
        Ok(Presence::InRoom)
    );
    assert_eq!(
        rooms.join(RoomId(1), member(2).await, open),
        Ok(Presence::InRoom)
    );
    rooms.leave(RoomId(1), CallRef(1));
    assert_eq!(rooms.members(RoomId(1)), 1);
    rooms.leave(RoomId(1), CallRef(2));
    assert_eq!(rooms.room_count(), 0);
}

#[tokio::test]
async fn rooms_tell_when_they_open_and_close_and_hold_their_owner_while_open() {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let rooms = Rooms::new(3, Arc::from(vec![])).announcing(tx);
    let open = Policy::default();
    let mut told = || std::iter::from_fn(|| rx.try_recv().ok()).collect::<Vec<_>>();
    // A first member refused (a room of none) opens nothing.
    let none = Policy {
        max_members: Some(0),
        ..open
    };
    assert!(rooms.join(RoomId(1), member(1).await, none).is_err());
    assert_eq!(told(), []);
    assert!(rooms.join(RoomId(1), member(1).await, open).is_ok());
    assert!(rooms.join(RoomId(1), member(2).await, open).is_ok());
    assert!(rooms.join(RoomId(2), member(3).await, open).is_ok());
    assert_eq!(
        told(),
        [RoomEvent::Opened(RoomId(1)), RoomEvent::Opened(RoomId(2))]
    );
    rooms.set_owner(RoomId(1), Some(Arc::from("edge-b")), None);
    assert_eq!(rooms.owner(RoomId(1)).as_deref(), Some("edge-b"));
    assert_eq!(rooms.owner(RoomId(2)), None);
    // Held here at epoch 3: legs for that epoch are taken.
    rooms.set_owner(RoomId(2), Some(Arc::from("edge-a")), Some(3));
    assert_eq!(rooms.leased_here(RoomId(2)), Some(3));
    assert_eq!(rooms.leased_here(RoomId(1)), None);
    rooms.leave(RoomId(1), CallRef(1));
    assert_eq!(told(), []);
    rooms.leave(RoomId(1), CallRef(2));
    assert_eq!(told(), [RoomEvent::Closed(RoomId(1))]);
    // Opened again: a new room, its owner not known yet.
    assert!(rooms.join(RoomId(1), member(4).await, open).is_ok());
    assert_eq!(told(), [RoomEvent::Opened(RoomId(1))]);
    assert_eq!(rooms.owner(RoomId(1)), None);
    assert_eq!(rooms.leased_here(RoomId(1)), None);
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
        rooms.join(RoomId(7), p.clone(), policy),
        Ok(Presence::WaitingForHost)
    );
    assert_eq!(heard(&p), said(PromptId::WaitingForHost));
    let h = member_as(2, Role::Host).await;
    assert_eq!(
        rooms.join(RoomId(7), h.clone(), policy),
        Ok(Presence::InRoom)
    );
    assert!(seen.has_changed().unwrap());
    assert_eq!(*seen.borrow_and_update(), Presence::InRoom);
    rooms.leave(RoomId(7), CallRef(2));
    assert_eq!(*seen.borrow_and_update(), Presence::Ended);
    rooms.leave(RoomId(7), CallRef(1));
    assert_eq!(rooms.room_count(), 0);
}

#[tokio::test]
async fn host_mutes_everyone_else_and_locks_the_room() {
    let rooms = Rooms::new(3, Arc::from(vec![]));
    let open = Policy::default();
    let h = member_as(1, Role::Host).await;
    let (p, q) = (member(2).await, member(3).await);
    for m in [&h, &p, &q] {
        rooms.join(RoomId(4), m.clone(), open).unwrap();
    }
    // The last to join is told how many are in: "there are …".
    assert_eq!(heard(&q), said(PromptId::ThereAre));
    q.set_muted(true);
    assert_eq!(rooms.toggle_mute_all(RoomId(4)), Some(true));
    assert!(p.is_muted() && q.is_muted() && !h.is_muted());
    assert_eq!(heard(&p), said(PromptId::Muted));
    assert_ne!(heard(&q), said(PromptId::Muted), "q was muted already");
    assert_eq!(rooms.toggle_mute_all(RoomId(4)), Some(false));
    assert!(!p.is_muted() && !q.is_muted());
    assert_eq!(rooms.toggle_lock(RoomId(4)), Some(true));
    assert_eq!(
        rooms.join(RoomId(4), member(5).await, open),
        Err(Refusal::Locked)
    );
    assert_eq!(rooms.toggle_lock(RoomId(4)), Some(false));
    assert_eq!(rooms.toggle_lock(RoomId(99)), None, "no such room");
}

#[tokio::test]
async fn a_member_moved_here_brings_its_mute_admission_and_the_lock_back() {
    let rooms = Rooms::new(3, Arc::from(vec![]));
    let policy = Policy {
        host_admits: true,
        ..Policy::default()
    };
    // On the old owner: h hosts; p was let in and muted itself; q waits.
    let h = member_as(1, Role::Host).await;
    let (p, q) = (member(2).await, member(3).await);
    rooms.join(RoomId(4), h.clone(), policy).unwrap();
    assert_eq!(
        rooms.standing(RoomId(4), CallRef(1)),
        None,
        "never held here: its callers bring nothing past the owner's door"
    );
    rooms.set_owner(RoomId(4), Some(Arc::from("a")), Some(1));
    let mut watching = h.watch_standing();
    rooms.join(RoomId(4), p.clone(), policy).unwrap();
    rooms.join(RoomId(4), q.clone(), policy).unwrap();
    rooms.admit(RoomId(4), CallRef(2)).unwrap();
    p.set_muted(true);
    rooms.set_locked(RoomId(4), true).unwrap();
    assert!(watching.has_changed().unwrap(), "the lock touches members");
    watching.mark_unchanged();
    rooms.set_locked(RoomId(4), true).unwrap();
    assert!(!watching.has_changed().unwrap(), "no change, no touch");
    // The room is told to move (another node owns it): the members'
    // presence says so, their standing is the roster's.
    rooms.move_members(RoomId(4));
    let p_back = rooms.standing(RoomId(4), CallRef(2)).unwrap();
    let q_back = rooms.standing(RoomId(4), CallRef(3)).unwrap();
    assert_eq!(
        p_back,
        crate::access::leg::Standing {
            muted: true,
            admitted: true,
            locked: true
        }
    );
    assert!(!q_back.muted && !q_back.admitted && q_back.locked);
    assert_eq!(rooms.standing(RoomId(4), CallRef(9)), None);

    // On the next owner, the host is gone: p comes back first.
    let next = Rooms::new(3, Arc::from(vec![]));
    let p2 = member(2).await;
    assert_eq!(
        next.rejoin(RoomId(4), p2.clone(), policy, p_back),
        Ok(Presence::InRoom),
        "let in before: not held again, even locked"
    );
    assert!(p2.is_muted(), "still muted");
    assert_eq!(next.locked(RoomId(4)), Some(true), "still locked");
    assert_eq!(
        next.rejoin(RoomId(4), member(3).await, policy, q_back),
        Ok(Presence::WaitingForAdmission),
        "waiting before: waits again"
    );
    assert_eq!(
        next.join(RoomId(4), member(5).await, policy),
        Err(Refusal::Locked),
        "a newcomer finds it locked"
    );
}

#[tokio::test]
async fn a_refused_caller_leaves_no_room_behind() {
    let rooms = Rooms::new(3, Arc::from(vec![]));
    let none = Policy {
        max_members: Some(0),
        ..Policy::default()
    };
    assert_eq!(
        rooms.join(RoomId(1), member(1).await, none),
        Err(Refusal::Full)
    );
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

/// A PCMU member whose leg sends to a socket of the test's own.
async fn listened_member(call: u64) -> (Arc<Member>, tokio::net::UdpSocket) {
    let receiver = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let socket = Arc::new(MediaSocket::bind("127.0.0.1:0").unwrap());
    let leg = Arc::new(Leg::new(
        socket,
        Outbound::new(Codec::Pcmu, PayloadType(0), &mut rand::rng()),
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
    let (members, sinks): (Vec<_>, Vec<_>) = (1..=3)
        .map(|call| recorded_member(call, Role::Participant, Codec::Pcmu))
        .unzip();
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
    let last = |s: &Recorded| s.sent.lock().unwrap().pop();
    let (a, b) = (last(&sinks[0]), last(&sinks[1]));
    assert_eq!(a, b, "the others get the one shared payload");
    let Some(Sent::Payload(shared)) = a else {
        panic!("a payload: {a:?}")
    };
    let mut pcm = Vec::new();
    crate::media::g711::decode(crate::media::g711::Law::Mu, &shared, &mut pcm);
    let level = pcm.last().copied().unwrap_or_default();
    assert!(level > 3000, "and it carries the chime: {level}");
    match last(&sinks[2]) {
        Some(Sent::Frame(own)) => {
            assert!(own.iter().all(|s| *s == 0), "the newcomer hears no chime")
        }
        other => panic!("the newcomer gets its own frame: {other:?}"),
    }
    // Without a chime, the room's mix as it is, one payload for all.
    assert_eq!(fanout.send(&members, &tick, None, None), 1);
    let sent: Vec<_> = sinks.iter().map(|s| last(s)).collect();
    assert!(
        sent.iter().all(|s| matches!(s, Some(Sent::Payload(_)))),
        "{sent:?}"
    );
    assert!(sent.windows(2).all(|w| w[0] == w[1]));
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
    rooms.join(RoomId(5), member(1).await, open).unwrap();
    let second = member(2).await;
    // No await from here on: the room's tick task (same single-threaded
    // runtime) takes none of the chime before we read it.
    rooms.join(RoomId(5), second, open).unwrap();
    let played = rooms
        .with_room(RoomId(5), |room| {
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
    assert!(
        rooms
            .with_room(RoomId(5), |room| room.chime.is_none())
            .unwrap()
    );
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
