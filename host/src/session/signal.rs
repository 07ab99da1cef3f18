//! A wake-up for one waiting party: the reader, the writer or the guest of
//! one connection.
//!
//! Each has exactly one waiter (one future polled by the connection's task),
//! so a flag and a single waker do what [`tokio::sync::Notify`] does with a
//! locked list of waiters, for a fraction of its cost on every message (host/benches/README.md,
//! "Issue #13, fourth pass").

use std::future::poll_fn;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::Poll;

use futures_util::task::AtomicWaker;

/// A permit and the waker of the one party that waits for it, like
/// [`tokio::sync::Notify::notify_one`]: a notification with nobody waiting
/// is kept, and the next wait takes it at once. Waiting is checked
/// against state read after the permit was taken, so a stale permit only
/// costs the waiter one more look.
#[derive(Debug, Default)]
pub struct Signal {
    pending: AtomicBool,
    waker: AtomicWaker,
}

impl Signal {
    /// Wake the waiter, or leave it a permit if it is not waiting. From any
    /// thread.
    pub fn notify(&self) {
        self.pending.store(true, Ordering::Release);
        self.waker.wake();
    }

    /// Resolves once a permit is there, and takes it. One waiter at a time:
    /// a second one polled concurrently replaces the first one's waker.
    pub async fn notified(&self) {
        poll_fn(|cx| {
            if self.pending.swap(false, Ordering::AcqRel) {
                return Poll::Ready(());
            }
            self.waker.register(cx.waker());
            // A notify between the swap and the register woke no one.
            if self.pending.swap(false, Ordering::AcqRel) {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn a_notification_before_the_wait_is_kept_once() {
        let signal = Signal::default();
        signal.notify();
        signal.notify();
        // The permit resolves the first wait at once...
        tokio::time::timeout(Duration::from_secs(5), signal.notified())
            .await
            .expect("the kept permit resolves the wait");
        // ... and is gone after it: two notifications make one permit.
        let second = tokio::time::timeout(Duration::from_millis(20), signal.notified()).await;
        assert!(second.is_err(), "a second wait must block");
    }

    #[tokio::test]
    async fn a_notification_from_another_thread_wakes_the_waiter() {
        let signal = Arc::new(Signal::default());
        let notifier = {
            let signal = signal.clone();
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(20));
                signal.notify();
            })
        };
        tokio::time::timeout(Duration::from_secs(5), signal.notified())
            .await
            .expect("the other thread's notify wakes the waiter");
        notifier.join().expect("the notifier thread ran");
    }

    #[tokio::test]
    async fn a_dropped_wait_leaves_the_next_one_able_to_wake() {
        let signal = Arc::new(Signal::default());
        // A wait that is polled (and registers its waker) then dropped, as
        // in a `select!` won by another branch.
        let first = tokio::time::timeout(Duration::from_millis(10), signal.notified()).await;
        assert!(first.is_err());
        let waiter = {
            let signal = signal.clone();
            tokio::spawn(async move { signal.notified().await })
        };
        tokio::time::sleep(Duration::from_millis(10)).await;
        signal.notify();
        tokio::time::timeout(Duration::from_secs(5), waiter)
            .await
            .expect("the new waiter was woken")
            .expect("the waiter task ran");
    }
}
