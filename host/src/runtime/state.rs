//! Per-connection store data, and the guest's CPU clock.
//!
//! The CPU budget is "how long a guest may run between two calls into the
//! host". Every import reaches the host's state through one of two
//! accessors, [`GuestState::conn`] (the wsbox world) and
//! [`WasiView::ctx`] (WASI); both mark the current host call as an import.
//! The store's call hook then does the bookkeeping for every host call in
//! one place ([`CpuClock`]): an import restarts the budget; any other host
//! call (the epoch check, which may yield to other connections,
//! `memory.grow`, `memory.copy`, ...) only stops the clock while it runs,
//! so a guest is charged neither for its neighbours' time nor for the
//! host's, and cannot reset its budget by looping over a libcall.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use wasmtime::CallHook;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use super::limits::GuestLimiter;
use crate::session::ConnectionHandle;

/// A guest's run time since its last import, in epoch ticks of wall time
/// during which guest code (not the host) ran.
#[derive(Clone, Debug)]
pub struct CpuClock {
    /// When the current budget started, shifted forward by the time spent
    /// in host calls that were not imports.
    since: u64,
    /// When the current host call began.
    host_entered: u64,
    /// Whether the current host call is an import.
    import: bool,
    /// Host calls in progress: more than one while the host calls into the
    /// guest (`cabi_realloc` lowering a result) and that calls the host
    /// again (`memory.grow`); only the outermost counts.
    depth: u32,
}

impl CpuClock {
    /// A clock whose budget starts at `now`.
    pub fn new(now: u64) -> Self {
        Self {
            since: now,
            host_entered: now,
            import: false,
            depth: 0,
        }
    }

    /// Restart the budget at `now` (the guest's first call).
    pub fn restart(&mut self, now: u64) {
        self.since = now;
    }

    /// The store's call hook: a host call begins or ends at `now`.
    pub fn on_hook(&mut self, hook: CallHook, now: u64) {
        match hook {
            CallHook::CallingHost => {
                self.depth = self.depth.saturating_add(1);
                if self.depth == 1 {
                    self.host_entered = now;
                    self.import = false;
                }
            }
            CallHook::ReturningFromHost => {
                self.depth = self.depth.saturating_sub(1);
                if self.depth > 0 {
                    return;
                }
                if self.import {
                    self.since = now;
                } else {
                    self.since = self
                        .since
                        .saturating_add(now.saturating_sub(self.host_entered));
                }
            }
            // Host-to-guest calls (`handle` itself, `cabi_realloc` while a
            // result is lowered) are inside budgets, not boundaries.
            CallHook::CallingWasm | CallHook::ReturningFromWasm => {}
        }
    }

    /// Mark the current host call as an import.
    pub fn note_import(&mut self) {
        self.import = true;
    }

    /// Guest run time in the current budget, measured from inside a host
    /// call (the epoch check): up to when that call began.
    pub fn used(&self) -> u64 {
        self.host_entered.saturating_sub(self.since)
    }
}

/// Per-connection store data: the guest's whole view of the host.
pub struct GuestState {
    wasi: WasiCtx,
    table: ResourceTable,
    limits: GuestLimiter,
    conn: ConnectionHandle,
    /// The guest's version (short content hash), for its log lines.
    version: Arc<str>,
    clock: CpuClock,
    ticks: Arc<AtomicU64>,
}

impl GuestState {
    /// The state of a new instance for `conn`.
    pub fn new(
        wasi: WasiCtx,
        limits: GuestLimiter,
        conn: ConnectionHandle,
        version: Arc<str>,
        ticks: Arc<AtomicU64>,
    ) -> Self {
        let now = ticks.load(Ordering::Relaxed);
        Self {
            wasi,
            table: ResourceTable::new(),
            limits,
            conn,
            version,
            clock: CpuClock::new(now),
            ticks,
        }
    }

    /// The connection, for a wsbox import (which this marks as one).
    pub fn conn(&mut self) -> &ConnectionHandle {
        self.clock.note_import();
        &self.conn
    }

    /// The guest's resources, for a wsbox import (which this marks as one).
    pub fn table(&mut self) -> &mut ResourceTable {
        self.clock.note_import();
        &mut self.table
    }

    /// The guest's version, for its log lines.
    pub fn version(&self) -> &Arc<str> {
        &self.version
    }

    /// The memory limiter.
    pub fn limits(&mut self) -> &mut GuestLimiter {
        &mut self.limits
    }

    /// The first limit the guest ran into, if any.
    pub fn limit_exceeded(&self) -> Option<&str> {
        self.limits.exceeded()
    }

    /// The current epoch tick.
    fn now(&self) -> u64 {
        self.ticks.load(Ordering::Relaxed)
    }

    /// The store's call hook (installed for every store).
    pub fn on_call_hook(&mut self, hook: CallHook) {
        let now = self.now();
        self.clock.on_hook(hook, now);
    }

    /// The guest is about to be called for the first time.
    pub fn start_budget(&mut self) {
        let now = self.now();
        self.clock.restart(now);
    }

    /// Guest run time since its last import, in ticks (from the epoch
    /// check).
    pub fn ticks_used(&self) -> u64 {
        self.clock.used()
    }
}

impl WasiView for GuestState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        // Every WASI import goes through here.
        self.clock.note_import();
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Run `hooks` (hook, tick) through a clock started at tick 0.
    fn clock_after(steps: &[(CallHook, u64, bool)]) -> CpuClock {
        let mut clock = CpuClock::new(0);
        for &(hook, now, import) in steps {
            clock.on_hook(hook, now);
            if import {
                clock.note_import();
            }
        }
        clock
    }

    #[test]
    fn an_import_restarts_the_budget() {
        let clock = clock_after(&[
            (CallHook::CallingHost, 7, true),
            (CallHook::ReturningFromHost, 50, false),
            (CallHook::CallingHost, 53, false),
        ]);
        assert_eq!(clock.used(), 3, "counted from the import's return");
    }

    #[test]
    fn other_host_calls_only_stop_the_clock() {
        // Guest runs 0..5, an epoch check yields to neighbours 5..20, the
        // guest runs 20..22, a memory.copy libcall 22..22, then runs to 30.
        let clock = clock_after(&[
            (CallHook::CallingHost, 5, false),
            (CallHook::ReturningFromHost, 20, false),
            (CallHook::CallingHost, 22, false),
            (CallHook::ReturningFromHost, 22, false),
            (CallHook::CallingHost, 30, false),
        ]);
        assert_eq!(clock.used(), 5 + 2 + 8);
    }

    #[test]
    fn lowering_into_the_guest_inside_an_import_is_no_boundary() {
        // `receive` waits 10..40, then lowers its result through the
        // guest's `cabi_realloc`, which grows memory (a nested libcall).
        let clock = clock_after(&[
            (CallHook::CallingHost, 10, true),
            (CallHook::CallingWasm, 40, false),
            (CallHook::CallingHost, 40, false),
            (CallHook::ReturningFromHost, 41, false),
            (CallHook::ReturningFromWasm, 41, false),
            (CallHook::ReturningFromHost, 42, false),
            (CallHook::CallingHost, 44, false),
        ]);
        assert_eq!(clock.used(), 2, "the wait is not the guest's time");
    }
}
