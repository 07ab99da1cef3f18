//! Polls a connection's parts (its guest, its reader and its writer) on
//! the connection's task, each part with a waker of its own, so a wake-up
//! polls only the part it was for (see the `driver` module's docs).
//!
//! `futures`' `FuturesUnordered` does this for any number of futures, with
//! a task record per future and a queue of the woken ones; a connection
//! always has exactly three, so a bit per part in one atomic does it for
//! less on every message (host/benches/README.md, "Issue #13, fifth pass").

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::task::{Context, Poll, Wake, Waker};

use futures_util::task::AtomicWaker;

/// How many parts a connection has.
const PARTS: usize = 3;

/// One part: a future that runs until the connection's end.
pub type Part<'a> = Pin<Box<dyn Future<Output = ()> + Send + 'a>>;

/// What the parts' wakers share: which parts were woken since they were
/// last polled, and the waker of the task that polls them.
#[derive(Debug)]
struct Woken {
    /// Bit `i` set: part `i` is due a poll.
    parts: AtomicU8,
    task: AtomicWaker,
}

/// The waker of part `bit`'s future.
#[derive(Debug)]
struct PartWaker {
    bit: u8,
    woken: Arc<Woken>,
}

impl Wake for PartWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.woken.parts.fetch_or(self.bit, Ordering::AcqRel);
        self.woken.task.wake();
    }
}

/// A future that runs all of a connection's parts until each has ended.
pub struct Parts<'a> {
    parts: [Option<Part<'a>>; PARTS],
    wakers: [Waker; PARTS],
    woken: Arc<Woken>,
}

impl<'a> Parts<'a> {
    /// Run `parts` together; every one is polled first when this is.
    pub fn new(parts: [Part<'a>; PARTS]) -> Self {
        let woken = Arc::new(Woken {
            parts: AtomicU8::new((1 << PARTS) - 1),
            task: AtomicWaker::new(),
        });
        let waker = |index: usize| {
            Waker::from(Arc::new(PartWaker {
                bit: 1 << index,
                woken: woken.clone(),
            }))
        };
        Parts {
            parts: parts.map(Some),
            wakers: std::array::from_fn(waker),
            woken,
        }
    }
}

impl Future for Parts<'_> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        // Registered before the bits are taken: a part woken after the
        // take wakes this task again.
        this.woken.task.register(cx.waker());
        let due = this.woken.parts.swap(0, Ordering::AcqRel);
        for (index, slot) in this.parts.iter_mut().enumerate() {
            let Some(part) = slot else { continue };
            if due & (1 << index) == 0 {
                continue;
            }
            let mut part_cx = Context::from_waker(&this.wakers[index]);
            if part.as_mut().poll(&mut part_cx).is_ready() {
                *slot = None;
            }
        }
        if this.parts.iter().all(Option::is_none) {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;

    use super::*;

    /// A part that counts its polls and ends after `ends_after` of them,
    /// waking itself when `wake_self` says so.
    fn counted(polls: Arc<AtomicUsize>, ends_after: usize, wake_self: bool) -> Part<'static> {
        Box::pin(std::future::poll_fn(move |cx| {
            let n = polls.fetch_add(1, Ordering::SeqCst) + 1;
            if n >= ends_after {
                return Poll::Ready(());
            }
            if wake_self {
                cx.waker().wake_by_ref();
            }
            Poll::Pending
        }))
    }

    #[test]
    fn only_woken_parts_are_polled_again_and_all_must_end() {
        let counts: Vec<Arc<AtomicUsize>> = (0..PARTS).map(|_| Arc::default()).collect();
        // Part 0 ends on its first poll; part 1 wakes itself each time and
        // ends on its third; part 2 never wakes itself.
        let mut parts = Parts::new([
            counted(counts[0].clone(), 1, false),
            counted(counts[1].clone(), 3, true),
            counted(counts[2].clone(), usize::MAX, false),
        ]);
        let task = Waker::noop();
        let mut cx = Context::from_waker(task);
        for _ in 0..5 {
            assert!(Pin::new(&mut parts).poll(&mut cx).is_pending());
        }
        let polls: Vec<usize> = counts.iter().map(|c| c.load(Ordering::SeqCst)).collect();
        assert_eq!(polls, [1, 3, 1], "each part polled only when due");
        // Waking the last part lets it run, and it still holds the whole up.
        parts.wakers[2].wake_by_ref();
        assert!(Pin::new(&mut parts).poll(&mut cx).is_pending());
        assert_eq!(counts[2].load(Ordering::SeqCst), 2);
    }

    #[test]
    fn a_part_woken_from_another_thread_wakes_the_task() {
        struct Flag(std::sync::atomic::AtomicBool);
        impl Wake for Flag {
            fn wake(self: Arc<Self>) {
                self.0.store(true, Ordering::SeqCst);
            }
        }
        let flag = Arc::new(Flag(false.into()));
        let task = Waker::from(flag.clone());
        let mut cx = Context::from_waker(&task);
        let ended = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (tx, rx) = std::sync::mpsc::channel::<Waker>();
        let part_ended = ended.clone();
        let waiting: Part<'static> = Box::pin(std::future::poll_fn(move |cx| {
            if part_ended.load(Ordering::SeqCst) {
                Poll::Ready(())
            } else {
                let _ = tx.send(cx.waker().clone());
                Poll::Pending
            }
        }));
        let mut parts = Parts::new([waiting, Box::pin(async {}), Box::pin(async {})]);
        assert!(Pin::new(&mut parts).poll(&mut cx).is_pending());
        let part_waker = rx.recv().expect("the part registered its waker");
        ended.store(true, Ordering::SeqCst);
        std::thread::spawn(move || part_waker.wake())
            .join()
            .expect("the waking thread ran");
        assert!(flag.0.load(Ordering::SeqCst), "the task was woken");
        assert!(Pin::new(&mut parts).poll(&mut cx).is_ready());
    }
}
