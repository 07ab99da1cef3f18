//! Per-connection store data, and the guest's CPU clock.
//!
//! The CPU budget is "how long a guest may run between two calls into the
//! host". Every import reaches the host's state through one of two
//! accessors, [`GuestState::conn`] (the wsbox world) and
//! [`WasiView::ctx`] (WASI); both mark that an import happened. The epoch
//! callback does the rest ([`CpuClock`]): it runs once per tick of the
//! guest's own run time (the deadline is set one tick past the moment the
//! guest resumes after yielding to its neighbours, so their time is not the
//! guest's; a deadline that passed while the guest waited costs it one
//! callback that finds the import), and counts those ticks since the last
//! import. The runtime's
//! work the guest asks for without an import (`memory.grow`, `memory.copy`)
//! is the guest's time and never restarts the budget. No per-call hook: a
//! host call costs the clock one flag write.

use std::sync::Arc;

use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use super::limits::GuestLimiter;
use crate::session::ConnectionHandle;

/// A guest's run time since its last import, in epoch ticks.
#[derive(Clone, Debug, Default)]
pub struct CpuClock {
    /// Ticks run in the current budget.
    ran: u64,
    /// Whether an import happened since the last tick.
    import: bool,
}

impl CpuClock {
    /// Restart the budget (the guest's first call).
    pub fn restart(&mut self) {
        *self = Self::default();
    }

    /// Mark that the guest called an import.
    pub fn note_import(&mut self) {
        self.import = true;
    }

    /// An epoch tick passed while the guest ran: the ticks it has run since
    /// its last import, this one included. A tick with an import in it
    /// starts a new budget, the part after the import counted as one tick
    /// (at most that; at this clock's resolution, that is the safe side).
    pub fn tick(&mut self) -> u64 {
        if std::mem::take(&mut self.import) {
            self.ran = 1;
        } else {
            self.ran = self.ran.saturating_add(1);
        }
        self.ran
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
}

impl GuestState {
    /// The state of a new instance for `conn`.
    pub fn new(
        wasi: WasiCtx,
        limits: GuestLimiter,
        conn: ConnectionHandle,
        version: Arc<str>,
    ) -> Self {
        Self {
            wasi,
            table: ResourceTable::new(),
            limits,
            conn,
            version,
            clock: CpuClock::default(),
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

    /// The guest is about to be called for the first time.
    pub fn start_budget(&mut self) {
        self.clock.restart();
    }

    /// The epoch callback: a tick of the guest's run time passed. Returns
    /// the ticks it has run since its last import.
    pub fn cpu_tick(&mut self) -> u64 {
        self.clock.tick()
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

    #[test]
    fn ticks_count_from_the_last_import() {
        let mut clock = CpuClock::default();
        assert_eq!([clock.tick(), clock.tick(), clock.tick()], [1, 2, 3]);
        clock.note_import();
        assert_eq!(clock.tick(), 1, "the tick the import was in");
        assert_eq!(clock.tick(), 2);
    }

    #[test]
    fn several_imports_in_a_tick_are_one_restart() {
        let mut clock = CpuClock::default();
        clock.tick();
        clock.tick();
        clock.note_import();
        clock.note_import();
        assert_eq!(clock.tick(), 1);
        assert_eq!(clock.tick(), 2, "the flag was taken by the tick before");
    }

    #[test]
    fn a_restart_forgets_the_ticks_and_any_import() {
        let mut clock = CpuClock::default();
        clock.tick();
        clock.note_import();
        clock.restart();
        assert_eq!(clock.tick(), 1);
        assert_eq!(clock.tick(), 2);
    }
}
