//! The access-code IVR: a pure, streaming state machine.
//!
//! Events go in with the current time (`handle`, `handle_timeout`); actions
//! come out (`poll_action`), and the one pending deadline is reported by
//! `poll_timeout` — the quinn-proto shape. No sockets, clocks or database:
//! the shell plays prompts, runs the lookup and feeds the answers back.
//!
//! ```text
//!  start ─► Collecting ──#──► Looking ──admitted──► Joining ──PlayDone──► InRoom
//!    ▲  (prompt playing;     │  (digits typed meanwhile
//!    │   a key stops it)     │   are kept: type-ahead)
//!    │                       └─refused/timeout─► attempts left? ─yes─► Collecting
//!    │                                                      └─no──► Goodbye ─PlayDone─► Done (Hangup)
//!    └── `*` clears the entry and re-prompts; `#` on an empty entry re-prompts
//! ```
//!
//! Timers: the first-digit timeout runs once the prompt has finished and
//! nothing is typed; the inter-digit timeout runs after each digit. A timeout
//! counts as a failed attempt (`timeout`). Keys A–D are ignored.
//!
//! When the access code brings a security code (`LookupResult::NeedSecurity`),
//! the same collection runs again for it — "enter the security code", its
//! own attempt counter, `VerifySecurity` instead of `Lookup` — and only its
//! success joins the room. Attempts are logged per stage; an access code
//! followed by a security stage logs only the security stage's end. Once
//! the caller is in the room the machine is done: keys go to the in-room
//! keypad ([`crate::conference::keypad`], through the call's control).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::access::{AccessCode, MAX_CODE_LEN, Outcome, Stage};
use crate::dtmf::Key;
use crate::ids::RoomId;
use crate::media::prompts::PromptId;

/// Identifies one `Play` so a late `PlayDone` for a stopped prompt is ignored.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PlayId(pub u32);

#[derive(Clone, Debug)]
pub struct IvrConfig {
    pub first_digit_timeout: Duration,
    pub inter_digit_timeout: Duration,
    pub max_attempts: u32,
}

impl Default for IvrConfig {
    fn default() -> Self {
        IvrConfig {
            first_digit_timeout: Duration::from_secs(10),
            inter_digit_timeout: Duration::from_secs(5),
            max_attempts: 3,
        }
    }
}

/// What the shell learnt about a submitted code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LookupResult {
    Admitted {
        room_id: RoomId,
    },
    /// The access code is right; a security code must follow.
    NeedSecurity {
        room_id: RoomId,
    },
    Refused(Outcome),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    Digit(Key),
    PlayDone(PlayId),
    /// The answer to `Lookup` or `VerifySecurity`.
    Lookup(LookupResult),
    /// The caller hung up (or the call failed) before the IVR finished.
    CallerGone,
}

#[derive(Clone, Debug, PartialEq, Eq)]
#[must_use]
pub enum Action {
    /// Play these prompts in order, replacing anything playing.
    Play { id: PlayId, prompts: Vec<PromptId> },
    /// Stop the current prompt (barge-in).
    StopPlay,
    /// Look the access code up; answer with `Event::Lookup`.
    Lookup(AccessCode),
    /// Check the security code; answer with `Event::Lookup`
    /// (`Admitted` or `Refused`).
    VerifySecurity(AccessCode),
    /// Record one attempt in the attempt log.
    Attempt { stage: Stage, outcome: Outcome },
    /// Bridge the caller into the room.
    Join { room_id: RoomId },
    /// End the call with this outcome.
    Hangup(Outcome),
}

// No Debug: the states hold the digits typed so far.
enum State {
    Collecting {
        digits: String,
        prompt: Option<PlayId>,
        deadline: Option<Instant>,
    },
    Looking {
        typed_ahead: Vec<Key>,
    },
    Joining {
        play: PlayId,
        room_id: RoomId,
    },
    InRoom,
    Goodbye {
        play: PlayId,
        outcome: Outcome,
    },
    Done,
}

/// What a caller hears when a code is refused for `outcome`.
fn refusal_prompt(outcome: Outcome) -> PromptId {
    match outcome {
        Outcome::NotStarted => PromptId::NotStarted,
        Outcome::Ended => PromptId::MeetingEnded,
        Outcome::Locked => PromptId::TooManyAttempts,
        _ => PromptId::InvalidCode,
    }
}

/// One caller's journey from answer to room (or goodbye). Not `Debug`: it
/// holds the digits typed so far.
pub struct Machine {
    config: IvrConfig,
    state: State,
    stage: Stage,
    /// Failed attempts in the current stage.
    failures: u32,
    /// The room the access code opened, while the security code is asked for.
    pending_room: Option<RoomId>,
    next_play: u32,
    actions: VecDeque<Action>,
}

impl Machine {
    /// A new machine that greets the caller at once.
    pub fn new(config: IvrConfig) -> Machine {
        let mut m = Machine {
            config,
            state: State::Done,
            stage: Stage::Access,
            failures: 0,
            pending_room: None,
            next_play: 0,
            actions: VecDeque::new(),
        };
        m.prompt_for_code(vec![PromptId::Welcome, PromptId::EnterAccessCode]);
        m
    }

    /// A machine for a caller already admitted elsewhere (a leg from the
    /// node that collected the code): in the room, nothing to ask.
    pub fn in_room(config: IvrConfig) -> Machine {
        Machine {
            config,
            state: State::InRoom,
            stage: Stage::Access,
            failures: 0,
            pending_room: None,
            next_play: 0,
            actions: VecDeque::new(),
        }
    }

    /// A machine for a caller who is locked out: "too many attempts",
    /// goodbye, hang up — no code is asked for or checked.
    pub fn locked(config: IvrConfig) -> Machine {
        let mut m = Machine {
            config,
            state: State::Done,
            stage: Stage::Access,
            failures: 0,
            pending_room: None,
            next_play: 0,
            actions: VecDeque::new(),
        };
        m.actions.push_back(Action::Attempt {
            stage: Stage::Access,
            outcome: Outcome::Locked,
        });
        let play = m.play(vec![PromptId::TooManyAttempts, PromptId::Goodbye]);
        m.state = State::Goodbye {
            play,
            outcome: Outcome::Locked,
        };
        m
    }

    #[must_use]
    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        match self.state {
            State::Collecting { deadline, .. } => deadline,
            _ => None,
        }
    }

    pub fn is_done(&self) -> bool {
        matches!(self.state, State::Done)
    }

    pub fn is_in_room(&self) -> bool {
        matches!(self.state, State::InRoom)
    }

    /// The code being asked for now.
    pub fn stage(&self) -> Stage {
        self.stage
    }

    pub fn handle(&mut self, now: Instant, event: Event) {
        match event {
            Event::Digit(key) => self.on_digit(now, key),
            Event::PlayDone(id) => self.on_play_done(now, id),
            Event::Lookup(result) => self.on_lookup(now, result),
            Event::CallerGone => self.on_caller_gone(),
        }
    }

    /// Fires the pending deadline if `now` has reached it.
    pub fn handle_timeout(&mut self, now: Instant) {
        if let State::Collecting {
            deadline: Some(d), ..
        } = self.state
            && now >= d
        {
            self.actions.push_back(Action::Attempt {
                stage: self.stage,
                outcome: Outcome::Timeout,
            });
            let prompt = self.code_prompt();
            self.fail(Outcome::Timeout, vec![prompt]);
        }
    }

    fn code_prompt(&self) -> PromptId {
        match self.stage {
            Stage::Access => PromptId::EnterAccessCode,
            Stage::Security => PromptId::EnterSecurityCode,
        }
    }

    fn play(&mut self, prompts: Vec<PromptId>) -> PlayId {
        let id = PlayId(self.next_play);
        self.next_play = self.next_play.wrapping_add(1);
        self.actions.push_back(Action::Play { id, prompts });
        id
    }

    fn prompt_for_code(&mut self, prompts: Vec<PromptId>) {
        let prompt = self.play(prompts);
        self.state = State::Collecting {
            digits: String::new(),
            prompt: Some(prompt),
            deadline: None,
        };
    }

    fn on_digit(&mut self, now: Instant, key: Key) {
        let inter_digit = self.config.inter_digit_timeout;
        let reprompt = self.code_prompt();
        match &mut self.state {
            // A–D are not part of any code: they neither stop a prompt nor count.
            _ if matches!(key, Key::A | Key::B | Key::C | Key::D) => {}
            State::Collecting {
                digits,
                prompt,
                deadline,
            } => {
                if prompt.take().is_some() {
                    self.actions.push_back(Action::StopPlay);
                }
                match key {
                    Key::Star => self.prompt_for_code(vec![reprompt]),
                    Key::Pound if digits.is_empty() => self.prompt_for_code(vec![reprompt]),
                    Key::Pound => self.submit(),
                    digit => {
                        digits.push(digit.to_char());
                        *deadline = Some(now + inter_digit);
                        if digits.len() >= MAX_CODE_LEN {
                            self.submit();
                        }
                    }
                }
            }
            State::Looking { typed_ahead } => {
                if typed_ahead.len() < MAX_CODE_LEN + 1 {
                    typed_ahead.push(key);
                }
            }
            State::Joining { .. } | State::InRoom | State::Goodbye { .. } | State::Done => {}
        }
    }

    fn submit(&mut self) {
        let State::Collecting { digits, .. } = &mut self.state else {
            return;
        };
        let entered = std::mem::take(digits);
        match AccessCode::parse(&entered) {
            Ok(code) => {
                self.actions.push_back(match self.stage {
                    Stage::Access => Action::Lookup(code),
                    Stage::Security => Action::VerifySecurity(code),
                });
                self.state = State::Looking {
                    typed_ahead: Vec::new(),
                };
            }
            // Unreachable by construction (only digits are pushed), but a
            // refusal is the safe answer.
            Err(_) => self.fail(Outcome::Wrong, vec![PromptId::InvalidCode]),
        }
    }

    fn on_play_done(&mut self, now: Instant, id: PlayId) {
        match self.state {
            State::Collecting {
                ref digits,
                ref mut prompt,
                ref mut deadline,
            } if *prompt == Some(id) => {
                *prompt = None;
                if digits.is_empty() {
                    *deadline = Some(now + self.config.first_digit_timeout);
                }
            }
            State::Joining { play, room_id } if play == id => {
                self.actions.push_back(Action::Join { room_id });
                self.state = State::InRoom;
            }
            State::Goodbye { play, outcome } if play == id => {
                self.actions.push_back(Action::Hangup(outcome));
                self.state = State::Done;
            }
            _ => {}
        }
    }

    fn on_lookup(&mut self, now: Instant, result: LookupResult) {
        let State::Looking { typed_ahead } = &mut self.state else {
            return;
        };
        let typed_ahead = std::mem::take(typed_ahead);
        match result {
            LookupResult::Admitted { room_id } => {
                let room_id = self.pending_room.take().unwrap_or(room_id);
                self.actions.push_back(Action::Attempt {
                    stage: self.stage,
                    outcome: Outcome::Admitted,
                });
                let play = self.play(vec![PromptId::Joining]);
                self.state = State::Joining { play, room_id };
            }
            LookupResult::NeedSecurity { room_id } if self.stage == Stage::Access => {
                self.stage = Stage::Security;
                self.failures = 0;
                self.pending_room = Some(room_id);
                self.prompt_for_code(vec![PromptId::EnterSecurityCode]);
                for key in typed_ahead {
                    self.on_digit(now, key);
                }
            }
            // A security code cannot ask for another: refuse, never admit.
            LookupResult::NeedSecurity { .. } | LookupResult::Refused(_) => {
                let outcome = match result {
                    LookupResult::Refused(outcome) => outcome,
                    _ => Outcome::Wrong,
                };
                self.actions.push_back(Action::Attempt {
                    stage: self.stage,
                    outcome,
                });
                let prompt = self.code_prompt();
                self.fail(outcome, vec![refusal_prompt(outcome), prompt]);
                for key in typed_ahead {
                    self.on_digit(now, key);
                }
            }
        }
    }

    /// Counts a failed attempt; re-prompts with `prompts` or says goodbye.
    fn fail(&mut self, outcome: Outcome, prompts: Vec<PromptId>) {
        self.failures += 1;
        // A lockout ends the call at once, whatever attempts are left.
        if self.failures >= self.config.max_attempts || outcome == Outcome::Locked {
            let mut bye = Vec::new();
            if outcome != Outcome::Timeout {
                bye.push(refusal_prompt(outcome));
            }
            bye.push(PromptId::Goodbye);
            let play = self.play(bye);
            self.state = State::Goodbye { play, outcome };
        } else {
            self.prompt_for_code(prompts);
        }
    }

    fn on_caller_gone(&mut self) {
        if matches!(self.state, State::Collecting { .. } | State::Looking { .. }) {
            self.actions.push_back(Action::Attempt {
                stage: self.stage,
                outcome: Outcome::Abandoned,
            });
        }
        self.state = State::Done;
    }
}

#[cfg(test)]
mod tests;
