//! Callers in one room: each hears the others, never itself — two on
//! G.711, then three on PCMU, PCMA and Opus. The test callers send tones at
//! different frequencies and look for them by Goertzel power in the audio
//! they receive and decode.

mod support;

use dialgate::media::Codec;
use support::Gateway;
use support::caller::{Caller, Dial, sine_frame, tail, tone_power};

const CODE: &str = "5550123";
const TONE_A: f64 = 697.0;
const TONE_B: f64 = 1477.0;

#[tokio::test]
async fn two_callers_hear_each_other_and_not_themselves() {
    let (dir, db) = Gateway::provisioned(CODE);
    let gw = Gateway::start(dir, db, &[]).await;
    let mut a = Caller::dial(&gw.sip, Dial::default()).await;
    let mut b = Caller::dial(
        &gw.sip,
        Dial {
            codecs: &[Codec::Pcma],
            ..Dial::default()
        },
    )
    .await;
    assert_eq!((a.invite_status, b.invite_status), (200, 200));
    assert_eq!(
        (a.codec, b.codec),
        (Codec::Pcmu, Codec::Pcma),
        "one leg on each G.711 law"
    );
    let code = format!("{CODE}#");
    tokio::join!(a.key_rfc4733(&code), b.key_rfc4733(&code));

    // 6 s of tones: the first ~2 s overlap the "joining" prompt.
    let (heard_a, heard_b) = tokio::join!(
        a.talk_and_listen(300, |i| sine_frame(TONE_A, 8000.0, i)),
        b.talk_and_listen(300, |i| sine_frame(TONE_B, 8000.0, i)),
    );
    assert_eq!(gw.log().matches("joined room").count(), 2, "{}", gw.log());
    let at_a = tail(&heard_a, 75);
    let at_b = tail(&heard_b, 75);
    assert!(
        at_a.len() >= 60 * 160 && at_b.len() >= 60 * 160,
        "both receive the mix"
    );

    let (a_hears_b, a_hears_a) = (tone_power(&at_a, TONE_B), tone_power(&at_a, TONE_A));
    let (b_hears_a, b_hears_b) = (tone_power(&at_b, TONE_A), tone_power(&at_b, TONE_B));
    eprintln!(
        "A hears B {a_hears_b:.0}, itself {a_hears_a:.0}; B hears A {b_hears_a:.0}, itself {b_hears_b:.0}"
    );
    // A full-scale sine of amplitude 8000 gives power ≈ (8000/2)² = 1.6e7.
    assert!(a_hears_b > 1e6, "A hears B's tone");
    assert!(b_hears_a > 1e6, "B hears A's tone");
    assert!(a_hears_a < a_hears_b / 1000.0, "A does not hear itself");
    assert!(b_hears_b < b_hears_a / 1000.0, "B does not hear itself");

    assert_eq!(a.hang_up().await, Some(200));
    assert_eq!(b.hang_up().await, Some(200));
}

/// Three callers, one per codec, each answered on it, keying the code at once.
async fn dial_three(gw: &Gateway, codecs: [Codec; 3]) -> Vec<Caller> {
    let mut callers = Vec::new();
    for codec in codecs {
        let one = [codec];
        let c = Caller::dial(
            &gw.sip,
            Dial {
                codecs: &one,
                ..Dial::default()
            },
        )
        .await;
        assert_eq!((c.invite_status, c.codec), (200, codec));
        callers.push(c);
    }
    let code = format!("{CODE}#");
    let [a, b, c] = &mut callers[..] else {
        unreachable!("three callers were pushed")
    };
    tokio::join!(
        a.key_rfc4733(&code),
        b.key_rfc4733(&code),
        c.key_rfc4733(&code)
    );
    callers
}

#[tokio::test]
async fn three_callers_on_pcmu_pcma_and_opus_hear_the_other_two_not_themselves() {
    let (dir, db) = Gateway::provisioned(CODE);
    let gw = Gateway::start(dir, db, &[]).await;
    const CODECS: [Codec; 3] = [Codec::Pcmu, Codec::Pcma, Codec::Opus];
    let mut callers = dial_three(&gw, CODECS).await;
    let [a, b, c] = &mut callers[..] else {
        unreachable!("three callers were dialled")
    };
    const TONES: [f64; 3] = [697.0, 1209.0, 1477.0];
    let (heard_a, heard_b, heard_c) = tokio::join!(
        a.talk_and_listen(300, |i| sine_frame(TONES[0], 8000.0, i)),
        b.talk_and_listen(300, |i| sine_frame(TONES[1], 8000.0, i)),
        c.talk_and_listen(300, |i| sine_frame(TONES[2], 8000.0, i)),
    );
    assert_eq!(gw.log().matches("joined room").count(), 3, "{}", gw.log());
    for (me, heard) in [heard_a, heard_b, heard_c].iter().enumerate() {
        let tail = tail(heard, 75);
        assert!(tail.len() >= 60 * 160, "caller {me} receives the mix");
        let power: Vec<f64> = TONES.iter().map(|f| tone_power(&tail, *f)).collect();
        eprintln!("caller {me} ({:?}) hears {power:.0?}", CODECS[me]);
        for (other, p) in power.iter().enumerate().filter(|(o, _)| *o != me) {
            assert!(*p > 1e6, "caller {me} hears caller {other}: {p:.0}");
            assert!(power[me] < p / 1000.0, "caller {me} does not hear itself");
        }
    }
    for c in &mut callers {
        assert_eq!(c.hang_up().await, Some(200));
    }
}

#[tokio::test]
async fn star_six_mutes_a_caller_for_the_room_and_again_unmutes() {
    let (dir, db) = Gateway::provisioned(CODE);
    let gw = Gateway::start(dir, db, &[]).await;
    let mut a = Caller::dial(&gw.sip, Dial::default()).await;
    let mut b = Caller::dial(&gw.sip, Dial::default()).await;
    let code = format!("{CODE}#");
    tokio::join!(a.key_rfc4733(&code), b.key_rfc4733(&code));
    // Past the "joining" prompt, both in the room.
    tokio::join!(
        a.talk_and_listen(120, |i| sine_frame(TONE_A, 8000.0, i)),
        b.talk_and_listen(120, |i| sine_frame(TONE_B, 8000.0, i)),
    );
    let b_hears_a =
        |heard: &[(dialgate::media::rtp::Header, Vec<i16>)]| tone_power(&tail(heard, 50), TONE_A);

    a.key_rfc4733("*6").await;
    let (_, heard_b) = tokio::join!(
        a.talk_and_listen(100, |i| sine_frame(TONE_A, 8000.0, i)),
        b.talk_and_listen(100, |i| sine_frame(TONE_B, 8000.0, i)),
    );
    let muted = b_hears_a(&heard_b);
    assert!(gw.log().contains("mute toggled"), "{}", gw.log());
    assert!(muted < 1e4, "B no longer hears muted A: {muted:.0}");

    a.key_rfc4733("*6").await;
    let (_, heard_b) = tokio::join!(
        a.talk_and_listen(100, |i| sine_frame(TONE_A, 8000.0, i)),
        b.talk_and_listen(100, |i| sine_frame(TONE_B, 8000.0, i)),
    );
    let unmuted = b_hears_a(&heard_b);
    assert!(unmuted > 1e6, "B hears A again: {unmuted:.0}");
    assert_eq!(a.hang_up().await, Some(200));
    assert_eq!(b.hang_up().await, Some(200));
}

#[tokio::test]
async fn members_hear_a_rising_chime_when_someone_joins_and_a_falling_one_when_they_leave() {
    let (dir, db) = Gateway::provisioned(CODE);
    let gw = Gateway::start(dir, db, &[]).await;
    let code = format!("{CODE}#");
    let mut a = Caller::dial(&gw.sip, Dial::default()).await;
    a.key_rfc4733(&code).await;
    // "Joining" (2 s), then "you are the only person…" (2.6 s), with margin.
    let alone = a.talk_and_listen(300, |_| vec![0; 160]).await;
    assert!(
        tail(&alone, 150).iter().any(|s| s.abs() > 1000),
        "A hears something while alone: the only-person announcement"
    );
    let quiet = tail(&alone, 25);
    assert!(quiet.iter().all(|s| s.abs() < 100), "then silence");

    // B arrives: silent itself, so A hears only the chime.
    let mut b = Caller::dial(&gw.sip, Dial::default()).await;
    let (heard, ()) = tokio::join!(a.talk_and_listen(350, |_| vec![0; 160]), async {
        b.key_rfc4733(&code).await
    });
    let heard = tail(&heard, 350);
    let (first, second) = chime(&heard).expect("an entry chime");
    assert!(
        tone_power(first, 440.0) > 1e6 && tone_power(second, 660.0) > 1e6,
        "entry chime rises: 440 Hz then 660 Hz"
    );

    assert_eq!(b.hang_up().await, Some(200));
    let after = a.talk_and_listen(50, |_| vec![0; 160]).await;
    let after = tail(&after, 50);
    let (first, second) = chime(&after).expect("an exit chime");
    assert!(
        tone_power(first, 660.0) > 1e6 && tone_power(second, 440.0) > 1e6,
        "exit chime falls: 660 Hz then 440 Hz"
    );
    assert_eq!(a.hang_up().await, Some(200));
}

/// The two 100 ms notes of the first chime in `samples`, if any.
fn chime(samples: &[i16]) -> Option<(&[i16], &[i16])> {
    let start = samples.iter().position(|s| s.abs() > 300)?;
    let notes = samples.get(start..start + 1600)?;
    Some(notes.split_at(800))
}

#[tokio::test]
async fn wideband_callers_hear_each_other_above_4_khz_and_g711_gets_the_voice_band() {
    use support::caller::{tone_power_at, wide_sine_frame};
    const HIGH: f64 = 5500.0; // only a 16 kHz room carries it
    const LOW: f64 = 1000.0;
    let (dir, db) = Gateway::provisioned(CODE);
    let gw = Gateway::start(dir, db, &[]).await;
    let mut callers = dial_three(&gw, [Codec::G722, Codec::Opus, Codec::Pcmu]).await;
    for c in &mut callers {
        c.wideband = true;
    }
    let [g722, opus, pcmu] = &mut callers[..] else {
        unreachable!("three callers were dialled")
    };
    // The G.722 caller sends 1 kHz and 5.5 kHz; the others listen.
    let silence = |_| vec![0; 320];
    let (_, at_opus, at_pcmu) = tokio::join!(
        g722.talk_and_listen(350, |i| {
            let (a, b) = (
                wide_sine_frame(LOW, 4000.0, i),
                wide_sine_frame(HIGH, 4000.0, i),
            );
            a.iter().zip(&b).map(|(x, y)| x + y).collect()
        }),
        opus.talk_and_listen(350, silence),
        pcmu.talk_and_listen(350, silence),
    );
    let power = |heard: &[(dialgate::media::rtp::Header, Vec<i16>)], f| {
        tone_power_at(&tail(heard, 75), f, 16000.0)
    };
    let (opus_high, opus_low) = (power(&at_opus, HIGH), power(&at_opus, LOW));
    let (pcmu_high, pcmu_low) = (power(&at_pcmu, HIGH), power(&at_pcmu, LOW));
    eprintln!(
        "Opus hears 5.5 kHz {opus_high:.0}, 1 kHz {opus_low:.0}; PCMU hears 5.5 kHz {pcmu_high:.0}, 1 kHz {pcmu_low:.0}"
    );
    assert!(opus_low > 1e6, "the Opus caller hears the voice band");
    assert!(opus_high > 1e6, "…and above 4 kHz: the room is wideband");
    assert!(pcmu_low > 1e6, "the PCMU caller hears the voice band");
    assert!(
        pcmu_high < opus_high / 100.0,
        "…and nothing G.711 cannot carry"
    );
    for c in &mut callers {
        assert_eq!(c.hang_up().await, Some(200));
    }
}
