//! The transactions' timers: one heap of deadlines (lazily deleted), the
//! earliest asked for by the shell, and what each expiry does.

use super::*;

impl Endpoint {
    /// Puts `key`'s transaction's next deadline in the heap, after
    /// anything that may have changed it. A deadline already armed is
    /// not pushed again; an old one left behind goes stale.
    pub(super) fn arm(&mut self, key: TimerKey) {
        let (due, armed) = match &key {
            TimerKey::Server(k) => match self.server.get_mut(k) {
                Some(e) => (e.tx.poll_timeout(), &mut e.armed),
                None => return,
            },
            TimerKey::Client(b) => match self.client.get_mut(b) {
                Some(e) => (e.tx.poll_timeout(), &mut e.armed),
                None => return,
            },
        };
        if due == *armed {
            return;
        }
        *armed = due;
        if let Some(at) = due {
            self.deadlines.heap.push(Reverse((at, key)));
        }
        // Stale entries leave as their deadlines pass (within 64·T1); a
        // rebuild bounds the heap should changes ever outpace that.
        let live = self.server.len() + self.client.len();
        if self.deadlines.heap.len() > 4 * live + 1024 {
            self.rebuild_timers();
        }
    }

    pub(super) fn rebuild_timers(&mut self) {
        let server = self
            .server
            .iter()
            .filter_map(|(k, e)| Some(Reverse((e.armed?, TimerKey::Server(k.clone())))));
        let client = self
            .client
            .iter()
            .filter_map(|(b, e)| Some(Reverse((e.armed?, TimerKey::Client(b.clone())))));
        self.deadlines.heap = server.chain(client).collect();
    }

    /// Whether a heap entry still stands for its transaction's deadline.
    pub(super) fn current(&self, at: Instant, key: &TimerKey) -> bool {
        let armed = match key {
            TimerKey::Server(k) => self.server.get(k).and_then(|e| e.armed),
            TimerKey::Client(b) => self.client.get(b).and_then(|e| e.armed),
        };
        armed == Some(at)
    }

    /// The earliest deadline of any transaction (stale heap entries on
    /// top are dropped on the way).
    pub fn poll_timeout(&mut self) -> Option<Instant> {
        while let Some(Reverse((at, key))) = self.deadlines.heap.peek() {
            if self.current(*at, key) {
                return Some(*at);
            }
            self.deadlines.examined += 1;
            self.deadlines.heap.pop();
        }
        None
    }

    /// Runs every transaction timer due by `now`, each transaction at most
    /// once per call; the cost is in the timers due, not the transactions live.
    pub fn handle_timeout(&mut self, now: Instant) {
        let mut due = Vec::new();
        while let Some(Reverse((at, _))) = self.deadlines.heap.peek() {
            if *at > now {
                break;
            }
            let Some(Reverse((at, key))) = self.deadlines.heap.pop() else {
                break;
            };
            self.deadlines.examined += 1;
            due.push((at, key));
        }
        let mut events = Vec::new();
        for (at, key) in due {
            // Checked here, not when popped: a transaction handled once in
            // this call has re-armed, so a duplicate entry of it is stale.
            if !self.current(at, &key) {
                continue;
            }
            match key {
                TimerKey::Server(k) => self.server_timeout(now, k, &mut events),
                TimerKey::Client(b) => self.client_timeout(now, b, &mut events),
            }
        }
        for (call, event) in events {
            if matches!(event, CallEvent::Ended) {
                if !self.dialogs.contains_key(&call) {
                    continue;
                }
                self.forget(call);
            }
            self.out.push_back(Output::Call(call, event));
        }
    }

    pub(super) fn server_timeout(
        &mut self,
        now: Instant,
        key: TxKey,
        events: &mut Vec<(CallRef, CallEvent)>,
    ) {
        let Some(entry) = self.server.get_mut(&key) else {
            return;
        };
        entry.armed = None;
        let (flow, call, invite) = (entry.flow, entry.call, entry.tx.is_invite());
        let done = match entry.tx.handle_timeout(now) {
            TimerOutput::Retransmit(bytes) => {
                self.transmit(flow, bytes);
                false
            }
            TimerOutput::AckTimeout => {
                if let Some(call) = call {
                    events.push((call, CallEvent::AckTimeout));
                }
                true
            }
            TimerOutput::Unanswered => match call {
                // An INVITE nobody answered: refuse it ourselves.
                Some(call) if invite && self.dialogs.contains_key(&call) => {
                    tracing::warn!("INVITE left unanswered: 500");
                    self.respond_invite(now, call, StatusCode::SERVER_ERROR, Vec::new(), None);
                    false
                }
                // An INFO nobody answered (or an INVITE whose dialog is
                // gone): forget it.
                _ => true,
            },
            TimerOutput::Terminated | TimerOutput::RequestTimeout => true,
            TimerOutput::Nothing => false,
        };
        if done {
            if let Some(mut entry) = self.server.remove(&key) {
                release_unacked(&mut self.unacked, &mut entry);
            }
        } else {
            self.arm(TimerKey::Server(key));
        }
    }

    pub(super) fn client_timeout(
        &mut self,
        now: Instant,
        branch: String,
        events: &mut Vec<(CallRef, CallEvent)>,
    ) {
        let Some(entry) = self.client.get_mut(&branch) else {
            return;
        };
        entry.armed = None;
        let (flow, call, ends_dialog) = (entry.flow, entry.call, entry.ends_dialog);
        let invite = matches!(entry.tx, ClientKind::Invite(_));
        let done = match entry.tx.handle_timeout(now) {
            TimerOutput::Retransmit(bytes) => {
                self.transmit(flow, bytes);
                false
            }
            TimerOutput::RequestTimeout => {
                if ends_dialog {
                    events.push((call, CallEvent::Ended));
                }
                // Our INVITE got no answer at all (Timer B).
                if invite && self.dialogs.contains_key(&call) {
                    self.forget(call);
                    events.push((call, CallEvent::Refused { status: 408 }));
                }
                true
            }
            TimerOutput::Terminated | TimerOutput::AckTimeout | TimerOutput::Unanswered => true,
            TimerOutput::Nothing => false,
        };
        if done {
            self.client.remove(&branch);
        } else {
            self.arm(TimerKey::Client(branch));
        }
    }

    /// Timer-heap entries examined so far, stale ones included.
    #[cfg(test)]
    pub(super) fn timers_examined(&self) -> u64 {
        self.deadlines.examined
    }

    /// Transactions whose deadline is not the one armed in the heap: a
    /// change that forgot to re-arm (must always be none).
    #[cfg(test)]
    pub(super) fn misarmed(&self) -> usize {
        let s = self
            .server
            .values()
            .filter(|e| e.armed != e.tx.poll_timeout());
        let c = self
            .client
            .values()
            .filter(|e| e.armed != e.tx.poll_timeout());
        s.count() + c.count()
    }

    /// The earliest deadline by sweeping every transaction: what the heap
    /// must always agree with.
    #[cfg(test)]
    pub(super) fn swept_timeout(&self) -> Option<Instant> {
        let s = self.server.values().filter_map(|e| e.tx.poll_timeout());
        let c = self.client.values().filter_map(|e| e.tx.poll_timeout());
        s.chain(c).min()
    }
}
