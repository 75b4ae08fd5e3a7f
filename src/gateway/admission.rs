//! Overload refusal: whether the gateway takes one more call, decided before
//! anything is answered.
//!
//! A call the gateway cannot serve gets `503 Service Unavailable` with
//! `Retry-After` before any 200 OK, never an answer and then starvation.
//! Four signals, each cheap to read on every INVITE:
//! - calls in progress at `--max-calls`;
//! - the attempt log's writer behind (its backlog past its limit): taking
//!   more calls would mean queueing rows without end;
//! - the event loop late: the runtime's scheduling lag (a 20 ms probe's
//!   lateness, smoothed) past `--max-loop-lag`, the sign that the CPU is
//!   saturated and every call's media is about to suffer;
//! - the store slow: the mean time calls wait for their store questions
//!   (routing, counts, lookups — a verdict's wait included), per quarter
//!   second and smoothed, past `--max-store-latency`. The soak bench's 2×
//!   step showed this one rising first (query p99 from 5 ms to 1 s) while
//!   the loop lag stayed low: without it, calls were answered and then
//!   waited seconds for their verdict.
//!
//! While any holds, OPTIONS is answered 503 too, so a dispatcher in front
//! (Kamailio) sends new calls to another node.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use crate::cause::{Cause, Shed};
use crate::store::AttemptLog;

pub struct Admission {
    max_calls: usize,
    max_lag: Duration,
    max_store: Duration,
    /// Store waits since the last quarter second: their sum (µs) and count.
    store_sum_us: AtomicU64,
    store_count: AtomicU64,
    /// Smoothed mean store wait, in microseconds.
    store_us: AtomicU64,
    calls: AtomicUsize,
    /// Smoothed event-loop lag, in microseconds.
    lag_us: AtomicU64,
    attempts: AttemptLog,
}

/// One call's place; dropping it frees the place.
#[must_use = "the call's place is freed when this is dropped"]
pub struct CallSlot(Arc<Admission>);

impl Drop for CallSlot {
    fn drop(&mut self) {
        self.0.calls.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Admission {
    pub fn new(
        max_calls: usize,
        max_lag: Duration,
        max_store: Duration,
        attempts: AttemptLog,
    ) -> Arc<Admission> {
        Arc::new(Admission {
            max_calls,
            max_lag,
            max_store,
            store_sum_us: AtomicU64::new(0),
            store_count: AtomicU64::new(0),
            store_us: AtomicU64::new(0),
            calls: AtomicUsize::new(0),
            lag_us: AtomicU64::new(0),
            attempts,
        })
    }

    /// Calls holding a place now.
    pub fn calls(&self) -> usize {
        self.calls.load(Ordering::Acquire)
    }

    /// The smoothed event-loop lag.
    pub fn loop_lag(&self) -> Duration {
        Duration::from_micros(self.lag_us.load(Ordering::Relaxed))
    }

    /// A call waited `took` for one store question.
    pub fn observe_store(&self, took: Duration) {
        let us = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        self.store_sum_us.fetch_add(us, Ordering::Relaxed);
        self.store_count.fetch_add(1, Ordering::Relaxed);
    }

    /// The smoothed mean store wait.
    pub fn store_latency(&self) -> Duration {
        Duration::from_micros(self.store_us.load(Ordering::Relaxed))
    }

    /// Folds the waits observed since the last call into the smoothed
    /// mean (new = 3/4 old + 1/4 this period's mean; a period without any
    /// wait counts as 0, so the signal decays once calls stop coming).
    pub fn fold_store_period(&self) {
        let sum = self.store_sum_us.swap(0, Ordering::Relaxed);
        let count = self.store_count.swap(0, Ordering::Relaxed);
        let mean = sum.checked_div(count).unwrap_or(0);
        let old = self.store_us.load(Ordering::Relaxed);
        let smoothed = old - old / 4 + mean / 4;
        self.store_us.store(smoothed, Ordering::Relaxed);
        metrics::gauge!("dialgate_store_latency_seconds").set(smoothed as f64 / 1e6);
    }

    /// Why the gateway refuses new calls now, if it does.
    pub fn shedding(&self) -> Option<Shed> {
        if self.calls() >= self.max_calls {
            Some(Shed::Calls)
        } else if self.attempts.behind() {
            Some(Shed::AttemptLog)
        } else if !self.max_lag.is_zero() && self.loop_lag() > self.max_lag {
            Some(Shed::LoopLag)
        } else if !self.max_store.is_zero() && self.store_latency() > self.max_store {
            Some(Shed::StoreLatency)
        } else {
            None
        }
    }

    /// A place for one more call, or why there is none.
    pub fn admit(self: &Arc<Self>) -> Result<CallSlot, Shed> {
        if let Some(why) = self.shedding() {
            return Err(why);
        }
        // Checked then taken without a race: the one endpoint task admits.
        self.calls.fetch_add(1, Ordering::AcqRel);
        Ok(CallSlot(self.clone()))
    }

    /// Counts a call refused before answering in the metrics: by its
    /// cause, and a shed one by its reason too.
    pub fn count_refused(cause: Cause) {
        metrics::counter!("dialgate_calls_refused_total", "cause" => cause.label()).increment(1);
        if let Cause::Shed(why) = cause {
            metrics::counter!("dialgate_calls_shed_total", "reason" => why.as_str()).increment(1);
        }
    }

    /// Measures the event loop's lag for ever: a 20 ms timer's lateness,
    /// smoothed over about a second (new = 7/8 old + 1/8 sample).
    pub async fn watch_loop_lag(self: Arc<Self>) {
        const PERIOD: Duration = Duration::from_millis(20);
        let mut next = tokio::time::Instant::now() + PERIOD;
        let mut ticks = 0u32;
        loop {
            tokio::time::sleep_until(next).await;
            let now = tokio::time::Instant::now();
            let late = now.saturating_duration_since(next).as_micros();
            let late = u64::try_from(late).unwrap_or(u64::MAX);
            let old = self.lag_us.load(Ordering::Relaxed);
            let smoothed = old - old / 8 + late / 8;
            self.lag_us.store(smoothed, Ordering::Relaxed);
            metrics::gauge!("dialgate_event_loop_lag_seconds").set(smoothed as f64 / 1e6);
            metrics::gauge!("dialgate_calls_in_progress").set(self.calls() as f64);
            ticks = ticks.wrapping_add(1);
            if ticks.is_multiple_of(12) {
                // A quarter second (12 × 20 ms, near enough).
                self.fold_store_period();
            }
            next = now + PERIOD;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{LogConfig, Store};

    async fn admission(max_store: Duration) -> (tempfile::TempDir, Arc<Admission>) {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("a.db").display());
        let store = Store::open(&url).await.unwrap();
        let log = AttemptLog::start(store, LogConfig::default());
        (dir, Admission::new(10, Duration::ZERO, max_store, log))
    }

    #[tokio::test]
    async fn a_slow_store_sheds_new_calls_and_the_signal_decays_when_calls_stop() {
        let (_dir, a) = admission(Duration::from_millis(200)).await;
        // Quick answers: nothing to shed.
        for _ in 0..50 {
            a.observe_store(Duration::from_millis(5));
        }
        a.fold_store_period();
        assert_eq!(a.shedding(), None);
        // A store answering in a second, for a few periods: shed.
        let mut periods = 0;
        while a.shedding().is_none() {
            for _ in 0..20 {
                a.observe_store(Duration::from_secs(1));
            }
            a.fold_store_period();
            periods += 1;
            assert!(periods <= 3, "shed within three quarter seconds");
        }
        assert_eq!(a.shedding(), Some(Shed::StoreLatency));
        assert!(a.admit().is_err());
        // No more waits at all (every call refused): it decays and calls come back.
        let mut periods = 0;
        while a.shedding().is_some() {
            a.fold_store_period();
            periods += 1;
            assert!(periods <= 12, "taking calls again within three seconds");
        }
        assert!(a.admit().is_ok());
    }

    #[tokio::test]
    async fn zero_never_sheds_on_the_store() {
        let (_dir, a) = admission(Duration::ZERO).await;
        for _ in 0..20 {
            a.observe_store(Duration::from_secs(5));
        }
        a.fold_store_period();
        assert_eq!(a.shedding(), None);
    }
}
