//! Giving the memory of closed connections back to the system.
//!
//! glibc's allocator keeps what it freed in its arenas for reuse: after a
//! wave of connections closes, a server's RSS stays near its peak although
//! nothing is open (host/benches/README.md, "Soak"). Once the number of open
//! connections has fallen well below its peak (recorded as connections open,
//! so a wave shorter than a check still counts), one `malloc_trim` returns
//! the free pages. It runs off the async threads, at most once per
//! [`CHECK_EVERY`], so a server with steady churn pays nothing per
//! connection. [`configure_allocator`] keeps large tables out of the heap
//! arenas, where they would fragment them.

use std::time::Duration;

/// How often the open-connection count is looked at.
pub const CHECK_EVERY: Duration = Duration::from_secs(1);

/// Trim once the open connections have fallen by at least this many since
/// their peak: below that, what could be returned is too little to matter.
const MIN_DROP: usize = 64;

/// When a trim is due: the open connections' peak since the last trim, and
/// the decision from each new count. Plain data, so it is tested without a
/// clock or an allocator.
#[derive(Debug, Default)]
pub struct TrimPolicy {
    peak: usize,
}

impl TrimPolicy {
    /// Note the number of connections open now and the most open at once
    /// since the last call; `true` if a trim is due: the count fell by a
    /// quarter of its peak and by at least [`MIN_DROP`]. The peak then
    /// restarts from `open`.
    pub fn observe(&mut self, open: usize, peak_since: usize) -> bool {
        self.peak = self.peak.max(peak_since).max(open);
        let dropped = self.peak - open;
        if dropped >= MIN_DROP && dropped * 4 >= self.peak {
            self.peak = open;
            true
        } else {
            false
        }
    }
}

/// Every [`CHECK_EVERY`], ask `open` for the number of connections open
/// now and the most open at once since it was last asked, and trim the
/// allocator when [`TrimPolicy`] says so, until `open` says `None` (the
/// server is gone) or the runtime stops.
pub fn spawn(open: impl Fn() -> Option<(usize, usize)> + Send + 'static) {
    tokio::spawn(async move {
        let mut policy = TrimPolicy::default();
        let mut ticks = tokio::time::interval(CHECK_EVERY);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            let Some((open, peak_since)) = open() else {
                return;
            };
            if policy.observe(open, peak_since) {
                // Walking the arenas takes milliseconds on a large heap.
                let _ = tokio::task::spawn_blocking(trim_allocator).await;
            }
        }
    });
}

/// Large blocks (glibc's initial mmap threshold, 128 KiB) are mapped on
/// their own, not carved from the heap.
const MMAP_THRESHOLD: i32 = 128 << 10;

/// Set the allocator up for waves of connections: call once, at start,
/// before other threads allocate.
///
/// glibc raises its mmap threshold each time a mapped block is freed, so
/// after a first wave the tables that grew with it (10,000 entries and
/// more: ours, tokio's, the instance pool's) are allocated inside the
/// heap arenas instead, where whatever small allocation lands next to
/// them pins their pages after they are freed. Over 49 waves of 10,000
/// connections that left RSS creeping from 19.0 to 24.8 MiB; with the
/// threshold fixed at its initial value such blocks are mapped and
/// unmapped whole, and the creep fell to 9.6-11 % of the start
/// (host/benches/README.md, "Soak"). Blocks that size are rare on the
/// message path (a message of 128 KiB or more), where a mapping costs
/// little next to the copy.
pub fn configure_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: `mallopt` has no preconditions; M_MMAP_THRESHOLD with a
        // value within glibc's bounds (at most 32 MiB on 64-bit) only
        // changes where later large blocks come from. It refuses only
        // values above that bound, so its result carries nothing (and no
        // log is set up this early to say it).
        let _ = unsafe { libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD) };
    }
}

/// Return the allocator's free pages to the system.
fn trim_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: `malloc_trim` has no preconditions: it takes each arena's
        // lock itself, so it may run while other threads allocate, and it
        // only releases pages that hold no live allocation.
        let released = unsafe { libc::malloc_trim(0) };
        tracing::debug!(released = released != 0, "trimmed the allocator");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wave_closing_triggers_one_trim() {
        let mut policy = TrimPolicy::default();
        assert!(!policy.observe(0, 0));
        assert!(!policy.observe(1000, 1000));
        // Closing a few is not worth a trim...
        assert!(!policy.observe(990, 0));
        // ...a quarter of the peak is.
        assert!(policy.observe(700, 0));
        // The peak restarts from there: no second trim for the same drop.
        assert!(!policy.observe(700, 0));
        assert!(!policy.observe(650, 0));
        assert!(policy.observe(0, 0));
        assert!(!policy.observe(0, 0));
    }

    #[test]
    fn small_servers_are_not_trimmed_for_a_handful_of_closes() {
        let mut policy = TrimPolicy::default();
        assert!(!policy.observe(40, 40));
        assert!(!policy.observe(0, 0));
        assert!(!policy.observe(100, 100));
        assert!(policy.observe(36, 0));
    }

    #[test]
    fn a_wave_opened_and_closed_between_two_checks_is_trimmed() {
        let mut policy = TrimPolicy::default();
        assert!(!policy.observe(0, 0));
        // 1,000 opened and closed within one interval: only the recorded
        // peak saw them.
        assert!(policy.observe(0, 1000));
        assert!(!policy.observe(0, 0));
    }
}
