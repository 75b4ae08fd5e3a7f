//! What the gateway sends a call after the answer: its requests (BYE, the
//! outcome INFO, re-INVITEs), the answers to ours, and our requests'
//! retransmissions.

use tokio::time::Instant;

use dialgate::cause::Cause;
use dialgate::sip::message::{Message, Method, StatusCode};
use dialgate::sip::transaction::{InviteResponse, TimerOutput};

use super::call::{Answered, Call, Next, Progress};
use super::{outcome_of, reason_cause};
use crate::report::Verdict;
use crate::rewrite::{self, OUTCOME_PACKAGE};

impl Call {
    pub(super) async fn on_message(
        &mut self,
        m: Message,
        a: &mut Answered,
        p: &mut Progress,
    ) -> Next {
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

    pub(super) async fn on_response(
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
    pub(super) async fn on_timers(&mut self, p: &mut Progress) -> Next {
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

    /// The gateway hung up: compared with the trace, judged by its Reason
    /// and what the gateway said of the attempts before.
    pub(super) fn gateway_bye(&mut self, bye: &Message, p: &Progress) {
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
}
