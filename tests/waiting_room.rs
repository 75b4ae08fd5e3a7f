//! Hosts and the waiting room, over real calls: a participant who arrives
//! before the host hears the hold music until the host joins, then hears
//! the host; the room ends when its last host leaves; "host admits" holds a
//! caller until the API admits it; a full room turns callers away.
//!
//! The hold music (`prompts/hold_music.flac`) is an arpeggio of pure notes,
//! so it is recognised here by where its power lies: at the notes.

mod support;

use std::time::Duration;

use support::Gateway;
use support::caller::{Caller, Dial, sine_frame, tail, tone_power};
use support::http;

const CODE: &str = "5550123";
const HOST_TONE: f64 = 1000.0;
/// Every note of the hold music: C, Am, F and G chords.
const NOTES: [f64; 11] = [
    174.61, 196.0, 220.0, 246.94, 261.63, 293.66, 329.63, 349.23, 392.0, 440.0, 523.25,
];

fn mean_square(samples: &[i16]) -> f64 {
    samples.iter().map(|s| f64::from(*s).powi(2)).sum::<f64>() / samples.len().max(1) as f64
}

/// The share of the power that lies at the music's notes, over 250 ms
/// windows (a steady sine puts half its mean square at its own frequency
/// in this measure, so pure music scores near 0.5, speech far less).
fn music_share(samples: &[i16]) -> f64 {
    let windows: Vec<f64> = samples
        .chunks_exact(2000)
        .filter(|w| mean_square(w) > 1e4)
        .map(|w| NOTES.iter().map(|f| tone_power(w, *f)).sum::<f64>() / mean_square(w))
        .collect();
    windows.iter().sum::<f64>() / windows.len().max(1) as f64
}

fn silence(_: usize) -> Vec<i16> {
    vec![0; 160]
}

/// Adds room `board` (access code 2468, and `flags`) to the test tenant.
fn add_room(db: &str, flags: &[&str]) {
    let (rc, _, err) = support::add_room(db, "acme", "board", "2468", flags);
    assert_eq!(rc, 0, "{err}");
}

/// The live calls in room `room_id`, oldest first: (id, state, role).
async fn calls_in(gw: &Gateway, token: &str, room_id: i64) -> Vec<(u64, String, String)> {
    let (status, calls) = http::call(&gw.api, "GET", "/v1/calls", Some(token), None).await;
    assert_eq!(status, 200, "{calls}");
    calls
        .as_array()
        .expect("a list")
        .iter()
        .filter(|c| c["room_id"].as_i64() == Some(room_id))
        .map(|c| {
            (
                c["id"].as_u64().expect("id"),
                c["state"].as_str().unwrap_or_default().to_owned(),
                c["role"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

#[tokio::test]
async fn a_participant_hears_hold_music_until_the_host_joins_and_the_room_ends_with_the_host() {
    let (dir, db) = Gateway::provisioned(CODE);
    add_room(
        &db,
        &["--host-code", "9753", "--wait-for-host", "--end-with-host"],
    );
    let gw = Gateway::start(dir, db, &[]).await;
    let token = http::token(&gw.db);

    let mut p = Caller::dial(&gw.sip, Dial::default()).await;
    p.key_rfc4733("2468#").await;
    // "Joining" (2 s), "the host has not joined yet…" (5 s), then music.
    let waiting = p.talk_and_listen(500, silence).await;
    assert_eq!(
        calls_in(&gw, &token, 2).await,
        vec![(1, "waiting".to_owned(), "participant".to_owned())],
        "the participant waits"
    );
    let music = tail(&waiting, 100);
    let (level, share) = (mean_square(&music).sqrt(), music_share(&music));
    eprintln!("waiting: RMS {level:.0}, music share {share:.2}");
    assert!(
        level > 1000.0,
        "the waiting caller hears something: RMS {level:.0}"
    );
    assert!(share > 0.15, "…and it is the hold music: share {share:.2}");
    // The prompt before the music is speech, not music.
    let prompt = tail(&waiting[..waiting.len() - 150], 100);
    let speech = music_share(&prompt);
    eprintln!("the waiting prompt: music share {speech:.2}");
    assert!(speech < share / 2.0, "speech scores {speech:.2}");

    // The host arrives and talks: the participant goes in and hears it.
    let mut h = Caller::dial(&gw.sip, Dial::default()).await;
    // The host keys its code (2 s), hears "joining" (2 s) while already
    // talking, and is in the room from then on.
    let (joined, ()) = tokio::join!(p.talk_and_listen(450, silence), async {
        h.key_rfc4733("9753#").await;
        h.talk_and_listen(400, |i| sine_frame(HOST_TONE, 8000.0, i))
            .await;
    });
    let calls = calls_in(&gw, &token, 2).await;
    let states: Vec<(&str, &str)> = calls
        .iter()
        .map(|(_, s, r)| (s.as_str(), r.as_str()))
        .collect();
    assert_eq!(
        states,
        vec![("in_room", "participant"), ("in_room", "host")],
        "both in the room"
    );
    let room = tail(&joined, 75);
    let host = tone_power(&room, HOST_TONE);
    let share = music_share(&room);
    eprintln!("after the host joined: host tone {host:.0}, music share {share:.2}");
    assert!(host > 1e6, "the participant hears the host: {host:.0}");
    assert!(share < 0.05, "and no more music: share {share:.2}");

    // The last host leaves: the room ends, the participant is told and hung up.
    assert_eq!(h.hang_up().await, Some(200));
    let bye = p.wait_bye(Duration::from_secs(15)).await.expect("a BYE");
    let reason = bye.headers_named("Reason").collect::<Vec<_>>().join(",");
    assert!(
        reason.contains("Q.850;cause=16") && reason.contains("conference ended"),
        "Reason: {reason}"
    );
}

#[tokio::test]
async fn host_admits_holds_a_caller_until_the_api_admits_it() {
    let (dir, db) = Gateway::provisioned(CODE);
    add_room(&db, &["--host-admits"]);
    let gw = Gateway::start(dir, db, &[]).await;
    let token = http::token(&gw.db);
    let mut p = Caller::dial(&gw.sip, Dial::default()).await;
    p.key_rfc4733("2468#").await;
    // Past "joining" (2 s): in the waiting room.
    p.talk_and_listen(150, silence).await;
    let calls = calls_in(&gw, &token, 2).await;
    let [(id, state, _)] = &calls[..] else {
        panic!("one call in the room: {calls:?}")
    };
    assert_eq!(state, "waiting");

    let path = format!("/v1/calls/{id}/admit");
    let (status, call) = http::call(&gw.api, "POST", &path, Some(&token), None).await;
    assert_eq!(status, 200, "{call}");
    assert_eq!(call["state"], "in_room");
    let (status, again) = http::call(&gw.api, "POST", &path, Some(&token), None).await;
    assert_eq!(status, 409, "not waiting any more: {again}");
    let (status, _) = http::call(&gw.api, "POST", "/v1/calls/999/admit", Some(&token), None).await;
    assert_eq!(status, 404);

    // Alone in the room now: "you are the only person in this conference".
    let heard = p.talk_and_listen(150, silence).await;
    let heard = tail(&heard, 150);
    let level = mean_square(&heard).sqrt();
    assert!(
        level > 500.0,
        "the admitted caller hears the announcement: RMS {level:.0}"
    );
    let share = music_share(&heard);
    assert!(share < 0.05, "speech, not the hold music: share {share:.2}");
    assert!(
        level > 500.0,
        "the admitted caller hears the announcement: RMS {level:.0}"
    );
    assert_eq!(p.hang_up().await, Some(200));
}

#[tokio::test]
async fn a_full_room_turns_the_next_caller_away_with_a_reason() {
    let (dir, db) = Gateway::provisioned(CODE);
    add_room(&db, &["--max-members", "1"]);
    let gw = Gateway::start(dir, db, &[]).await;
    let mut a = Caller::dial(&gw.sip, Dial::default()).await;
    a.key_rfc4733("2468#").await;
    let mut b = Caller::dial(&gw.sip, Dial::default()).await;
    b.key_rfc4733("2468#").await;
    let bye = b.wait_bye(Duration::from_secs(15)).await.expect("a BYE");
    let reason = bye.headers_named("Reason").collect::<Vec<_>>().join(",");
    assert!(
        reason.contains("cause=486") && reason.contains("conference full"),
        "Reason: {reason}"
    );
    // The first caller is still in.
    assert!(gw.log().contains("room refused the caller"), "{}", gw.log());
    assert_eq!(a.hang_up().await, Some(200));
}

/// Polls `GET /v1/calls` (every 50 ms, at most 10 s) until `done` holds for
/// the calls in room 2.
async fn until_calls(gw: &Gateway, token: &str, done: impl Fn(&[serde_json::Value]) -> bool) {
    for _ in 0..200 {
        let (_, calls) = http::call(&gw.api, "GET", "/v1/calls", Some(token), None).await;
        let inside: Vec<serde_json::Value> = calls
            .as_array()
            .map(|a| {
                a.iter()
                    .filter(|c| c["room_id"].as_i64() == Some(2))
                    .cloned()
                    .collect()
            })
            .unwrap_or_default();
        if done(&inside) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the calls never got there: {}", gw.log());
}

#[tokio::test]
async fn the_host_mutes_everyone_else_and_locks_the_room_from_the_keypad() {
    let (dir, db) = Gateway::provisioned(CODE);
    add_room(&db, &["--host-code", "9753"]);
    let gw = Gateway::start(dir, db, &[]).await;
    let token = http::token(&gw.db);
    let mut h = Caller::dial(&gw.sip, Dial::default()).await;
    let mut p = Caller::dial(&gw.sip, Dial::default()).await;
    tokio::join!(h.key_rfc4733("9753#"), p.key_rfc4733("2468#"));
    until_calls(&gw, &token, |c| {
        c.len() == 2 && c.iter().all(|c| c["state"] == "in_room")
    })
    .await;

    // A participant's *7 and *5 are not host commands: nothing happens.
    p.key_rfc4733("*7").await;
    p.key_rfc4733("*5").await;
    h.key_rfc4733("*7").await;
    until_calls(&gw, &token, |c| {
        c.iter().all(|c| c["muted"] == (c["role"] == "participant"))
    })
    .await;
    assert_eq!(
        gw.log().matches("participants muted by the host").count(),
        1
    );

    h.key_rfc4733("*5").await;
    let mut late = Caller::dial(&gw.sip, Dial::default()).await;
    late.key_rfc4733("2468#").await;
    let bye = late.wait_bye(Duration::from_secs(15)).await.expect("a BYE");
    let reason = bye.headers_named("Reason").collect::<Vec<_>>().join(",");
    assert!(
        reason.contains("cause=403") && reason.contains("conference locked"),
        "Reason: {reason}"
    );
    assert_eq!(
        gw.log().matches("room lock toggled").count(),
        1,
        "only the host's *5 counted (the participant's was ignored)"
    );
    // The operator unlocks through the API: the next participant gets in.
    let (status, room) =
        http::call(&gw.api, "POST", "/v1/rooms/2/unlock", Some(&token), None).await;
    assert_eq!((status, &room["locked"]), (200, &serde_json::json!(false)));
    let mut next = Caller::dial(&gw.sip, Dial::default()).await;
    next.key_rfc4733("2468#").await;
    until_calls(&gw, &token, |c| c.len() == 3).await;
    assert_eq!(next.hang_up().await, Some(200));
    assert_eq!(h.hang_up().await, Some(200));
    assert_eq!(p.hang_up().await, Some(200));
}
