//! The replay engine: starts virtual calls at a rate, each playing one
//! script's caller side against the target over UDP, and sums their endings.
//!
//! One SIP socket serves every call (as SIPp does); a router hands each
//! message to its call by Call-ID. Each call binds its own RTP socket. A call
//! sends the INVITE as an INVITE client transaction (`sip::transaction`:
//! Timer A resends it until a response, Timer B gives up, each 2xx is ACKed
//! and a failure's ACK sent by the transaction), then plays the script's
//! steps at their recorded times after the answer — divided by `speed` —
//! with in-dialog requests retransmitted as non-INVITE client transactions.
//! It answers what the gateway sends (BYE, INFO, re-INVITE, OPTIONS) as a
//! UA would, and reads the gateway's verdicts from the `dialgate-outcome`
//! Info Package it asks for and from the `Reason` of a gateway BYE.
//!
//! Here: the run (launching at the rate, summing endings, the hard stop),
//! the SIP router and the verdicts read from the gateway's words. One
//! call's setup is `engine/setup.rs`, its life after the answer
//! `engine/call.rs`, what the gateway sends it `engine/answers.rs`.
//!
//! Every run is bounded: at most `calls` calls, no new call after
//! `duration`, and calls still up then are hung up and counted `cut`.
//!
//! Time is tokio's clock alone (`tokio::time::Instant`, handed to the
//! transactions as `into_std()`), so a test on paused time runs a whole
//! call in no wall-clock time and reads exact durations.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;

use dialgate::cause::Cause;
use dialgate::sip::message::{self, Message, param};
use dialgate::sip::transaction::TimerConfig;

use super::codes::CodeRow;
use super::net::{Net, Socket};
use super::report::{Ending, Report, Verdict};
use super::rewrite::Identities;
use super::script::{Script, ScriptError};

mod answers;
mod call;
mod setup;

use call::call;

/// What to run.
#[derive(Clone, Debug)]
pub struct Plan {
    /// Calls take the scripts in turn.
    pub scripts: Vec<Script>,
    /// Calls take the code rows in turn; empty keeps the traces' own keys.
    pub codes: Vec<CodeRow>,
    pub target: SocketAddr,
    /// Local address for the SIP and RTP sockets.
    pub bind: IpAddr,
    /// New calls per second.
    pub rate: f64,
    pub calls: u64,
    pub concurrency: usize,
    /// Playback speed: 2.0 plays a trace in half its time.
    pub speed: f64,
    /// No call starts after this; calls still up are then hung up.
    pub duration: Duration,
    pub timers: TimerConfig,
    /// UDP, or memory for tests on paused time.
    pub net: Net,
}

#[derive(thiserror::Error, Debug)]
pub enum ReplayError {
    #[error("no trace to replay")]
    NoScript,
    #[error("trace {trace}: {source}")]
    Script { trace: usize, source: ScriptError },
    #[error("cannot bind the SIP socket on {bind}: {source}")]
    Bind {
        bind: IpAddr,
        source: std::io::Error,
    },
}

/// How long a call may go on past its script's end before it is cut.
const OVERRUN: Duration = Duration::from_secs(90);
/// After the run's time is up, how long hung-up calls get to finish.
const WIND_DOWN: Duration = Duration::from_secs(10);
/// How long after its script's end a call waits for the gateway's BYE
/// where the trace had one.
const GATEWAY_BYE_WAIT: Duration = Duration::from_secs(30);
/// Where the trace ends with neither side hanging up: wait this long, then
/// hang up.
const QUIET_END: Duration = Duration::from_secs(1);

type Inbox = mpsc::UnboundedSender<Message>;

/// Routes the gateway's messages to their calls.
#[derive(Default)]
struct Router {
    calls: Mutex<HashMap<String, Inbox>>,
}

impl Router {
    fn add(&self, call_id: &str, inbox: Inbox) {
        if let Ok(mut calls) = self.calls.lock() {
            calls.insert(call_id.to_owned(), inbox);
        }
    }

    fn remove(&self, call_id: &str) {
        if let Ok(mut calls) = self.calls.lock() {
            calls.remove(call_id);
        }
    }

    fn route(&self, m: Message) {
        let inbox = self
            .calls
            .lock()
            .ok()
            .and_then(|calls| calls.get(m.call_id()).cloned());
        if let Some(inbox) = inbox {
            let _ = inbox.send(m);
        }
    }
}

async fn receive_sip(socket: Arc<Socket>, router: Arc<Router>) {
    let mut buf = vec![0u8; 65_536];
    loop {
        let Ok((len, _)) = socket.recv_from(&mut buf).await else {
            continue;
        };
        if let Ok(m) = message::parse(&buf[..len]) {
            router.route(m);
        }
    }
}

struct Shared {
    net: Net,
    sip: Arc<Socket>,
    sip_local: SocketAddr,
    router: Arc<Router>,
    target: SocketAddr,
    bind: IpAddr,
    speed: f64,
    timers: TimerConfig,
    identities: Identities,
}

/// Runs `plan`; `progress` hears each call's ending as it comes.
pub async fn run(plan: Plan, mut progress: impl FnMut(&Report)) -> Result<Report, ReplayError> {
    if plan.scripts.is_empty() {
        return Err(ReplayError::NoScript);
    }
    // Every script must take every code row: find out now, not per call.
    for (trace, script) in plan.scripts.iter().enumerate() {
        if let Some(row) = plan.codes.first() {
            script
                .with_codes(&row.codes())
                .map_err(|source| ReplayError::Script { trace, source })?;
        }
    }
    let sip = plan
        .net
        .bind(SocketAddr::new(plan.bind, 0))
        .await
        .map_err(|source| ReplayError::Bind {
            bind: plan.bind,
            source,
        })?;
    let sip_local = sip.local_addr().map_err(|source| ReplayError::Bind {
        bind: plan.bind,
        source,
    })?;
    let sip = Arc::new(sip);
    let router = Arc::new(Router::default());
    let receiver = tokio::spawn(receive_sip(sip.clone(), router.clone()));
    let shared = Arc::new(Shared {
        net: plan.net.clone(),
        sip,
        sip_local,
        router,
        target: plan.target,
        bind: plan.bind,
        speed: plan.speed.max(0.01),
        timers: plan.timers,
        identities: Identities::random(),
    });
    let (abort_tx, abort_rx) = watch::channel(false);
    let interval = Duration::from_secs_f64(1.0 / plan.rate.max(0.001));
    let start = Instant::now();
    let deadline = start + plan.duration;
    let mut hard_stop = None;
    let mut report = Report::new();
    let mut set = JoinSet::new();
    let mut launched = 0u64;
    let mut last_launch = start;
    let scripts: Vec<Arc<Script>> = plan.scripts.iter().cloned().map(Arc::new).collect();
    loop {
        let may_launch = launched < plan.calls && hard_stop.is_none();
        if !may_launch && set.is_empty() {
            break;
        }
        let next_due = start + interval.mul_f64(launched as f64);
        tokio::select! {
            _ = tokio::time::sleep_until(next_due), if may_launch && set.len() < plan.concurrency => {
                let script = script_for(&plan, &scripts, launched);
                let (shared, abort) = (shared.clone(), abort_rx.clone());
                set.spawn(call(shared, launched, script, abort));
                launched += 1;
                last_launch = Instant::now();
            }
            joined = set.join_next(), if !set.is_empty() => {
                let ending = match joined {
                    Some(Ok(Some(ending))) => ending,
                    // The call could not bind its RTP socket.
                    Some(Ok(None)) => failed("socket"),
                    _ => failed("internal"),
                };
                report.add(&ending);
                report.elapsed = start.elapsed();
                progress(&report);
            }
            _ = tokio::time::sleep_until(deadline), if hard_stop.is_none() => {
                let _ = abort_tx.send(true);
                hard_stop = Some(Instant::now() + WIND_DOWN);
            }
            _ = tokio::time::sleep_until(hard_stop.unwrap_or(deadline)), if hard_stop.is_some() => {
                for _ in 0..set.len() {
                    report.add(&failed("cut"));
                }
                set.abort_all();
                break;
            }
        }
    }
    receiver.abort();
    report.launching = last_launch - start;
    report.elapsed = start.elapsed();
    Ok(report)
}

fn failed(cause: &str) -> Ending {
    Ending {
        verdict: Verdict::Failed(cause.to_owned()),
        ..Ending::new()
    }
}

/// Call `index`'s script: the traces in turn, each with the next code row
/// keyed in (shared as it is when there are no codes).
fn script_for(plan: &Plan, scripts: &[Arc<Script>], index: u64) -> Arc<Script> {
    let base = &scripts[(index % scripts.len() as u64) as usize];
    if plan.codes.is_empty() {
        return base.clone();
    }
    let row = &plan.codes[(index % plan.codes.len() as u64) as usize];
    // Checked against the first row before the run; rows differ only in digits.
    base.with_codes(&row.codes())
        .map_or_else(|_| base.clone(), Arc::new)
}

/// The cause a gateway's `Reason` names: one of ours by its label (the
/// word the gateway's metrics use), anyone else's by its `text`, in snake
/// case.
fn reason_cause(reason: &str) -> Option<String> {
    if let Some(cause) = Cause::from_reason(reason) {
        return Some(cause.label().to_owned());
    }
    let text = param(reason, "text")?.trim_matches('"');
    let cause: String = text
        .trim()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect();
    (!cause.is_empty()).then_some(cause)
}

/// The outcome in a `dialgate-outcome` INFO body.
fn outcome_of(body: &[u8]) -> Option<String> {
    String::from_utf8_lossy(body).lines().find_map(|l| {
        let (k, v) = l.split_once('=')?;
        (k.trim() == "outcome").then(|| v.trim().to_owned())
    })
}

#[cfg(test)]
mod tests {
    use super::call::Progress;
    use super::*;

    #[test]
    fn reason_texts_become_causes() {
        assert_eq!(
            reason_cause("SIP;cause=403;text=\"wrong\"").as_deref(),
            Some("wrong")
        );
        assert_eq!(
            reason_cause(&Cause::RoomFull.reason()).as_deref(),
            Some("room_full")
        );
        assert_eq!(
            reason_cause(&Cause::RtpTimeout.reason()).as_deref(),
            Some("media_timeout")
        );
        // Someone else's gateway: its text, in snake case.
        assert_eq!(
            reason_cause("Q.850;cause=17;text=\"User Busy\"").as_deref(),
            Some("user_busy")
        );
        assert_eq!(reason_cause("SIP;cause=200"), None);
    }

    #[test]
    fn outcome_bodies_are_read() {
        assert_eq!(
            outcome_of(b"outcome=not_started\r\nstage=access\r\n").as_deref(),
            Some("not_started")
        );
        assert_eq!(outcome_of(b"stage=access\r\n"), None);
    }

    #[test]
    fn a_caller_hanging_up_is_judged_by_the_last_outcome() {
        let judged = |admitted: bool, last: Option<&str>| {
            Progress {
                admitted,
                last_outcome: last.map(str::to_owned),
                ..Progress::default()
            }
            .verdict()
        };
        assert_eq!(judged(true, Some("wrong")), Verdict::Admitted);
        assert_eq!(
            judged(false, Some("wrong")),
            Verdict::Refused("wrong".into())
        );
        assert_eq!(judged(false, None), Verdict::Abandoned);
    }
}
