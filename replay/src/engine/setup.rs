//! A call's setup: its INVITE as an INVITE client transaction
//! (`sip::transaction::InviteClientTx`) until the final answer, the trace's
//! CANCEL played meanwhile, and the ACK.

use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

use dialgate::media::Codec;
use dialgate::sip::message::{self, Method, StatusCode};
use dialgate::sip::transaction::{InviteClientTx, InviteResponse, TimerOutput};

use super::call::{Answered, Call};
use crate::report::Verdict;
use crate::rewrite::{self, Dialog};
use crate::script::{StepKind, read_sdp};

impl Call {
    /// INVITE until a final response (its transaction resends and gives up),
    /// playing any CANCEL of the trace meanwhile. `None` when the call ends
    /// without an answer.
    pub(super) async fn set_up(&mut self, abort: &mut watch::Receiver<bool>) -> Option<Answered> {
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
                            // The virtual call ends here, its transaction
                            // with it: the ACK goes once, and a failure
                            // retransmitted later finds no call (the
                            // gateway's Timer H ends its side).
                            let ack = rewrite::ack(&invite, &m, &mut self.id, &self.local);
                            self.send(&ack).await;
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
        let silence = match negotiated.as_ref().map(|n| (n.codec, n.payload_type.0)) {
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

    /// The INVITE got a final error: refused as the trace was, or failed.
    pub(super) fn refused_at_setup(&mut self, status: StatusCode) {
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
}
