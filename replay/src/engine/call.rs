//! One virtual call: what it holds (its identity, sockets, inbox and
//! ending) and its life after the answer — the script's steps at their
//! times, comfort silence, and hanging up. Its setup is in `setup.rs`,
//! what the gateway sends it in `answers.rs`.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use dialgate::sip::message::{self, Message, Method, StatusCode};
use dialgate::sip::transaction::{ClientTx, InviteClientTx};

use super::{GATEWAY_BYE_WAIT, OVERRUN, QUIET_END, Shared};
use crate::net::Socket;
use crate::report::{Ending, Verdict};
use crate::rewrite::{self, Dialog, Identity, Local};
use crate::script::{RtpPacket, Script, Step, StepKind};

pub(super) struct Pending {
    pub(super) tx: ClientTx,
    pub(super) method: Method,
    pub(super) expect: Option<u16>,
    pub(super) sent: Message,
}

/// One virtual call, from INVITE to its end.
pub(super) struct Call {
    pub(super) shared: Arc<Shared>,
    pub(super) script: Arc<Script>,
    pub(super) id: Identity,
    pub(super) local: Local,
    pub(super) rtp: Socket,
    pub(super) inbox: mpsc::UnboundedReceiver<Message>,
    pub(super) ending: Ending,
    /// Where RTP packets are built, one at a time.
    pub(super) out: Vec<u8>,
}

/// The answered INVITE, and what the call goes on with.
pub(super) struct Answered {
    pub(super) invite: Message,
    /// The INVITE's transaction, Accepted: every 2xx it passes up is ACKed again.
    pub(super) tx: InviteClientTx,
    pub(super) ack: Message,
    pub(super) at: Instant,
    pub(super) dialog: Dialog,
    pub(super) remote_rtp: Option<SocketAddr>,
    /// G.711 silence to send where the trace has no RTP: (payload type, byte).
    pub(super) silence: Option<(u8, u8)>,
}

/// What the call has heard and said since the answer.
#[derive(Default)]
pub(super) struct Progress {
    pub(super) pending: HashMap<String, Pending>,
    /// When the latest key went out (RFC 4733 press start or SIP INFO).
    pub(super) last_key: Option<Instant>,
    /// The gateway's latest verdict on an attempt.
    pub(super) last_outcome: Option<String>,
    pub(super) admitted: bool,
    /// Our BYE is out: the script's end no longer matters.
    pub(super) caller_bye: bool,
    /// Requests from the gateway already seen (branch and method).
    pub(super) seen: HashSet<String>,
}

impl Progress {
    /// The verdict when the caller hangs up.
    pub(super) fn verdict(&self) -> Verdict {
        match (self.admitted, &self.last_outcome) {
            (true, _) => Verdict::Admitted,
            (false, Some(o)) => Verdict::Refused(o.clone()),
            (false, None) => Verdict::Abandoned,
        }
    }
}

/// Whether the call goes on after an event.
pub(super) enum Next {
    Go,
    End,
}

pub(super) async fn call(
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
    pub(super) async fn send(&self, m: &Message) {
        let _ = self
            .shared
            .sip
            .send_to(&m.to_bytes(), self.shared.target)
            .await;
    }

    pub(super) async fn send_rtp(&mut self, p: &RtpPacket, to: SocketAddr) {
        if let Some(len) = self.id.rtp_into(p, &mut self.out) {
            let _ = self.rtp.send_to(&self.out[..len], to).await;
            self.ending.rtp_sent += 1;
        }
    }

    pub(super) fn due(&self, base: Instant, after: Duration) -> Instant {
        base + after.div_f64(self.shared.speed)
    }

    /// Steps before the trace's answer, and from it on (steps are in time order).
    pub(super) fn split(&self) -> usize {
        let answered = self.script.answered_at.unwrap_or(Duration::MAX);
        self.script
            .steps
            .iter()
            .position(|s| s.at >= answered)
            .unwrap_or(self.script.steps.len())
    }

    /// Plays the script's steps after the answer, answering the gateway,
    /// until one side hangs up.
    pub(super) async fn converse(&mut self, mut a: Answered, mut abort: watch::Receiver<bool>) {
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
    pub(super) async fn step(&mut self, step: &Step, a: &mut Answered, p: &mut Progress) {
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
    pub(super) fn track(
        &self,
        p: &mut Progress,
        sent: Message,
        method: Method,
        expect: Option<u16>,
    ) {
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

    /// Hangs up: a BYE shaped like the script's INVITE (its From and To).
    pub(super) async fn bye(&mut self, dialog: &mut Dialog) -> Message {
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

    /// Answers a request the gateway sent that needs nothing else from us.
    pub(super) async fn answer_request(&mut self, m: &Message, invite: &Message) {
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
