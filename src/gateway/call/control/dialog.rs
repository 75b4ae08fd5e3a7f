//! Requests inside the dialog (INFO, re-INVITE, ACK, BYE, CANCEL) and
//! SDP offer/answer for the call.

use super::*;

impl CallCore {
    pub(super) fn on_sip(&mut self, now: Instant, event: CallEvent) {
        match event {
            CallEvent::Info {
                tx,
                package,
                content_type,
                body,
            } => self.on_info(tx, package.as_deref(), &content_type, &body),
            CallEvent::Reinvite {
                tx,
                content_type,
                body,
                ..
            } => self.on_reinvite(now, tx, &content_type, &body),
            CallEvent::Ack => {
                if matches!(self.phase, Phase::Answered) {
                    self.talk(now);
                }
            }
            CallEvent::AckTimeout => {
                if matches!(self.phase, Phase::Answered) {
                    tracing::warn!("no ACK for our 200: hanging up");
                    self.out.push_back(Action::Bye { cause: None });
                    self.phase = Phase::Done;
                }
            }
            CallEvent::Bye { .. } | CallEvent::Cancelled => match self.phase {
                Phase::Talking(_) => self.end(now, End::CallerLeft),
                Phase::Closing { .. } => {
                    tracing::info!("caller hung up during the closing prompt");
                    self.phase = Phase::Done;
                }
                Phase::Ringing { .. } => {
                    tracing::info!("caller gave up before answer");
                    self.phase = Phase::Done;
                }
                _ => self.phase = Phase::Done,
            },
            CallEvent::Ended => match self.phase {
                Phase::Talking(_) => self.end(now, End::Gone),
                Phase::Ringing { .. } => {
                    tracing::info!("caller gave up before answer");
                    self.phase = Phase::Done;
                }
                _ => self.phase = Phase::Done,
            },
            // Answers to INVITEs we send: the shell's leg to another node
            // hears those, never the caller's dialog.
            CallEvent::Answered { .. } | CallEvent::Refused { .. } => {}
        }
    }

    pub(super) fn on_info(
        &mut self,
        tx: TxKey,
        package: Option<&str>,
        content_type: &str,
        body: &[u8],
    ) {
        if package == Some(MEMBER_PACKAGE) {
            return self.on_member_info(tx, body);
        }
        let status = match &self.phase {
            Phase::Talking(_) => match parse_info(content_type, body) {
                Ok(key) => {
                    self.out.push_back(Action::InfoKey(key));
                    StatusCode::OK
                }
                Err(SipInfoError::UnsupportedContentType) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
                Err(e) => {
                    tracing::debug!(%e, "INFO body refused");
                    StatusCode::BAD_REQUEST
                }
            },
            Phase::HangingUp { .. } | Phase::Done => StatusCode::CALL_DOES_NOT_EXIST,
            // Before the IVR listens (ringing, before the ACK) or after it
            // (closing): taken, not keyed.
            _ => StatusCode::OK,
        };
        self.out.push_back(Action::RespondInfo { tx, status });
    }

    /// An INFO of the member package: on a leg from another node, what
    /// that node's operator asks for the caller (mute, admit, lock), once
    /// in the room; from anyone else, a package we never offered (469, RFC
    /// 6086 §4.2.2).
    fn on_member_info(&mut self, tx: TxKey, body: &[u8]) {
        let in_room = matches!(&self.phase, Phase::Talking(t) if t.room.is_some());
        let over = matches!(self.phase, Phase::HangingUp { .. } | Phase::Done);
        let status = match MemberInfo::parse(body) {
            _ if self.leg.is_none() => StatusCode::BAD_INFO_PACKAGE,
            _ if over => StatusCode::CALL_DOES_NOT_EXIST,
            Some(info @ (MemberInfo::Mute(_) | MemberInfo::Admit | MemberInfo::Lock(_)))
                if in_room =>
            {
                self.out.push_back(Action::Member(info));
                StatusCode::OK
            }
            Some(_) if in_room => StatusCode::BAD_REQUEST,
            Some(_) => StatusCode::REQUEST_PENDING,
            None => StatusCode::BAD_REQUEST,
        };
        self.out.push_back(Action::RespondInfo { tx, status });
    }

    pub(super) fn on_reinvite(&mut self, now: Instant, tx: TxKey, content_type: &str, body: &[u8]) {
        let refusal = match &self.phase {
            Phase::Talking(_) => None,
            Phase::HangingUp { .. } | Phase::Done => Some(StatusCode::CALL_DOES_NOT_EXIST),
            // Our 2xx is not acknowledged yet (or the call is closing): one
            // INVITE at a time.
            _ => Some(StatusCode::REQUEST_PENDING),
        };
        if let Some(status) = refusal {
            return self.out.push_back(Action::RespondReinvite {
                tx,
                status,
                sdp: None,
            });
        }
        let Some(media) = self.media.as_mut() else {
            return;
        };
        // A changed session gets the next version (RFC 3264 §8); an
        // unchanged one the answer it had.
        let next = Session {
            version: media.session.version + 1,
            ..media.session
        };
        let (status, sdp) = match negotiate(&self.rules, Some(content_type), body, next) {
            Ok((new, _)) if new == media.negotiated => {
                (StatusCode::OK, Some(media.answer.clone().into_bytes()))
            }
            Ok((new, reply)) => {
                media.session = next;
                media.answer = reply;
                let (sends, held) = media_flow(&new);
                let old = std::mem::replace(&mut media.negotiated, new.clone());
                tracing::info!(codec = ?new.codec, held, direction = ?new.direction, "session changed by re-INVITE");
                let sdp = Some(media.answer.clone().into_bytes());
                if let Phase::Talking(t) = &mut self.phase {
                    t.rearm_silence(now, self.rules.rtp_timeout.filter(|_| sends));
                }
                self.out.push_back(Action::Renegotiated { old, new, held });
                (StatusCode::OK, sdp)
            }
            Err(cause) => (cause.status(), None),
        };
        self.out
            .push_back(Action::RespondReinvite { tx, status, sdp });
    }
}

/// Answers an SDP offer (`content_type` and `body` of an INVITE).
pub fn negotiate(
    rules: &Rules,
    content_type: Option<&str>,
    body: &[u8],
    session: Session,
) -> Result<(Negotiated, String), Cause> {
    let is_sdp =
        content_type.is_some_and(|c| c.trim().to_ascii_lowercase().starts_with("application/sdp"));
    if !is_sdp || body.is_empty() {
        // INVITEs without an offer (offer in the ACK) are not supported yet.
        return Err(Cause::NoOffer);
    }
    let offer = String::from_utf8_lossy(body);
    let local = LocalMedia {
        addr: rules.advertise,
        port: session.port,
        session_id: session.id,
        session_version: session.version,
        codecs: rules.codecs.clone(),
    };
    sdp::answer(&offer, &local).map_err(|e| {
        tracing::info!(%e, "SDP offer refused");
        match e {
            SdpError::NoAudio | SdpError::NoCommonCodec => Cause::NoCommonCodec,
            _ => Cause::BadOffer,
        }
    })
}

/// What the caller's side of the session means for our media: whether it
/// sends (so silence is a timeout) and whether it put us on hold (wants
/// none of our media, or gave no address to send it to).
pub fn media_flow(n: &Negotiated) -> (bool, bool) {
    let sends = matches!(n.direction, Direction::SendRecv | Direction::SendOnly);
    let receives = matches!(n.direction, Direction::SendRecv | Direction::RecvOnly);
    let addressed = n.remote_rtp.is_some_and(|a| !a.ip().is_unspecified());
    (sends, !receives || !addressed)
}
