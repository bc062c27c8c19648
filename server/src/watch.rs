//! Single-core wake-up primitives: an LSN watch and an event. `local_*` by nature: they use
//! `Cell`/`RefCell` and are `!Send`, so they never leave their core.

use std::cell::{Cell, RefCell};
use std::future::poll_fn;
use std::task::{Poll, Waker};
use wal::Lsn;

/// A monotonically increasing LSN that tasks can wait on, or a failure they learn of.
#[derive(Default)]
pub(crate) struct LsnWatch {
    value: Cell<Lsn>,
    failure: RefCell<Option<String>>,
    wakers: RefCell<Vec<Waker>>,
}

impl LsnWatch {
    pub(crate) fn new(value: Lsn) -> Self {
        Self { value: Cell::new(value), ..Self::default() }
    }

    pub(crate) fn get(&self) -> Lsn {
        self.value.get()
    }

    pub(crate) fn failure(&self) -> Option<String> {
        self.failure.borrow().clone()
    }

    /// Publishes a new value and wakes every waiter.
    pub(crate) fn advance(&self, lsn: Lsn) {
        assert!(lsn >= self.value.get(), "LsnWatch went backwards");
        self.value.set(lsn);
        self.wake_all();
    }

    /// Marks the watch failed: every current and future waiter gets `Err(why)`.
    pub(crate) fn fail(&self, why: String) {
        *self.failure.borrow_mut() = Some(why);
        self.wake_all();
    }

    /// Wakes every waiter so it re-checks its condition.
    pub(crate) fn wake_all(&self) {
        for waker in self.wakers.borrow_mut().drain(..) {
            waker.wake();
        }
    }

    /// Waits until `check` answers (it is asked on every advance, failure or `wake_all`).
    pub(crate) async fn wait_with<T>(&self, mut check: impl FnMut() -> Option<T>) -> T {
        poll_fn(|cx| {
            if let Some(answer) = check() {
                return Poll::Ready(answer);
            }
            let mut wakers = self.wakers.borrow_mut();
            if !wakers.iter().any(|w| w.will_wake(cx.waker())) {
                wakers.push(cx.waker().clone());
            }
            Poll::Pending
        })
        .await
    }

    /// Waits until the value reaches `target`. The number of parked wakers is bounded by the
    /// number of distinct waiting tasks (one request per connection at a time).
    pub(crate) async fn wait_for(&self, target: Lsn) -> Result<Lsn, String> {
        self.wait_with(|| {
            if let Some(why) = self.failure.borrow().as_ref() {
                return Some(Err(why.clone()));
            }
            let value = self.value.get();
            (value >= target).then_some(Ok(value))
        })
        .await
    }
}

/// A level-triggered event for one waiting task (the WAL flusher).
#[derive(Default)]
pub(crate) struct Event {
    set: Cell<bool>,
    waker: RefCell<Option<Waker>>,
}

impl Event {
    pub(crate) fn notify(&self) {
        self.set.set(true);
        if let Some(waker) = self.waker.borrow_mut().take() {
            waker.wake();
        }
    }

    pub(crate) async fn wait(&self) {
        poll_fn(|cx| {
            if self.set.replace(false) {
                return Poll::Ready(());
            }
            *self.waker.borrow_mut() = Some(cx.waker().clone());
            Poll::Pending
        })
        .await
    }
}
