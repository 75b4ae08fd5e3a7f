//! The prompt clock: one 20 ms tick that sends the next prompt frame of
//! every call in the IVR, instead of a timer per call.
//!
//! At 200 calls/s about 1,100 calls are in the IVR at once; with a timer
//! each, the runtime woke 55,000 call tasks a second to send one packet
//! apiece. A call now hands its leg and prompts to the clock
//! ([`PromptClock::add`]) and hears from it only when a play ends
//! ([`Playout::finished`]). The room's own clock sends the mix once the call
//! is in a room, so a call's frames come from the prompt clock only while
//! [`Playout::set_on`] says so.
//!
//! Frames stay 20 ms apart per call, as before; calls' frames now leave
//! together on each tick rather than each on its own phase. A late tick is
//! caught up (burst), so a stream keeps its rate. Left out: sharding the
//! tick over several tasks (at 2× the bench's rate one tick sends about
//! 2,000 packets, well inside its 20 ms).

use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use tokio::time::MissedTickBehavior;

use super::player::Player;
use crate::ivr::PlayId;
use crate::media::leg::Leg;
use crate::media::prompts::{PromptId, PromptSet};

/// How often every playing call gets its next frame.
pub const FRAME: Duration = Duration::from_millis(20);

#[derive(Debug, Default)]
struct PlayState {
    player: Player,
    /// The clock sends this call's frames (it is in the IVR, or closing).
    on: bool,
    /// A play that ended and that the call has not taken yet.
    done: Option<PlayId>,
    /// The call waiting for `done`.
    waiting: Option<Waker>,
}

/// One call's prompt playback, driven by the clock.
#[derive(Debug)]
pub struct Playout {
    leg: Arc<Leg>,
    prompts: PromptSet,
    state: Mutex<PlayState>,
}

impl Playout {
    fn state(&self) -> MutexGuard<'_, PlayState> {
        // Every update is one step: a panic elsewhere leaves it whole.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The call's prompts.
    pub fn prompts(&self) -> &PromptSet {
        &self.prompts
    }

    /// Plays `prompts` from their first frame, replacing what played (whose
    /// end is then never reported).
    pub fn play(&self, id: PlayId, prompts: Vec<PromptId>) {
        let mut s = self.state();
        s.player.play(id, prompts);
        s.done = None;
    }

    /// Plays `prompts` over and over until stopped or replaced; no end is
    /// reported.
    pub fn play_looped(&self, id: PlayId, prompts: Vec<PromptId>) {
        let mut s = self.state();
        s.player.play_looped(id, prompts);
        s.done = None;
    }

    /// Stops what plays (barge-in): silence follows, and no end is reported.
    pub fn stop(&self) {
        let mut s = self.state();
        s.player.stop();
        s.done = None;
    }

    /// Stops the play `id`, if that is what plays (a play that replaced it
    /// goes on), and forgets its end if it ended.
    pub fn stop_play(&self, id: PlayId) {
        let mut s = self.state();
        if s.player.playing() == Some(id) {
            s.player.stop();
        }
        if s.done == Some(id) {
            s.done = None;
        }
    }

    /// Whether the clock sends this call's frames (prompt or silence).
    pub fn set_on(&self, on: bool) {
        self.state().on = on;
    }

    /// The next play that ends. Cancel-safe: an end not taken stays.
    pub async fn finished(&self) -> PlayId {
        std::future::poll_fn(|cx| self.poll_finished(cx)).await
    }

    /// Polls for the next play that ends. The waker is kept under the
    /// state's own lock, taken anyway, where a `Notify` added and removed
    /// a waiter on each of the call's polls (twice per RTP packet it
    /// receives). One task waits: the last to poll is woken.
    pub fn poll_finished(&self, cx: &mut Context<'_>) -> Poll<PlayId> {
        let mut s = self.state();
        if let Some(id) = s.done.take() {
            return Poll::Ready(id);
        }
        match &mut s.waiting {
            Some(waker) if waker.will_wake(cx.waker()) => {}
            waiting => *waiting = Some(cx.waker().clone()),
        }
        Poll::Pending
    }

    /// The clock's 20 ms: the next frame, or silence, to the leg.
    fn tick(&self) {
        let (at, ended) = {
            let mut s = self.state();
            if !s.on {
                return;
            }
            match s.player.next_prompt_frame(&self.prompts) {
                Ok(at) => (at, None),
                Err(done) => {
                    s.done = Some(done);
                    (None, s.waiting.take())
                }
            }
        };
        self.leg.send_prompt(&self.prompts, at);
        if let Some(waiting) = ended {
            waiting.wake();
        }
    }
}

/// The clock every call's prompts play on.
#[derive(Debug, Default)]
pub struct PromptClock {
    /// Calls playing; a call that ended (dropped its [`Playout`]) leaves on
    /// the next tick.
    calls: Mutex<Vec<Weak<Playout>>>,
}

impl PromptClock {
    /// Starts the clock on the current runtime; it stops when dropped.
    pub fn start() -> Arc<PromptClock> {
        let clock = Arc::new(PromptClock::default());
        tokio::spawn(run(Arc::downgrade(&clock)));
        clock
    }

    /// A playout for a call's `leg`, off until [`Playout::set_on`].
    pub fn add(&self, leg: Arc<Leg>, prompts: PromptSet) -> Arc<Playout> {
        let playout = Arc::new(Playout {
            leg,
            prompts,
            state: Mutex::new(PlayState::default()),
        });
        self.calls
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(Arc::downgrade(&playout));
        playout
    }
}

async fn run(clock: Weak<PromptClock>) {
    let mut tick = tokio::time::interval(FRAME);
    tick.set_missed_tick_behavior(MissedTickBehavior::Burst);
    let mut playing: Vec<Arc<Playout>> = Vec::new();
    loop {
        tick.tick().await;
        let Some(clock) = clock.upgrade() else { return };
        // Taken out of the lock, so a call joining waits for no send.
        clock
            .calls
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|call| call.upgrade().map(|p| playing.push(p)).is_some());
        drop(clock);
        for call in playing.drain(..) {
            call.tick();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::Codec;
    use crate::media::rtp::{self, Latch, Outbound, PayloadType};
    use crate::media::socket::MediaSocket;
    use tokio::net::UdpSocket;
    use tokio::time::Instant;

    /// A playout on `clock` whose leg sends PCMU to a socket of the test's.
    async fn listened(clock: &PromptClock, prompts: PromptSet) -> (Arc<Playout>, UdpSocket) {
        let receiver = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let leg = Arc::new(Leg::new(
            Arc::new(MediaSocket::bind("127.0.0.1:0").unwrap()),
            Outbound::new(Codec::Pcmu, PayloadType(0), &mut rand::rng()),
            Latch::new(Some(receiver.local_addr().unwrap()), Vec::new()),
        ));
        (clock.add(leg, prompts), receiver)
    }

    /// The next packet's payload and when it came.
    async fn next(receiver: &UdpSocket) -> (Vec<u8>, Instant) {
        let mut buf = [0u8; 1500];
        let n = receiver.recv(&mut buf).await.unwrap();
        (rtp::read(&buf[..n]).unwrap().1.to_vec(), Instant::now())
    }

    /// Whether no play ends over the next ten ticks (simulated time).
    async fn no_end_for_10_ticks(playout: &Playout) -> bool {
        tokio::time::timeout(FRAME * 10, playout.finished())
            .await
            .is_err()
    }

    fn prompts() -> PromptSet {
        // Welcome: two frames and a half (three frames, the last padded).
        PromptSet::from_samples([(PromptId::Welcome, vec![8000; 800])])
    }

    #[tokio::test(start_paused = true)]
    async fn a_play_is_sent_a_frame_every_20_ms_then_its_end_is_reported_once() {
        let clock = PromptClock::start();
        let (playout, receiver) = listened(&clock, prompts()).await;
        playout.set_on(true);
        playout.play(PlayId(7), vec![PromptId::Welcome]);
        let silence = vec![0xff; 160];
        let mut frames = Vec::new();
        for _ in 0..3 {
            frames.push(next(&receiver).await);
        }
        assert!(frames.iter().all(|(p, _)| p.len() == 160 && *p != silence));
        for pair in frames.windows(2) {
            assert_eq!(pair[1].1 - pair[0].1, FRAME, "20 ms apart");
        }
        // The tick after the last frame ends the play, with silence.
        let (after, at) = next(&receiver).await;
        assert_eq!(after, silence);
        assert_eq!(at - frames[2].1, FRAME);
        assert_eq!(playout.finished().await, PlayId(7));
        // Silence goes on, and no second end comes.
        assert_eq!(next(&receiver).await.0, silence);
        assert!(no_end_for_10_ticks(&playout).await, "no end reported");
    }

    #[tokio::test(start_paused = true)]
    async fn a_playout_that_is_off_sends_nothing_and_a_dropped_one_leaves_the_clock() {
        let clock = PromptClock::start();
        let (off, quiet) = listened(&clock, prompts()).await;
        let (on, heard) = listened(&clock, prompts()).await;
        off.play(PlayId(1), vec![PromptId::Welcome]);
        on.set_on(true);
        // Ten ticks for the one that is on, none for the other.
        for _ in 0..10 {
            next(&heard).await;
        }
        let mut buf = [0u8; 1500];
        assert!(quiet.try_recv(&mut buf).is_err(), "off: nothing sent");
        // Turned on, it starts where it stood: its play's first frame.
        off.set_on(true);
        assert_ne!(next(&quiet).await.0, vec![0xff; 160]);
        drop(off);
        // The other's frame of that tick, then the next tick's: by then
        // the clock has looked at its calls again.
        next(&heard).await;
        next(&heard).await;
        assert_eq!(
            clock.calls.lock().unwrap().len(),
            1,
            "the dropped call left"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_stopped_or_replaced_play_reports_no_end() {
        let clock = PromptClock::start();
        let (playout, receiver) = listened(&clock, prompts()).await;
        playout.set_on(true);
        playout.play(PlayId(1), vec![PromptId::Welcome]);
        next(&receiver).await;
        playout.play(PlayId(2), vec![PromptId::Welcome]);
        next(&receiver).await;
        playout.stop();
        for _ in 0..6 {
            next(&receiver).await;
        }
        assert!(no_end_for_10_ticks(&playout).await, "no end reported");
    }

    #[tokio::test(start_paused = true)]
    async fn stopping_a_play_by_id_leaves_another_play_alone() {
        let clock = PromptClock::start();
        let (playout, receiver) = listened(&clock, prompts()).await;
        playout.set_on(true);
        playout.play(PlayId(1), vec![PromptId::Welcome]);
        next(&receiver).await;
        // Another play replaced it: stopping the first stops nothing.
        playout.play(PlayId(2), vec![PromptId::Welcome]);
        playout.stop_play(PlayId(1));
        for _ in 0..4 {
            next(&receiver).await;
        }
        assert_eq!(playout.finished().await, PlayId(2), "played to its end");
        // Stopped by its own id: silence, and no end.
        playout.play(PlayId(3), vec![PromptId::Welcome]);
        next(&receiver).await;
        playout.stop_play(PlayId(3));
        assert_eq!(next(&receiver).await.0, vec![0xff; 160]);
        assert!(no_end_for_10_ticks(&playout).await, "no end reported");
    }
}
