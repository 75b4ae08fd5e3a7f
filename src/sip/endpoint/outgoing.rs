//! What the gateway asks of the endpoint for its calls: answers to INVITEs
//! and in-dialog requests, BYE, INFO, and the client transactions that
//! carry them.

use super::*;

impl Endpoint {
    /// Answers the call's INVITE. 1xx/2xx carry our tag and Contact; a 2xx
    /// confirms the dialog, anything ≥ 300 ends it (and `CallEvent::Ended`
    /// follows, so the shell can forget the call).
    pub fn respond_invite(
        &mut self,
        now: Instant,
        call: CallRef,
        status: StatusCode,
        extra: Vec<(String, String)>,
        sdp: Option<Vec<u8>>,
    ) {
        let known = self.dialogs.contains_key(&call);
        self.answer_invite(now, call, status, extra, sdp);
        if known && status.0 >= 300 {
            self.out.push_back(Output::Call(call, CallEvent::Ended));
        }
    }

    /// Our Contact for a dialog on `flow` (TCP callers must reach us over TCP).
    pub(super) fn contact(&self, flow: Flow) -> (String, String) {
        let transport = if flow.transport.is_reliable() {
            ";transport=tcp"
        } else {
            ""
        };
        (
            "Contact".into(),
            format!("<sip:dialgate@{}{}>", self.local.host_port(), transport),
        )
    }

    pub(super) fn answer_invite(
        &mut self,
        now: Instant,
        call: CallRef,
        status: StatusCode,
        extra: Vec<(String, String)>,
        sdp: Option<Vec<u8>>,
    ) {
        let Some(key) = self.invite_key(call) else {
            return;
        };
        let Some(dialog) = self.dialogs.get_mut(&call) else {
            return;
        };
        let flow = dialog.flow;
        let contact = self.contact(flow);
        let Some(dialog) = self.dialogs.get_mut(&call) else {
            return;
        };
        let mut resp = response(&dialog.invite, status, Some(&dialog.local_tag), flow.remote);
        if status.0 < 300 {
            for rr in dialog.invite.headers_named("Record-Route") {
                resp.headers.push(("Record-Route".into(), rr.to_owned()));
            }
            resp.headers.push(contact);
        }
        if status.is_success() {
            resp.headers.push(("Allow".into(), ALLOW.into()));
            dialog.state = DialogState::Confirmed;
        }
        resp.headers.extend(extra);
        if let Some(sdp) = sdp {
            resp.headers
                .push(("Content-Type".into(), "application/sdp".into()));
            dialog.local_sdp = Some(sdp.clone());
            resp.body = sdp;
        }
        let bytes = resp.to_bytes();
        if let Some(entry) = self.server.get_mut(&key) {
            entry.tx.send_response(now, status.0, bytes.clone());
            if status.0 >= 300 && !flow.transport.is_reliable() && entry.unacked_from.is_none() {
                let source = flow.remote.ip();
                let unacked = self.unacked.entry(source).or_default();
                if *unacked < MAX_UNACKED_FAILURES {
                    *unacked += 1;
                    entry.unacked_from = Some(source);
                } else {
                    entry.tx.stop_resending();
                }
            }
        }
        self.arm(TimerKey::Server(key));
        if status.0 >= 300 {
            self.forget(call);
        }
        self.transmit(flow, bytes);
    }

    /// Answers a request the gateway was handed (INFO).
    pub fn respond(&mut self, now: Instant, tx: &TxKey, status: StatusCode) {
        let Some(entry) = self.server.get_mut(tx) else {
            return;
        };
        let Some(req) = entry.request.take() else {
            return;
        };
        let tag = req.tag("To").map(str::to_owned);
        let bytes = response(&req, status, tag.as_deref(), entry.flow.remote).to_bytes();
        entry.tx.send_response(now, status.0, bytes.clone());
        let flow = entry.flow;
        self.arm(TimerKey::Server(tx.clone()));
        self.transmit(flow, bytes);
    }

    /// Answers a re-INVITE the call was handed: a 2xx carries our Contact
    /// and `sdp` (the answer, which becomes the dialog's session) and is
    /// retransmitted until its ACK; anything else leaves the session as it was.
    pub fn respond_reinvite(
        &mut self,
        now: Instant,
        tx: &TxKey,
        status: StatusCode,
        sdp: Option<Vec<u8>>,
    ) {
        let Some(flow) = self.server.get(tx).map(|e| e.flow) else {
            return;
        };
        let contact = self.contact(flow);
        let Some(entry) = self.server.get_mut(tx) else {
            return;
        };
        let Some(req) = entry.request.take() else {
            return;
        };
        let tag = req.tag("To").map(str::to_owned);
        let mut resp = response(&req, status, tag.as_deref(), entry.flow.remote);
        let success = status.is_success();
        if success {
            resp.headers.push(contact);
            if let Some(sdp) = &sdp {
                resp.headers
                    .push(("Content-Type".into(), "application/sdp".into()));
                resp.body = sdp.clone();
            }
        }
        let bytes = resp.to_bytes();
        entry.tx.send_response(now, status.0, bytes.clone());
        let (flow, call) = (entry.flow, entry.call);
        self.arm(TimerKey::Server(tx.clone()));
        if success && let Some(call) = call {
            self.reinvites.insert(call, tx.clone());
            if let Some(d) = self.dialogs.get_mut(&call)
                && sdp.is_some()
            {
                d.local_sdp = sdp;
            }
        }
        self.transmit(flow, bytes);
    }

    /// Hangs up a confirmed call with BYE (optionally with a `Reason` header).
    /// `CallEvent::Ended` follows when it is answered or times out.
    pub fn send_bye(&mut self, now: Instant, call: CallRef, reason: Option<String>) {
        let local = self.local;
        let Some(dialog) = self.dialogs.get_mut(&call) else {
            return;
        };
        if dialog.state == DialogState::Terminating {
            return;
        }
        if dialog.state == DialogState::Early && dialog.uac {
            // Our INVITE is not answered yet: CANCEL it (its 487 ends the
            // dialog) once a provisional came; a 2xx that crosses the
            // CANCEL is acknowledged and ended with BYE then.
            dialog.bye_on_answer = Some(reason);
            let branch = dialog.invite.branch().unwrap_or_default().to_owned();
            let proceeding = self.client.get(&branch).is_some_and(|e| {
                matches!(&e.tx, ClientKind::Invite(tx) if tx.state() == InviteClientState::Proceeding)
            });
            if !proceeding {
                dialog.cancel_pending = true;
                return;
            }
            return self.cancel(now, call);
        }
        if dialog.state == DialogState::Early {
            // Not answered yet: refuse the INVITE instead.
            self.respond_invite(
                now,
                call,
                StatusCode::TEMPORARILY_UNAVAILABLE,
                Vec::new(),
                None,
            );
            self.out.push_back(Output::Call(call, CallEvent::Ended));
            return;
        }
        dialog.state = DialogState::Terminating;
        let branch = random_token(&mut self.rng);
        let mut bye = dialog.request(Method::Bye, &local, &branch);
        if let Some(reason) = reason {
            bye.headers.push(("Reason".into(), reason));
        }
        let flow = dialog.request_flow();
        self.start_client(now, call, flow, &branch, &bye, true);
    }

    /// Sends the CANCEL of `call`'s INVITE (once).
    pub(super) fn cancel(&mut self, now: Instant, call: CallRef) {
        let Some(dialog) = self.dialogs.get_mut(&call) else {
            return;
        };
        dialog.cancel_pending = false;
        let cancel = cancel_of(&dialog.invite);
        let flow = dialog.flow;
        self.send_cancel(now, call, flow, &cancel);
    }

    /// Sends the CANCEL of `call`'s INVITE: a client transaction of its
    /// own under the INVITE's branch (keyed apart by [`cancel_key`]); the
    /// INVITE gives up 64·T1 later if nothing answers it.
    fn send_cancel(&mut self, now: Instant, call: CallRef, flow: Flow, cancel: &Message) {
        let Some(branch) = cancel.branch().map(str::to_owned) else {
            return;
        };
        if let Some(entry) = self.client.get_mut(&branch)
            && let ClientKind::Invite(tx) = &mut entry.tx
        {
            tx.give_up_at(now + 64 * self.timers.t1);
        }
        self.arm(TimerKey::Client(branch.clone()));
        let bytes = cancel.to_bytes();
        let tx = ClientTx::new(now, bytes.clone(), false, self.timers);
        let key = cancel_key(&branch);
        self.client.insert(
            key.clone(),
            ClientEntry {
                tx: ClientKind::NonInvite(tx),
                ack: None,
                armed: None,
                flow,
                call,
                ends_dialog: false,
            },
        );
        self.arm(TimerKey::Client(key));
        self.transmit(flow, bytes);
    }

    /// Sends `request` (whose top Via carries `branch`) as a non-INVITE
    /// client transaction of `call`.
    pub(super) fn start_client(
        &mut self,
        now: Instant,
        call: CallRef,
        flow: Flow,
        branch: &str,
        request: &Message,
        ends_dialog: bool,
    ) {
        let bytes = request.to_bytes();
        let tx = ClientTx::new(
            now,
            bytes.clone(),
            flow.transport.is_reliable(),
            self.timers,
        );
        let entry = ClientEntry {
            tx: ClientKind::NonInvite(tx),
            ack: None,
            armed: None,
            flow,
            call,
            ends_dialog,
        };
        let branch = format!("z9hG4bK{branch}");
        self.client.insert(branch.clone(), entry);
        self.arm(TimerKey::Client(branch));
        self.transmit(flow, bytes);
    }

    /// Sends an INFO of an Info Package (RFC 6086 §4.2) in a confirmed
    /// dialog. Its answer changes nothing; the caller asked for it with
    /// `Recv-Info`, which the shell checks.
    pub fn send_info(&mut self, now: Instant, call: CallRef, package: &str, body: String) {
        let headers = vec![
            ("Info-Package".into(), package.to_owned()),
            ("Content-Type".into(), "text/plain".into()),
            ("Content-Disposition".into(), "Info-Package".into()),
        ];
        self.send_info_with(now, call, headers, body);
    }

    /// Sends one key press as an `application/dtmf-relay` INFO (the
    /// legacy body SIP phones send) in a confirmed dialog: a key a caller
    /// sent by SIP INFO, passed on over its leg to the room's owner.
    pub fn send_dtmf_relay(&mut self, now: Instant, call: CallRef, signal: char) {
        let headers = vec![("Content-Type".into(), "application/dtmf-relay".into())];
        let body = format!("Signal={signal}\r\nDuration=100\r\n");
        self.send_info_with(now, call, headers, body);
    }

    fn send_info_with(
        &mut self,
        now: Instant,
        call: CallRef,
        headers: Vec<(String, String)>,
        body: String,
    ) {
        let local = self.local;
        let Some(dialog) = self.dialogs.get_mut(&call) else {
            return;
        };
        if dialog.state != DialogState::Confirmed {
            return;
        }
        let branch = random_token(&mut self.rng);
        let mut info = dialog.request(Method::Info, &local, &branch);
        info.headers.extend(headers);
        info.body = body.into_bytes();
        let flow = dialog.request_flow();
        self.start_client(now, call, flow, &branch, &info, false);
    }

    /// Places a call: sends `call`'s INVITE (UDP) in an INVITE client
    /// transaction. Its answer comes as `CallEvent::Answered` (the 2xx is
    /// acknowledged here) or `CallEvent::Refused`; then it is a dialog like
    /// any other (BYE either way, INFO).
    pub fn invite(&mut self, now: Instant, call: OutgoingCall) -> CallRef {
        let id = CallRef(self.next_call);
        self.next_call += 1;
        let flow = Flow {
            transport: crate::sip::dialog::Transport::Udp,
            remote: call.target,
        };
        let host = self.local.host_port();
        let local_uri = format!("<sip:{}@{host}>", call.from_user);
        let local_tag = random_token(&mut self.rng);
        let branch = random_token(&mut self.rng);
        let cseq: u32 = self.rng.random_range(1..10_000);
        let mut headers = vec![
            (
                "Via".to_owned(),
                format!("SIP/2.0/UDP {host};branch=z9hG4bK{branch};rport"),
            ),
            ("Max-Forwards".to_owned(), "70".to_owned()),
            ("From".to_owned(), format!("{local_uri};tag={local_tag}")),
            ("To".to_owned(), format!("<{}>", call.uri)),
            ("Call-ID".to_owned(), call.call_id),
            ("CSeq".to_owned(), format!("{cseq} INVITE")),
            self.contact(flow),
            ("Allow".to_owned(), ALLOW.to_owned()),
            ("User-Agent".to_owned(), "dialgate".to_owned()),
        ];
        headers.extend(call.headers);
        headers.push(("Content-Type".to_owned(), "application/sdp".to_owned()));
        let invite = Message {
            start: message::StartLine::Request {
                method: Method::Invite,
                uri: call.uri,
            },
            headers,
            body: call.sdp,
            uri_user: None,
        };
        let dialog = Dialog::outgoing(&invite, local_uri, local_tag, flow);
        self.by_id
            .insert((dialog.call_id.clone(), dialog.local_tag.clone()), id);
        self.dialogs.insert(id, dialog);
        let bytes = invite.to_bytes();
        let tx = InviteClientTx::new(now, bytes.clone(), false, self.timers);
        let branch = format!("z9hG4bK{branch}");
        self.client.insert(
            branch.clone(),
            ClientEntry {
                tx: ClientKind::Invite(tx),
                ack: None,
                armed: None,
                flow,
                call: id,
                ends_dialog: false,
            },
        );
        self.arm(TimerKey::Client(branch));
        self.transmit(flow, bytes);
        id
    }

    pub(super) fn forget(&mut self, call: CallRef) {
        self.reinvites.remove(&call);
        self.offered.remove(&call);
        if let Some(d) = self.dialogs.remove(&call) {
            self.by_id.remove(&(d.call_id, d.local_tag));
        }
    }
}

/// The client-table key of the CANCEL of the INVITE under `branch`: it
/// shares the INVITE's branch (RFC 3261 §9.1), its answers are told apart
/// by their CSeq method.
pub(super) fn cancel_key(branch: &str) -> String {
    format!("{branch} CANCEL")
}

/// The CANCEL of `invite` (RFC 3261 §9.1): its Request-URI, top Via,
/// From, To, Call-ID and CSeq number.
fn cancel_of(invite: &Message) -> Message {
    same_transaction(invite, Method::Cancel, invite.header("To"))
}

/// A request in `invite`'s own transaction — its CANCEL, or the ACK of a
/// failure (§17.1.1.3) — with `invite`'s Request-URI, Via, From, Call-ID
/// and CSeq number, and `to` as its To.
pub(super) fn same_transaction(invite: &Message, method: Method, to: Option<&str>) -> Message {
    let uri = match &invite.start {
        message::StartLine::Request { uri, .. } => uri.clone(),
        message::StartLine::Response { .. } => String::new(),
    };
    let mut headers = Vec::new();
    for name in ["Via", "Max-Forwards", "From"] {
        if let Some(v) = invite.header(name) {
            headers.push((name.to_owned(), v.to_owned()));
        }
    }
    headers.push(("To".to_owned(), to.unwrap_or_default().to_owned()));
    headers.push(("Call-ID".to_owned(), invite.call_id().to_owned()));
    let cseq = invite.cseq().map_or(1, |(n, _)| n);
    headers.push(("CSeq".to_owned(), format!("{cseq} {}", method.as_str())));
    Message {
        start: message::StartLine::Request { method, uri },
        headers,
        body: Vec::new(),
        uri_user: None,
    }
}
