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
//! Every run is bounded: at most `calls` calls, no new call after
//! `duration`, and calls still up then are hung up and counted `cut`.
//!
//! Time is tokio's clock alone (`tokio::time::Instant`, handed to the
//! transactions as `into_std()`), so a test on paused time runs a whole
//! call in no wall-clock time and reads exact durations.

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;

use dialgate::cause::Cause;
use dialgate::media::Codec;
use dialgate::sip::message::{self, Message, Method, StatusCode, param};
use dialgate::sip::transaction::{
    ClientTx, InviteClientTx, InviteResponse, TimerConfig, TimerOutput,
};

use super::codes::CodeRow;
use super::net::{Net, Socket};
use super::report::{Ending, Report, Verdict};
use super::rewrite::{self, Dialog, Identities, Identity, Local, OUTCOME_PACKAGE};
use super::script::{RtpPacket, Script, ScriptError, Step, StepKind, read_sdp};

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

struct Pending {
    tx: ClientTx,
    method: Method,
    expect: Option<u16>,
    sent: Message,
}

/// One virtual call, from INVITE to its end.
struct Call {
    shared: Arc<Shared>,
    script: Arc<Script>,
    id: Identity,
    local: Local,
    rtp: Socket,
    inbox: mpsc::UnboundedReceiver<Message>,
    ending: Ending,
    /// Where RTP packets are built, one at a time.
    out: Vec<u8>,
}

/// The answered INVITE, and what the call goes on with.
struct Answered {
    invite: Message,
    /// The INVITE's transaction, Accepted: every 2xx it passes up is ACKed again.
    tx: InviteClientTx,
    ack: Message,
    at: Instant,
    dialog: Dialog,
    remote_rtp: Option<SocketAddr>,
    /// G.711 silence to send where the trace has no RTP: (payload type, byte).
    silence: Option<(u8, u8)>,
}

/// What the call has heard and said since the answer.
#[derive(Default)]
struct Progress {
    pending: HashMap<String, Pending>,
    /// When the latest key went out (RFC 4733 press start or SIP INFO).
    last_key: Option<Instant>,
    /// The gateway's latest verdict on an attempt.
    last_outcome: Option<String>,
    admitted: bool,
    /// Our BYE is out: the script's end no longer matters.
    caller_bye: bool,
    /// Requests from the gateway already seen (branch and method).
    seen: HashSet<String>,
}

impl Progress {
    /// The verdict when the caller hangs up.
    fn verdict(&self) -> Verdict {
        match (self.admitted, &self.last_outcome) {
            (true, _) => Verdict::Admitted,
            (false, Some(o)) => Verdict::Refused(o.clone()),
            (false, None) => Verdict::Abandoned,
        }
    }
}

/// Whether the call goes on after an event.
enum Next {
    Go,
    End,
}

async fn call(
    shared: Arc<Shared>,
    index: u64,
    script: Arc<Script>,
    abort: watch::Receiver<bool>,
) -> Option<Ending> {
    let rtp = shared
        .net
        .bind(SocketAddr::new(shared.bind, 0))
        .await
        .ok()?;
    let local = Local {
        sip: shared.sip_local,
        rtp: rtp.local_addr().ok()?,
    };
    let id = shared.identities.get(index);
    let (tx, inbox) = mpsc::unbounded_channel();
    shared.router.add(&id.call_id, tx);
    let call_id = id.call_id.clone();
    let mut c = Call {
        shared: shared.clone(),
        script,
        id,
        local,
        rtp,
        inbox,
        ending: Ending::new(),
        out: vec![0; 2048],
    };
    let mut abort = abort;
    if let Some(answered) = c.set_up(&mut abort).await {
        c.converse(answered, abort).await;
    }
    shared.router.remove(&call_id);
    Some(c.ending)
}

impl Call {
    async fn send(&self, m: &Message) {
        let _ = self
            .shared
            .sip
            .send_to(&m.to_bytes(), self.shared.target)
            .await;
    }

    async fn send_rtp(&mut self, p: &RtpPacket, to: SocketAddr) {
        if let Some(len) = self.id.rtp_into(p, &mut self.out) {
            let _ = self.rtp.send_to(&self.out[..len], to).await;
            self.ending.rtp_sent += 1;
        }
    }

    fn due(&self, base: Instant, after: Duration) -> Instant {
        base + after.div_f64(self.shared.speed)
    }

    /// Steps before the trace's answer, and from it on (steps are in time order).
    fn split(&self) -> usize {
        let answered = self.script.answered_at.unwrap_or(Duration::MAX);
        self.script
            .steps
            .iter()
            .position(|s| s.at >= answered)
            .unwrap_or(self.script.steps.len())
    }

    /// INVITE until a final response (Timer A retransmissions, Timer B),
    /// playing any CANCEL of the trace meanwhile. `None` when the call ends
    /// without an answer.
    async fn set_up(&mut self, abort: &mut watch::Receiver<bool>) -> Option<Answered> {
        let script = self.script.clone();
        let invite = rewrite::invite(
            &script.invite,
            &mut self.id,
            &self.local,
            self.shared.target,
        );
        let t_invite = Instant::now();
        let mut tx = InviteClientTx::new(
            t_invite.into_std(),
            invite.to_bytes(),
            false,
            self.shared.timers,
        );
        self.send(&invite).await;
        let pre = &script.steps[..self.split()];
        let mut pre_next = 0usize;
        // Only for the select's disabled branches: never reached.
        let never = t_invite + Duration::from_secs(86_400);
        let answer = loop {
            let next_pre = pre.get(pre_next).map(|s| self.due(t_invite, s.at));
            let timer = tx.poll_timeout().map(Instant::from_std);
            tokio::select! {
                m = self.inbox.recv() => {
                    let m = m?;
                    let status = m.status().filter(|_| {
                        m.cseq().is_some_and(|c| c.1 == Method::Invite) && m.branch() == invite.branch()
                    });
                    let Some(s) = status else {
                        self.answer_request(&m, &invite).await;
                        continue;
                    };
                    match tx.recv_response(Instant::now().into_std(), s.0) {
                        InviteResponse::Deliver if s.is_success() => break m,
                        InviteResponse::Rejected => {
                            // The virtual call ends here, so the transaction
                            // sends its ACK this once: a failure retransmitted
                            // later finds no call (the gateway's Timer H ends
                            // its side).
                            let ack = rewrite::ack(&invite, &m, &mut self.id, &self.local);
                            self.send(&ack).await;
                            tx.send_ack(ack.to_bytes());
                            self.refused_at_setup(s);
                            return None;
                        }
                        // A provisional (Proceeding: no more resends, and no
                        // give-up but the run's own end), or stale.
                        InviteResponse::Deliver | InviteResponse::Resend(_) | InviteResponse::Absorb => {}
                    }
                }
                _ = tokio::time::sleep_until(timer.unwrap_or(never)), if timer.is_some() => {
                    match tx.handle_timeout(Instant::now().into_std()) {
                        TimerOutput::Retransmit(bytes) => {
                            let _ = self.shared.sip.send_to(&bytes, self.shared.target).await;
                            self.ending.retransmitted += 1;
                        }
                        TimerOutput::RequestTimeout => {
                            self.ending.verdict = Verdict::Failed("no_answer".into());
                            return None;
                        }
                        _ => {}
                    }
                }
                _ = tokio::time::sleep_until(next_pre.unwrap_or(never)), if next_pre.is_some() => {
                    let step = &pre[pre_next];
                    pre_next += 1;
                    if let StepKind::Request { message, .. } = &step.kind
                        && message.method() == Some(&Method::Cancel)
                    {
                        self.send(&rewrite::cancel(&invite)).await;
                    }
                }
                _ = abort.changed() => {
                    self.send(&rewrite::cancel(&invite)).await;
                    self.ending.verdict = Verdict::Failed("cut".into());
                    return None;
                }
            }
        };
        let at = Instant::now();
        self.ending.answered = true;
        self.ending.setup = Some(at - t_invite);
        if let Some(expected) = script.expected.invite_status
            && !(200..300).contains(&expected)
        {
            self.ending.differences.push(format!(
                "INVITE answered 2xx where the trace got {expected}"
            ));
        }
        let ack = rewrite::ack(&invite, &answer, &mut self.id, &self.local);
        self.send(&ack).await;
        let dialog = Dialog {
            remote_tag: answer.tag("To").unwrap_or_default().to_owned(),
            remote_target: answer.header("Contact").map_or_else(
                || format!("sip:{}", self.shared.target),
                |c| message::uri_of(c).to_owned(),
            ),
            cseq: invite.cseq().map_or(1, |c| c.0) + 1,
        };
        let negotiated = read_sdp(&String::from_utf8_lossy(&answer.body));
        let has_rtp = script
            .steps
            .iter()
            .any(|s| matches!(s.kind, StepKind::Rtp(_)));
        // A trace without RTP (a text capture) still sends G.711 silence, as a phone would.
        let silence = match negotiated.as_ref().map(|n| (n.codec, n.payload_type)) {
            Some((Codec::Pcmu, pt)) if !has_rtp => Some((pt, 0xFF)),
            Some((Codec::Pcma, pt)) if !has_rtp => Some((pt, 0xD5)),
            _ => None,
        };
        Some(Answered {
            invite,
            tx,
            ack,
            at,
            dialog,
            remote_rtp: negotiated.and_then(|n| n.remote_rtp),
            silence,
        })
    }

    /// Plays the script's steps after the answer, answering the gateway,
    /// until one side hangs up.
    async fn converse(&mut self, mut a: Answered, mut abort: watch::Receiver<bool>) {
        let script = self.script.clone();
        let post = &script.steps[self.split()..];
        let base = self.script.answered_at.unwrap_or(Duration::ZERO);
        let (answered, speed) = (a.at, self.shared.speed);
        let at = move |s: &Step| answered + s.at.saturating_sub(base).div_f64(speed);
        let script_end = post.last().map_or(a.at, at);
        // Where the script ends with neither side hanging up, we do, once
        // the gateway has had its time to.
        let quiet_end = script_end
            + if script.expected.gateway_bye.is_some() {
                GATEWAY_BYE_WAIT
            } else {
                QUIET_END
            };
        let stuck = script_end + OVERRUN;
        let mut p = Progress::default();
        let mut next = 0usize;
        let mut comfort = tokio::time::interval(Duration::from_millis(20));
        let mut silence = a.silence.map(|(pt, byte)| RtpPacket {
            payload_type: pt,
            marker: true,
            sequence: 0,
            timestamp: 0,
            payload: vec![byte; 160],
        });
        let mut buf = vec![0u8; 2048];
        loop {
            let next_due = post.get(next).map(at);
            let timer = p.pending.values().filter_map(|x| x.tx.poll_timeout()).min();
            let idle = next_due.is_none() && !p.caller_bye;
            let flow = tokio::select! {
                _ = tokio::time::sleep_until(next_due.unwrap_or(stuck)), if next_due.is_some() => {
                    next += 1;
                    self.step(&post[next - 1], &mut a, &mut p).await;
                    Next::Go
                }
                m = self.inbox.recv() => match m {
                    Some(m) => self.on_message(m, &mut a, &mut p).await,
                    None => Next::End,
                },
                _ = tokio::time::sleep_until(timer.map_or(stuck, Instant::from_std)), if timer.is_some() => {
                    self.on_timers(&mut p).await
                }
                received = self.rtp.recv_from(&mut buf) => {
                    self.ending.rtp_received += u64::from(received.is_ok());
                    Next::Go
                }
                _ = comfort.tick(), if silence.is_some() && a.remote_rtp.is_some() => {
                    if let (Some(packet), Some(to)) = (&silence, a.remote_rtp) {
                        self.send_rtp(packet, to).await;
                    }
                    if let Some(s) = silence.as_mut() {
                        s.marker = false;
                        s.sequence = s.sequence.wrapping_add(1);
                        s.timestamp = s.timestamp.wrapping_add(160);
                    }
                    Next::Go
                }
                _ = tokio::time::sleep_until(quiet_end), if idle => {
                    let bye = self.bye(&mut a.dialog).await;
                    if script.expected.gateway_bye.is_some() {
                        self.ending.differences.push("gateway did not hang up where the trace's did".into());
                        self.ending.verdict = Verdict::Failed("no_gateway_bye".into());
                        Next::End
                    } else {
                        self.track(&mut p, bye, Method::Bye, None);
                        p.caller_bye = true;
                        Next::Go
                    }
                }
                _ = tokio::time::sleep_until(stuck) => {
                    self.bye(&mut a.dialog).await;
                    self.ending.verdict = Verdict::Failed("stuck".into());
                    Next::End
                }
                _ = abort.changed() => {
                    self.bye(&mut a.dialog).await;
                    self.ending.verdict = Verdict::Failed("cut".into());
                    Next::End
                }
            };
            if let Next::End = flow {
                return;
            }
        }
    }

    /// Plays one step of the script.
    async fn step(&mut self, step: &Step, a: &mut Answered, p: &mut Progress) {
        match &step.kind {
            StepKind::Rtp(packet) => {
                if let Some(to) = a.remote_rtp {
                    self.send_rtp(packet, to).await;
                }
                if Some(packet.payload_type) == self.script.media.event_payload_type
                    && packet.marker
                {
                    p.last_key = Some(Instant::now());
                }
            }
            StepKind::Request { message, expect } => {
                let method = message.method().cloned().unwrap_or(Method::Info);
                if method == Method::Cancel || method == Method::Ack {
                    return;
                }
                let m = rewrite::in_dialog(message, &mut self.id, &self.local, &mut a.dialog);
                self.send(&m).await;
                if method == Method::Info {
                    p.last_key = Some(Instant::now());
                }
                p.caller_bye |= method == Method::Bye;
                self.track(p, m, method, *expect);
            }
        }
    }

    /// Keeps a request we sent as a client transaction (retransmitted until answered).
    fn track(&self, p: &mut Progress, sent: Message, method: Method, expect: Option<u16>) {
        let tx = ClientTx::new(
            Instant::now().into_std(),
            sent.to_bytes(),
            false,
            self.shared.timers,
        );
        let branch = sent.branch().unwrap_or_default().to_owned();
        p.pending.insert(
            branch,
            Pending {
                tx,
                method,
                expect,
                sent,
            },
        );
    }

    async fn on_message(&mut self, m: Message, a: &mut Answered, p: &mut Progress) -> Next {
        if let Some(status) = m.status() {
            return self.on_response(m, status, a, p).await;
        }
        let key = format!(
            "{} {}",
            m.branch().unwrap_or_default(),
            m.method().map_or("", Method::as_str)
        );
        let again = !p.seen.insert(key);
        self.ending.retransmissions_received += u64::from(again);
        match m.method() {
            Some(Method::Bye) => {
                let ok = rewrite::respond(&m, StatusCode::OK, &self.id, &self.local, None);
                self.send(&ok).await;
                self.gateway_bye(&m, p);
                Next::End
            }
            Some(Method::Info)
                if m.header("Info-Package")
                    .is_some_and(|x| x.eq_ignore_ascii_case(OUTCOME_PACKAGE)) =>
            {
                let ok = rewrite::respond(&m, StatusCode::OK, &self.id, &self.local, None);
                self.send(&ok).await;
                if !again {
                    let outcome = outcome_of(&m.body);
                    if outcome.as_deref() == Some("admitted") && !p.admitted {
                        p.admitted = true;
                        self.ending.admission = p.last_key.map(|k| k.elapsed());
                    }
                    p.last_outcome = outcome;
                }
                Next::Go
            }
            _ => {
                self.answer_request(&m, &a.invite).await;
                Next::Go
            }
        }
    }

    async fn on_response(
        &mut self,
        m: Message,
        status: StatusCode,
        a: &mut Answered,
        p: &mut Progress,
    ) -> Next {
        if m.cseq().is_some_and(|c| c.1 == Method::Invite) && m.branch() == a.invite.branch() {
            // Our ACK was lost: the 2xx came again (until Timer M).
            self.ending.retransmissions_received += 1;
            if status.is_success()
                && a.tx.recv_response(Instant::now().into_std(), status.0)
                    == InviteResponse::Deliver
            {
                self.send(&a.ack).await;
            }
            return Next::Go;
        }
        let branch = m.branch().unwrap_or_default();
        let Some(pending) = p.pending.get_mut(branch) else {
            return Next::Go;
        };
        if !pending
            .tx
            .recv_response(Instant::now().into_std(), status.0)
        {
            return Next::Go;
        }
        let Some(done) = p.pending.remove(branch) else {
            return Next::Go;
        };
        if let Some(expect) = done.expect
            && expect != status.0
        {
            self.ending.differences.push(format!(
                "{} answered {} where the trace got {expect}",
                done.method.as_str(),
                status.0
            ));
        }
        match done.method {
            Method::Invite if status.is_success() => {
                let ack = rewrite::ack(&done.sent, &m, &mut self.id, &self.local);
                self.send(&ack).await;
                Next::Go
            }
            Method::Bye => {
                self.ending.verdict = p.verdict();
                Next::End
            }
            _ => Next::Go,
        }
    }

    /// Retransmits our requests that are due; a BYE nobody answers ends the call.
    async fn on_timers(&mut self, p: &mut Progress) -> Next {
        let now = Instant::now().into_std();
        let mut unanswered = Vec::new();
        for (branch, pending) in p.pending.iter_mut() {
            if pending.tx.poll_timeout().is_some_and(|t| t <= now) {
                match pending.tx.handle_timeout(now) {
                    TimerOutput::Retransmit(bytes) => {
                        let _ = self.shared.sip.send_to(&bytes, self.shared.target).await;
                        self.ending.retransmitted += 1;
                    }
                    TimerOutput::RequestTimeout => unanswered.push(branch.clone()),
                    _ => {}
                }
            }
        }
        for branch in unanswered {
            let Some(gone) = p.pending.remove(&branch) else {
                continue;
            };
            if gone.method == Method::Bye {
                self.ending.verdict = Verdict::Failed("bye_timeout".into());
                return Next::End;
            }
            self.ending
                .differences
                .push(format!("{} unanswered", gone.method.as_str()));
        }
        Next::Go
    }

    /// Hangs up: a BYE shaped like the script's INVITE (its From and To).
    async fn bye(&mut self, dialog: &mut Dialog) -> Message {
        let mut t = self.script.invite.clone();
        t.start = message::StartLine::Request {
            method: Method::Bye,
            uri: String::new(),
        };
        t.body.clear();
        t.headers.retain(|(n, _)| {
            !matches!(
                n.as_str(),
                "Content-Type" | "Recv-Info" | "Supported" | "Allow"
            )
        });
        let bye = rewrite::in_dialog(&t, &mut self.id, &self.local, dialog);
        self.send(&bye).await;
        bye
    }

    /// The INVITE got a final error: refused as the trace was, or failed.
    fn refused_at_setup(&mut self, status: StatusCode) {
        let script = self.script.clone();
        let cause = format!("sip_{}", status.0);
        if script.expected.invite_status == Some(status.0) {
            self.ending.verdict = Verdict::Refused(cause);
        } else {
            if let Some(expected) = script.expected.invite_status {
                self.ending.differences.push(format!(
                    "INVITE answered {} where the trace got {expected}",
                    status.0
                ));
            }
            self.ending.verdict = Verdict::Failed(cause);
        }
    }

    /// The gateway hung up: compared with the trace, judged by its Reason
    /// and what the gateway said of the attempts before.
    fn gateway_bye(&mut self, bye: &Message, p: &Progress) {
        let reason = bye.header("Reason");
        let room_refusal = reason
            .and_then(Cause::from_reason)
            .is_some_and(Cause::is_room_refusal);
        let cause = reason.and_then(reason_cause);
        match &self.script.expected.gateway_bye {
            None => self
                .ending
                .differences
                .push("gateway hung up where the trace's caller did".into()),
            Some(expected) => {
                let expected = expected.as_deref().and_then(reason_cause);
                if expected != cause {
                    self.ending.differences.push(format!(
                        "gateway hung up for {} where the trace's did for {}",
                        cause.as_deref().unwrap_or("no reason"),
                        expected.as_deref().unwrap_or("no reason")
                    ));
                }
            }
        }
        self.ending.verdict = match (p.admitted, cause) {
            (true, Some(c)) if room_refusal => Verdict::Refused(c),
            (true, _) => Verdict::Admitted,
            (false, Some(c)) => Verdict::Refused(c),
            (false, None) => match p.verdict() {
                Verdict::Abandoned => Verdict::Failed("gateway_hung_up".into()),
                refused => refused,
            },
        };
    }

    /// Answers a request the gateway sent that needs nothing else from us.
    async fn answer_request(&mut self, m: &Message, invite: &Message) {
        let Some(method) = m.method() else { return };
        let (status, body) = match method {
            Method::Ack => return,
            // A re-INVITE gets our offer again as the answer: nothing changed here.
            Method::Invite => (StatusCode::OK, Some(invite.body.clone())),
            _ => (StatusCode::OK, None),
        };
        self.send(&rewrite::respond(m, status, &self.id, &self.local, body))
            .await;
    }
}

#[cfg(test)]
mod tests {
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
