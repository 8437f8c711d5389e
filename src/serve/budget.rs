//! The in-flight budget: how many bytes of request bodies and replies the
//! process holds at once, over both ports.
//!
//! A request reserves its body's bytes as they arrive (all of a declared
//! `Content-Length` at once), and a reply its bytes as they are produced;
//! everything a request reserved is released when its exchange ends: its
//! reply sent, cut, or the request dropped. A request that would go beyond
//! the budget is refused; a reply is never refused, because by then the
//! call has run (a committed write must be answered), so replies may push
//! the total over the budget, and new requests are then refused until they
//! are sent.
//!
//! A streaming reply (one that stays open for hours, sending a message now
//! and then) cannot hold its bytes until it ends: it would take the whole
//! budget in time. Its request's bytes are released when the reply begins
//! (the request has been read by then), and each of its reply's bytes is
//! held only until it is handed on, so that it holds what it buffers at
//! once and no more.
//!
//! The last eighth of the budget is kept for small requests (at most
//! [`SMALL_REQUEST`] bytes): large bodies, sent slowly, could otherwise take
//! all of it and refuse every ordinary call until they time out.

use std::sync::{
    Arc,
    atomic::{AtomicUsize, Ordering},
};

use prometheus_client::metrics::gauge::Gauge;

/// Requests whose bodies stay at or under this many bytes may use the whole
/// budget; larger ones only seven eighths of it.
pub const SMALL_REQUEST: usize = 64 * 1024;

/// The process-wide budget of in-flight bytes. Cheap to clone (shared).
#[derive(Debug, Clone)]
pub struct Budget {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    limit: usize,
    used: AtomicUsize,
    /// Shows `used` in the metrics.
    gauge: Option<Gauge>,
}

impl Budget {
    /// A budget of `limit` bytes, none of it used.
    pub fn new(limit: usize) -> Self {
        Self::build(limit, None)
    }

    /// A budget of `limit` bytes whose use `gauge` shows.
    pub fn with_gauge(limit: usize, gauge: Gauge) -> Self {
        Self::build(limit, Some(gauge))
    }

    fn build(limit: usize, gauge: Option<Gauge>) -> Self {
        Self {
            inner: Arc::new(Inner {
                limit,
                used: AtomicUsize::new(0),
                gauge,
            }),
        }
    }

    /// Updates the gauge after a change. It reads the count again rather
    /// than taking the value its change produced, so that two racing
    /// changes cannot leave the gauge at the older one's value.
    fn show(&self) {
        if let Some(gauge) = &self.inner.gauge {
            gauge.set(i64::try_from(self.used()).unwrap_or(i64::MAX));
        }
    }

    /// The bytes reserved now.
    pub fn used(&self) -> usize {
        self.inner.used.load(Ordering::Acquire)
    }

    /// A charge for one exchange, with nothing reserved yet.
    pub fn charge(&self) -> Charge {
        Charge {
            budget: self.clone(),
            request: 0,
            request_held: 0,
            reply_held: 0,
        }
    }

    /// Reserves `bytes` more of a request body that will then hold
    /// `request_total` bytes, if the budget allows it.
    fn try_reserve(&self, bytes: usize, request_total: usize) -> bool {
        let limit = self.inner.limit;
        let ceiling = if request_total <= SMALL_REQUEST {
            limit
        } else {
            limit - limit / 8
        };
        match self
            .inner
            .used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                used.checked_add(bytes).filter(|after| *after <= ceiling)
            }) {
            Ok(_) => {
                self.show();
                true
            }
            Err(_) => false,
        }
    }

    fn force_reserve(&self, bytes: usize) {
        self.inner.used.fetch_add(bytes, Ordering::AcqRel);
        self.show();
    }

    fn release(&self, bytes: usize) {
        if bytes > 0 {
            self.inner.used.fetch_sub(bytes, Ordering::AcqRel);
            self.show();
        }
    }
}

/// What one exchange (a request and its reply) has reserved; released
/// when the charge is dropped.
#[derive(Debug)]
pub struct Charge {
    budget: Budget,
    /// Bytes of the request body reserved: what tells a small request from
    /// a large one.
    request: usize,
    /// Bytes of the request body still held.
    request_held: usize,
    /// Bytes of the reply held.
    reply_held: usize,
}

impl Charge {
    /// Reserves `bytes` more of the request body; `false` (nothing
    /// reserved) when the budget does not allow it.
    pub fn try_request(&mut self, bytes: usize) -> bool {
        let request_total = self.request.saturating_add(bytes);
        if bytes == 0 {
            return true;
        }
        if !self.budget.try_reserve(bytes, request_total) {
            return false;
        }
        self.request = request_total;
        self.request_held += bytes;
        true
    }

    /// Reserves `bytes` of the reply, whatever the budget holds.
    pub fn reply(&mut self, bytes: usize) {
        self.budget.force_reserve(bytes);
        self.reply_held += bytes;
    }

    /// Releases `bytes` of the reply reserved so far (at most all of it):
    /// a streaming reply's bytes once handed on.
    pub fn release_reply(&mut self, bytes: usize) {
        let bytes = bytes.min(self.reply_held);
        self.reply_held -= bytes;
        self.budget.release(bytes);
    }

    /// Releases the request body's bytes held so far, once the request has
    /// been read; bytes it reserves later are held again. A large request
    /// stays large for the ceiling.
    pub fn release_request(&mut self) {
        self.budget.release(std::mem::take(&mut self.request_held));
    }

    /// Releases everything reserved so far.
    pub fn release_all(&mut self) {
        let held = std::mem::take(&mut self.request_held) + std::mem::take(&mut self.reply_held);
        self.budget.release(held);
        self.request = 0;
    }
}

impl Drop for Charge {
    fn drop(&mut self) {
        self.release_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_refused_beyond_the_budget_and_released_when_dropped() {
        let budget = Budget::new(8 * SMALL_REQUEST);
        let mut first = budget.charge();
        assert!(first.try_request(SMALL_REQUEST));
        assert!(first.try_request(5 * SMALL_REQUEST));
        // Large bodies stop at seven eighths of the budget.
        assert!(!first.try_request(2 * SMALL_REQUEST));
        assert_eq!(budget.used(), 6 * SMALL_REQUEST);
        // A small request still fits in the eighth kept for small ones.
        let mut small = budget.charge();
        assert!(small.try_request(SMALL_REQUEST));
        assert!(small.try_request(0));
        assert_eq!(budget.used(), 7 * SMALL_REQUEST);
        drop(first);
        assert_eq!(budget.used(), SMALL_REQUEST);
        drop(small);
        assert_eq!(budget.used(), 0);
    }

    #[test]
    fn replies_are_never_refused_but_refuse_the_next_requests() {
        let budget = Budget::new(8 * SMALL_REQUEST);
        let mut call = budget.charge();
        assert!(call.try_request(100));
        call.reply(10 * SMALL_REQUEST);
        assert!(budget.used() > 8 * SMALL_REQUEST);
        let mut next = budget.charge();
        assert!(!next.try_request(1));
        call.release_all();
        assert_eq!(budget.used(), 0);
        assert!(next.try_request(1));
        drop(call);
        drop(next);
        assert_eq!(budget.used(), 0);
    }

    #[test]
    fn parts_of_a_charge_are_released_on_their_own() {
        let budget = Budget::new(8 * SMALL_REQUEST);
        let mut stream = budget.charge();
        assert!(stream.try_request(2 * SMALL_REQUEST));
        stream.reply(300);
        assert_eq!(budget.used(), 2 * SMALL_REQUEST + 300);
        stream.release_request();
        assert_eq!(budget.used(), 300);
        stream.release_reply(100);
        assert_eq!(budget.used(), 200);
        // Never more than the reply holds: the request's bytes are not
        // the reply's to release.
        assert!(stream.try_request(50));
        stream.release_reply(1000);
        assert_eq!(budget.used(), 50);
        // The request was large, and stays so after its bytes were
        // released: it still only reaches seven eighths of the budget.
        assert!(!stream.try_request(7 * SMALL_REQUEST));
        assert!(stream.try_request(6 * SMALL_REQUEST));
        drop(stream);
        assert_eq!(budget.used(), 0);
    }
}
