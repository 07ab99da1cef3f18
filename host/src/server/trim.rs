//! Giving the memory of closed connections back to the system.
//!
//! glibc's allocator keeps what it freed in its arenas for reuse: after a
//! wave of connections closes, a server's RSS stays near its peak although
//! nothing is open (host/benches/README.md, "Soak"). Once the number of open
//! connections has fallen well below its peak (recorded as connections open,
//! so a wave shorter than a check still counts), one `malloc_trim` returns
//! the free pages. It runs off the async threads, at most once per
//! [`CHECK_EVERY`], so a server with steady churn pays nothing per
//! connection. [`configure_allocator`] sets glibc up so that what a wave
//! freed can be returned: large tables out of the heap arenas, per-thread
//! caches of one freed block per size class, and no unmerged small blocks.

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

/// How much free memory a heap arena's top may hold before a `free` gives
/// it back to the system on its own (glibc's default: 128 KiB). A block
/// under [`MMAP_THRESHOLD`] freed and taken again (a large message's
/// buffers) must not cross it on every message.
const TRIM_THRESHOLD: i32 = 1 << 20;

/// The glibc tunable that sizes each thread's cache of freed small blocks.
const TCACHE_TUNABLE: &str = "glibc.malloc.tcache_count";

/// Freed blocks each thread caches per size class (glibc's default: 7).
const TCACHE_COUNT: u32 = 1;

/// Set the allocator up for waves of connections: call once, first thing
/// in `main`, while the process has one thread. It may replace the process
/// image (same pid, arguments and environment, plus one tunable) and so
/// never return the first time.
///
/// Three glibc behaviours each keep memory of closed connections resident
/// after [`spawn`]'s `malloc_trim` (host/benches/README.md, "Soak"):
/// - glibc raises its mmap threshold each time a mapped block is freed, so
///   after a first wave the tables that grew with it (10,000 entries and
///   more: ours, tokio's, the instance pool's) come from the heap arenas,
///   where whatever small block lands next to them pins their pages. The
///   threshold is fixed at its initial value.
/// - Each thread caches up to 7 freed blocks per size class (the tcache);
///   `malloc_trim` cannot reach them, and every cached block pins its page,
///   at other addresses after every wave: RSS crept by about 9 % over 20
///   waves of 10,000. One block per class keeps the cache's fast path for
///   a block freed and taken again (the steady path of a message) and let
///   RSS creep by 2 % (none cost 8 % more CPU per message at 16 in
///   flight). No call sets the cache's size: only the `GLIBC_TUNABLES`
///   environment variable, read when the process starts, does. So the host
///   starts itself again with `glibc.malloc.tcache_count=1`, unless the
///   variable already sets the cache (`=7` restores glibc's default).
/// - Freed blocks of up to 128 bytes wait unmerged in "fastbins"; when
///   `malloc_trim` merges them into a thread arena's free top, nothing
///   returns that top to the system (only a large `free` does): a whole
///   wave's worth stayed resident in 2 of 20 waves. Fastbins are turned
///   off, so blocks merge as they are freed.
///
/// With all three, 20 waves of 10,000 left RSS within 2 % of its start,
/// for no change in CPU per message or per connection beyond the benches'
/// noise.
///
/// And one that gave memory back too eagerly: a `free` that leaves a heap
/// arena's free top at glibc's trim threshold (128 KiB by default) returns
/// that top to the system (`madvise`). A 64 KiB echo frees two such blocks
/// (the received payload, and the reply's copy out of the guest's memory),
/// so the next message faulted the same pages back in: 0.77 page faults
/// per 64 KiB echo (`rows`' `64k` row; 0.49 at 256 KiB), each `madvise`
/// also interrupting the other cores to flush their TLBs. At
/// `TRIM_THRESHOLD` (1 MiB), none, and 10-16 % less CPU per such echo. A
/// thread arena then keeps up to 1 MiB of free top between frees
/// (`malloc_trim` returns only the main arena's top): the soak's RSS after
/// each wave stays within 5-6 % of its start.
pub fn configure_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: `getauxval` only reads the auxiliary vector the kernel
        // gave the process. A set-user-id start (AT_SECURE) has glibc drop
        // GLIBC_TUNABLES, so a restart would never see it set: none then.
        let secure = unsafe { libc::getauxval(libc::AT_SECURE) } != 0;
        let current = std::env::var_os("GLIBC_TUNABLES");
        if let Some(tunables) = tunables_with_small_tcache(current.as_deref())
            && !secure
        {
            restart_with(&tunables);
        }
        // SAFETY: `mallopt` has no preconditions; each value is within
        // glibc's bounds (M_MMAP_THRESHOLD at most 32 MiB on 64-bit,
        // M_MXFAST at most 160 bytes, M_TRIM_THRESHOLD unbounded) and only
        // changes where later blocks come from, how frees are merged and
        // when a free gives memory back. It refuses only values out of
        // bounds, so its result carries nothing (and no log is set up this
        // early to say it).
        unsafe {
            let _ = libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD);
            let _ = libc::mallopt(libc::M_TRIM_THRESHOLD, TRIM_THRESHOLD);
            let _ = libc::mallopt(libc::M_MXFAST, 0);
        }
    }
}

/// `GLIBC_TUNABLES` with the thread cache cut to one block per size class,
/// or `None` if `current` already sizes the cache (whoever set it knows
/// better).
#[cfg_attr(
    not(all(target_os = "linux", target_env = "gnu")),
    expect(dead_code, reason = "only glibc reads GLIBC_TUNABLES")
)]
fn tunables_with_small_tcache(current: Option<&std::ffi::OsStr>) -> Option<std::ffi::OsString> {
    let setting = format!("{TCACHE_TUNABLE}=");
    let small = format!("{setting}{TCACHE_COUNT}");
    let Some(current) = current.filter(|current| !current.is_empty()) else {
        return Some(small.into());
    };
    let sets_tcache = current
        .as_encoded_bytes()
        .split(|&b| b == b':')
        .any(|item| item.starts_with(setting.as_bytes()));
    if sets_tcache {
        return None;
    }
    let mut tunables = current.to_owned();
    tunables.push(":");
    tunables.push(small);
    Some(tunables)
}

/// Replace this process with a fresh start of the same executable, with
/// the same arguments and `GLIBC_TUNABLES` set to `tunables`. Returns only
/// if that cannot be done (no `/proc`, a seccomp filter): the host then
/// runs as it is, with glibc's cache.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn restart_with(tunables: &std::ffi::OsStr) {
    use std::os::unix::process::CommandExt as _;
    let mut args = std::env::args_os();
    let Some(arg0) = args.next() else { return };
    // `/proc/self/exe` is this very executable, even if its path has
    // since been replaced (an upgrade in place).
    let _error = std::process::Command::new("/proc/self/exe")
        .arg0(arg0)
        .args(args)
        .env("GLIBC_TUNABLES", tunables)
        .exec();
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
    use std::ffi::OsStr;

    #[test]
    fn the_thread_cache_is_cut_once_and_only_if_nobody_sized_it() {
        let cut = |current: Option<&str>| {
            tunables_with_small_tcache(current.map(OsStr::new))
                .map(|t| t.into_string().expect("ASCII"))
        };
        assert_eq!(cut(None).as_deref(), Some("glibc.malloc.tcache_count=1"));
        assert_eq!(
            cut(Some("")).as_deref(),
            Some("glibc.malloc.tcache_count=1")
        );
        assert_eq!(
            cut(Some("glibc.malloc.arena_max=2")).as_deref(),
            Some("glibc.malloc.arena_max=2:glibc.malloc.tcache_count=1")
        );
        // Set already (by us before the restart, or by the user): no restart.
        assert_eq!(cut(Some("glibc.malloc.tcache_count=1")), None);
        assert_eq!(
            cut(Some("glibc.malloc.arena_max=2:glibc.malloc.tcache_count=7")),
            None
        );
        // A different tunable that shares the prefix does not count.
        assert_eq!(
            cut(Some("glibc.malloc.tcache_count_x=1")).as_deref(),
            Some("glibc.malloc.tcache_count_x=1:glibc.malloc.tcache_count=1")
        );
    }

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
