//! The per-connection memory limit, as a wasmtime resource limiter that
//! remembers which limit a guest ran into.
//!
//! A guest whose `memory.grow` is refused does not trap by itself: its
//! allocator reports failure, and a Rust guest then aborts with an
//! `unreachable` trap that says nothing about memory. The limiter records
//! the refusal so the runtime can name the limit in the connection's log.

use wasmtime::ResourceLimiter;

/// Most table elements one table may grow to (wasmtime's default limit).
const MAX_TABLE_ELEMENTS: usize = 1 << 20;

/// Limits of one guest store.
pub struct GuestLimiter {
    /// Most bytes of linear memory, all memories of the instance together.
    memory_limit: usize,
    /// Bytes of linear memory granted so far.
    memory_used: usize,
    /// The last growth granted, taken back if the growth then failed.
    last_growth: usize,
    /// The first limit the guest ran into.
    exceeded: Option<String>,
}

impl GuestLimiter {
    /// A limiter allowing `memory_limit` bytes of linear memory in total.
    pub fn new(memory_limit: usize) -> Self {
        Self {
            memory_limit,
            memory_used: 0,
            last_growth: 0,
            exceeded: None,
        }
    }

    /// The first limit the guest ran into, as a sentence for the log.
    pub fn exceeded(&self) -> Option<&str> {
        self.exceeded.as_deref()
    }

    fn note(&mut self, why: String) {
        if self.exceeded.is_none() {
            self.exceeded = Some(why);
        }
    }

    fn memory_exceeded(&mut self) {
        let limit = self.memory_limit;
        self.note(format!("memory limit of {limit} bytes exceeded"));
    }
}

impl ResourceLimiter for GuestLimiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let growth = desired.saturating_sub(current);
        let total = self.memory_used.saturating_add(growth);
        if total > self.memory_limit {
            self.memory_exceeded();
            return Ok(false);
        }
        self.memory_used = total;
        self.last_growth = growth;
        Ok(true)
    }

    fn memory_grow_failed(&mut self, _error: wasmtime::Error) -> wasmtime::Result<()> {
        // Refused past our check: the memory's own maximum or the pool slot.
        self.memory_used = self.memory_used.saturating_sub(self.last_growth);
        self.last_growth = 0;
        self.memory_exceeded();
        Ok(())
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > MAX_TABLE_ELEMENTS {
            self.note(format!(
                "table limit of {MAX_TABLE_ELEMENTS} elements exceeded"
            ));
            return Ok(false);
        }
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_is_counted_across_growths_and_the_limit_is_recorded() {
        let mut limiter = GuestLimiter::new(100);
        assert!(limiter.memory_growing(0, 60, None).unwrap());
        assert!(limiter.memory_growing(60, 100, None).unwrap());
        assert_eq!(limiter.exceeded(), None);
        assert!(!limiter.memory_growing(100, 101, None).unwrap());
        assert_eq!(
            limiter.exceeded(),
            Some("memory limit of 100 bytes exceeded")
        );
    }

    #[test]
    fn a_failed_growth_is_given_back() {
        let mut limiter = GuestLimiter::new(100);
        assert!(limiter.memory_growing(0, 80, None).unwrap());
        limiter
            .memory_grow_failed(wasmtime::format_err!("pool slot full"))
            .unwrap();
        assert!(limiter.memory_growing(0, 100, None).unwrap());
    }
}
