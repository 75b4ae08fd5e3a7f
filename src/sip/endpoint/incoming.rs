//! What arrives: a datagram parsed, answered statelessly when it can be
//! (OPTIONS, errors), matched to its transaction and dialog, or a new
//! INVITE turned into a call.

use super::*;

impl Endpoint {
    /// One datagram or framed stream message from `flow`.
    pub fn handle_input(&mut self, now: Instant, flow: Flow, buf: &[u8]) {
        match message::parse(buf) {
            Ok(msg) if msg.method().is_some() => self.on_request(now, flow, msg),
            Ok(msg) => self.on_response(now, msg),
            Err(err) => {
                tracing::debug!(remote = %flow.remote, %err, "unparseable SIP message");
                if let Some(req) = message::salvage_for_400(buf) {
                    // 400, or 505 / 416 for a version or URI scheme we do not take.
                    let tag = self.stateless_tag(&req);
                    let mut resp = response(&req, err.status(), Some(&tag), flow.remote);
                    // A fixed text: the offending bytes are never echoed.
                    resp.headers
                        .push(("Warning".into(), format!("399 dialgate \"{}\"", err.kind())));
                    self.transmit(flow, resp.to_bytes());
                }
            }
        }
    }

    /// Sends a stateless-style final answer inside a fresh server transaction.
    pub(super) fn answer(
        &mut self,
        now: Instant,
        flow: Flow,
        req: &Message,
        method: &Method,
        resp: Message,
    ) {
        let status = resp.status().map_or(500, |s| s.0);
        let bytes = resp.to_bytes();
        // An INVITE's final answer is retransmitted until its ACK (§17.2.1).
        let invite = *method == Method::Invite;
        let mut tx = ServerTx::new(now, invite, flow.transport.is_reliable(), self.timers);
        tx.send_response(now, status, bytes.clone());
        self.insert_server(TxKey::of(req, method), tx, flow, None, None);
        self.transmit(flow, bytes);
    }

    /// Answers `req` with `status` and no transaction (RFC 3261 §8.2.7):
    /// nothing is kept or retransmitted, and a retransmitted request is
    /// answered afresh, with the same To tag.
    pub(super) fn simple(&mut self, flow: Flow, req: &Message, status: StatusCode) {
        let tag = self.stateless_tag(req);
        let mut resp = response(req, status, Some(&tag), flow.remote);
        if matches!(
            status,
            StatusCode::METHOD_NOT_ALLOWED | StatusCode::NOT_IMPLEMENTED | StatusCode::OK
        ) {
            resp.headers.push(("Allow".into(), ALLOW.into()));
        }
        self.transmit(flow, resp.to_bytes());
    }

    /// The To tag of a stateless answer to `req`: made from the request, so
    /// the same for its retransmissions, and keyed, so not guessable.
    pub(super) fn stateless_tag(&self, req: &Message) -> String {
        let mut h = DefaultHasher::new();
        (
            self.tag_key,
            req.call_id(),
            req.tag("From"),
            req.branch(),
            req.cseq(),
        )
            .hash(&mut h);
        format!("{:016x}", h.finish())
    }

    pub(super) fn dialog_of(&self, req: &Message) -> Option<CallRef> {
        let tag = req.tag("To")?;
        self.by_id
            .get(&(req.call_id().to_owned(), tag.to_owned()))
            .copied()
    }

    pub(super) fn on_request(&mut self, now: Instant, flow: Flow, req: Message) {
        let Some(method) = req.method().cloned() else {
            return;
        };
        match method {
            Method::Ack => return self.on_ack(now, &req),
            Method::Cancel => return self.on_cancel(now, flow, &req),
            _ => {}
        }
        if let Some(entry) = self.server.get(&TxKey::of(&req, &method)) {
            if let Some(bytes) = entry.tx.on_request_retransmission() {
                let flow = entry.flow;
                self.transmit(flow, bytes);
            }
            return;
        }
        // We take no extension: a request that requires one gets 420 with
        // what we do not support (RFC 3261 §8.2.2.3; never ACK or CANCEL).
        let required: Vec<&str> = req
            .headers_named("Require")
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .filter(|o| !o.is_empty())
            .collect();
        if !required.is_empty() {
            // Option tags are tokens (RFC 3261 §25.1): anything else is not
            // echoed back.
            let token = |o: &&str| {
                o.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-.!%*_+`'~".contains(&b))
            };
            let unsupported: Vec<&str> = required.iter().copied().filter(token).collect();
            let tag = self.stateless_tag(&req);
            let mut resp = response(&req, StatusCode::BAD_EXTENSION, Some(&tag), flow.remote);
            resp.headers
                .push(("Unsupported".into(), unsupported.join(", ")));
            return self.transmit(flow, resp.to_bytes());
        }
        let in_dialog = req.tag("To").is_some();
        // The Contact of a request that makes a dialog is the SIP or SIPS
        // URI its in-dialog requests go to (RFC 3261 §8.1.1.8): with another
        // scheme there, our BYE could not be addressed.
        if method == Method::Invite
            && let Some(contact) = req.header("Contact")
            && !message::is_sip_uri(message::uri_of(contact))
        {
            return self.simple(flow, &req, StatusCode::BAD_REQUEST);
        }
        match method {
            Method::Invite if !in_dialog => self.on_new_invite(now, flow, req),
            Method::Options => match self.overloaded {
                Some(after) => {
                    let tag = self.stateless_tag(&req);
                    let mut resp = response(
                        &req,
                        StatusCode::SERVICE_UNAVAILABLE,
                        Some(&tag),
                        flow.remote,
                    );
                    resp.headers.push(("Retry-After".into(), after.to_string()));
                    self.transmit(flow, resp.to_bytes());
                }
                None => self.simple(flow, &req, StatusCode::OK),
            },
            Method::Invite | Method::Bye | Method::Info => match self.dialog_of(&req) {
                Some(call) => self.on_in_dialog(now, flow, call, req, method),
                None => self.simple(flow, &req, StatusCode::CALL_DOES_NOT_EXIST),
            },
            Method::Other(_) => self.simple(flow, &req, StatusCode::NOT_IMPLEMENTED),
            _ => self.simple(flow, &req, StatusCode::METHOD_NOT_ALLOWED),
        }
    }

    pub(super) fn on_new_invite(&mut self, now: Instant, flow: Flow, req: Message) {
        let call = CallRef(self.next_call);
        self.next_call += 1;
        let dialog = Dialog::from_invite(&req, flow, &mut self.rng);
        let trying = response(&req, StatusCode::TRYING, None, flow.remote).to_bytes();
        let mut tx = ServerTx::new(now, true, flow.transport.is_reliable(), self.timers);
        tx.send_response(now, 100, trying.clone());
        self.insert_server(TxKey::of(&req, &Method::Invite), tx, flow, None, Some(call));
        self.transmit(flow, trying);
        let incoming = IncomingCall {
            call,
            call_id: req.call_id().to_owned(),
            dialled: req.uri_user.clone(),
            from_user: req
                .header("From")
                .and_then(|f| message::uri_user(message::uri_of(f)))
                .unwrap_or("anonymous")
                .to_owned(),
            p_asserted_identity: req.header("P-Asserted-Identity").map(str::to_owned),
            vias: req.headers_named("Via").map(str::to_owned).collect(),
            source: flow.remote,
            content_type: req.content_type().map(str::to_owned),
            body: req.body.clone(),
            recv_info: req
                .headers_named("Recv-Info")
                .flat_map(|v| v.split(','))
                .map(|p| p.trim().to_ascii_lowercase())
                .filter(|p| !p.is_empty())
                .collect(),
            leg: req.header("X-Dialgate-Leg").map(str::to_owned),
        };
        self.by_id
            .insert((dialog.call_id.clone(), dialog.local_tag.clone()), call);
        self.dialogs.insert(call, dialog);
        self.out.push_back(Output::Incoming(incoming));
    }

    pub(super) fn on_in_dialog(
        &mut self,
        now: Instant,
        flow: Flow,
        call: CallRef,
        req: Message,
        method: Method,
    ) {
        let Some(dialog) = self.dialogs.get_mut(&call) else {
            return;
        };
        let cseq = req.cseq().map_or(0, |(n, _)| n);
        if cseq <= dialog.remote_cseq {
            // Out of order (RFC 3261 §12.2.2).
            return self.simple(flow, &req, StatusCode::SERVER_ERROR);
        }
        dialog.remote_cseq = cseq;
        match method {
            Method::Bye => {
                let tag = dialog.local_tag.clone();
                let resp = response(&req, StatusCode::OK, Some(&tag), flow.remote);
                self.answer(now, flow, &req, &method, resp);
                // A BYE on an early dialog also ends the pending INVITE.
                self.finish_pending_invite(now, call, StatusCode::REQUEST_TERMINATED);
                self.forget(call);
                let reason = req.header("Reason").map(str::to_owned);
                self.out
                    .push_back(Output::Call(call, CallEvent::Bye { reason }));
            }
            Method::Info => {
                let key = TxKey::of(&req, &method);
                let tx = ServerTx::new(now, false, flow.transport.is_reliable(), self.timers);
                self.insert_server(key.clone(), tx, flow, Some(req.clone()), Some(call));
                self.out.push_back(Output::Call(
                    call,
                    CallEvent::Info {
                        tx: key,
                        package: req
                            .header("Info-Package")
                            .map(|p| p.trim().to_ascii_lowercase()),
                        content_type: req.content_type().unwrap_or_default().to_owned(),
                        body: req.body,
                    },
                ));
            }
            _ if !req.body.is_empty() => {
                // A re-INVITE with an offer: the call answers it. One at a
                // time (RFC 3261 §14.2): another while it is open gets 500.
                let open = self
                    .offered
                    .get(&call)
                    .is_some_and(|key| self.server.get(key).is_some_and(|e| e.request.is_some()));
                if open {
                    // RFC 3261 §14.2: 500 with a Retry-After of 0 to 10 s.
                    let mut resp = response(
                        &req,
                        StatusCode::SERVER_ERROR,
                        Some(&dialog.local_tag),
                        flow.remote,
                    );
                    let after = self.rng.random_range(0..=10u8);
                    resp.headers.push(("Retry-After".into(), after.to_string()));
                    return self.answer(now, flow, &req, &method, resp);
                }
                let key = TxKey::of(&req, &method);
                let trying = response(&req, StatusCode::TRYING, None, flow.remote).to_bytes();
                let mut tx = ServerTx::new(now, true, flow.transport.is_reliable(), self.timers);
                tx.send_response(now, 100, trying.clone());
                self.transmit(flow, trying);
                self.insert_server(key.clone(), tx, flow, Some(req.clone()), Some(call));
                self.offered.insert(call, key.clone());
                self.out.push_back(Output::Call(
                    call,
                    CallEvent::Reinvite {
                        tx: key,
                        content_type: req.content_type().unwrap_or_default().to_owned(),
                        vias: req.headers_named("Via").map(str::to_owned).collect(),
                        source: flow.remote,
                        body: req.body,
                    },
                ));
            }
            _ => {
                // A re-INVITE without an offer (a session refresh): our
                // current session is the offer in the 200, answered in the ACK.
                let tag = dialog.local_tag.clone();
                let sdp = dialog.local_sdp.clone();
                let mut resp = response(&req, StatusCode::OK, Some(&tag), flow.remote);
                resp.headers.push(self.contact(flow));
                if let Some(sdp) = sdp {
                    resp.headers
                        .push(("Content-Type".into(), "application/sdp".into()));
                    resp.body = sdp;
                }
                let bytes = resp.to_bytes();
                let mut tx = ServerTx::new(now, true, flow.transport.is_reliable(), self.timers);
                tx.send_response(now, 200, bytes.clone());
                self.reinvites.insert(call, TxKey::of(&req, &method));
                self.insert_server(TxKey::of(&req, &method), tx, flow, None, None);
                self.transmit(flow, bytes);
            }
        }
    }

    pub(super) fn invite_key(&self, call: CallRef) -> Option<TxKey> {
        let d = self.dialogs.get(&call)?;
        Some(TxKey::of(&d.invite, &Method::Invite))
    }

    pub(super) fn finish_pending_invite(
        &mut self,
        now: Instant,
        call: CallRef,
        status: StatusCode,
    ) {
        let Some(key) = self.invite_key(call) else {
            return;
        };
        let pending = self
            .server
            .get(&key)
            .is_some_and(|e| e.tx.state() == ServerState::Proceeding);
        if pending {
            self.answer_invite(now, call, status, Vec::new(), None);
        }
    }

    pub(super) fn on_cancel(&mut self, now: Instant, flow: Flow, req: &Message) {
        let invite_key = TxKey::of(req, &Method::Invite);
        let Some(entry) = self.server.get(&invite_key) else {
            return self.simple(flow, req, StatusCode::CALL_DOES_NOT_EXIST);
        };
        let call = entry.call;
        let pending = entry.tx.state() == ServerState::Proceeding;
        let tag = call
            .and_then(|c| self.dialogs.get(&c))
            .map(|d| d.local_tag.clone());
        let ok = response(req, StatusCode::OK, tag.as_deref(), flow.remote);
        self.answer(now, flow, req, &Method::Cancel, ok);
        if let (Some(call), true) = (call, pending) {
            self.answer_invite(now, call, StatusCode::REQUEST_TERMINATED, Vec::new(), None);
            self.out.push_back(Output::Call(call, CallEvent::Cancelled));
        }
    }

    pub(super) fn on_ack(&mut self, now: Instant, req: &Message) {
        // ACK to a non-2xx shares the INVITE's branch (§17.2.1).
        let key = TxKey::of(req, &Method::Invite);
        if let Some(entry) = self.server.get_mut(&key)
            && entry.tx.state() == ServerState::Completed
        {
            entry.tx.recv_ack(now);
            release_unacked(&mut self.unacked, entry);
            return self.arm(TimerKey::Server(key));
        }
        // ACK to a 2xx is its own transaction: match the dialog (§13.3.1.4).
        let Some(call) = self.dialog_of(req) else {
            return;
        };
        if let Some(key) = self.reinvites.remove(&call) {
            if let Some(entry) = self.server.get_mut(&key) {
                entry.tx.recv_ack(now);
            }
            return self.arm(TimerKey::Server(key));
        }
        let Some(invite_key) = self.invite_key(call) else {
            return;
        };
        if let Some(entry) = self.server.get_mut(&invite_key) {
            entry.tx.recv_ack(now);
        }
        self.arm(TimerKey::Server(invite_key));
        if let Some(d) = self.dialogs.get_mut(&call)
            && !d.acked
        {
            d.acked = true;
            self.out.push_back(Output::Call(call, CallEvent::Ack));
        }
    }

    pub(super) fn on_response(&mut self, now: Instant, resp: Message) {
        let Some(status) = resp.status() else { return };
        let Some(branch) = resp.branch() else { return };
        let method = resp.cseq().map(|(_, m)| m);
        // A CANCEL shares its INVITE's branch: its answers are keyed apart.
        let branch = if method == Some(Method::Cancel) {
            super::outgoing::cancel_key(branch)
        } else {
            branch.to_owned()
        };
        let Some(entry) = self.client.get_mut(&branch) else {
            return;
        };
        let call = entry.call;
        if matches!(entry.tx, ClientKind::Invite(_)) && method != Some(Method::Invite) {
            return;
        }
        let answer = match &mut entry.tx {
            ClientKind::NonInvite(tx) => {
                let ended = tx.recv_response(now, status.0) && entry.ends_dialog;
                self.arm(TimerKey::Client(branch));
                if ended {
                    self.forget(call);
                    self.out.push_back(Output::Call(call, CallEvent::Ended));
                }
                return;
            }
            ClientKind::Invite(tx) => tx.recv_response(now, status.0),
        };
        match answer {
            InviteResponse::Deliver if status.is_success() => {
                self.on_invite_ok(now, &branch, call, &resp);
            }
            InviteResponse::Deliver => {
                // A provisional: a hang-up that waited for one cancels now.
                if self.dialogs.get(&call).is_some_and(|d| d.cancel_pending) {
                    self.cancel(now, call);
                }
            }
            InviteResponse::Absorb => {}
            InviteResponse::Rejected => {
                let ack = self.failure_ack(&branch, &resp);
                if let Some(entry) = self.client.get_mut(&branch)
                    && let ClientKind::Invite(tx) = &mut entry.tx
                    && !ack.is_empty()
                {
                    tx.send_ack(ack.clone());
                }
                let flow = self.client.get(&branch).map(|e| e.flow);
                if let Some(flow) = flow
                    && !ack.is_empty()
                {
                    self.transmit(flow, ack);
                }
                if self.dialogs.contains_key(&call) {
                    self.forget(call);
                    self.out
                        .push_back(Output::Call(call, CallEvent::Refused { status: status.0 }));
                }
            }
            InviteResponse::Resend(ack) => {
                if let Some(flow) = self.client.get(&branch).map(|e| e.flow) {
                    self.transmit(flow, ack);
                }
            }
        }
        self.arm(TimerKey::Client(branch));
    }

    /// Our INVITE's 2xx, the first or again: the first confirms the dialog
    /// and is told to the call; each is acknowledged (§13.2.2.4).
    fn on_invite_ok(&mut self, now: Instant, branch: &str, call: CallRef, ok: &Message) {
        let local = self.local;
        if let Some(ack) = self.client.get(branch).and_then(|e| e.ack.clone()) {
            let flow = self.dialogs.get(&call).map_or_else(
                || self.client.get(branch).map(|e| e.flow),
                |d| Some(d.request_flow()),
            );
            if let Some(flow) = flow {
                self.transmit(flow, ack);
            }
            return;
        }
        let Some(dialog) = self.dialogs.get_mut(&call) else {
            return;
        };
        dialog.confirm_outgoing(ok);
        let ack_branch = random_token(&mut self.rng);
        let ack = dialog.ack(&local, &ack_branch).to_bytes();
        let flow = dialog.request_flow();
        let bye = dialog.bye_on_answer.take();
        if let Some(entry) = self.client.get_mut(branch) {
            entry.ack = Some(ack.clone());
        }
        self.transmit(flow, ack);
        match bye {
            Some(reason) => self.send_bye(now, call, reason),
            None => self.out.push_back(Output::Call(
                call,
                CallEvent::Answered {
                    content_type: ok.content_type().unwrap_or_default().to_owned(),
                    body: ok.body.clone(),
                },
            )),
        }
    }

    /// The ACK of a failure to our INVITE: part of the INVITE's
    /// transaction, so its branch, its Request-URI and the failure's To
    /// (§17.1.1.3).
    fn failure_ack(&self, branch: &str, failure: &Message) -> Bytes {
        let call = self.client.get(branch).map(|e| e.call);
        let invite = call.and_then(|c| self.dialogs.get(&c)).map(|d| &d.invite);
        let Some(invite) = invite else {
            return Bytes::new();
        };
        super::outgoing::same_transaction(invite, Method::Ack, failure.header("To")).to_bytes()
    }
}
