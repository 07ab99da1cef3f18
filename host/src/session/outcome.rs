//! How a guest's run for one connection ended, typed, so logs (and metrics)
//! can tell a CPU budget from a memory limit from a bug in the guest.

use thiserror::Error;

/// How the guest's `handle` call ended.
#[derive(Debug)]
pub enum GuestOutcome {
    /// `handle` returned.
    Returned,
    /// The guest failed; its connection is closed with 1011 (or answered
    /// with 500 if it had not answered the handshake).
    Failed(GuestFailure),
}

/// Why a guest failed.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum GuestFailure {
    /// It ran longer than its CPU budget without calling the host.
    #[error("guest exceeded its CPU budget of {budget_ms} ms")]
    CpuBudget {
        /// The budget, in milliseconds.
        budget_ms: u64,
    },
    /// It asked for more linear memory (or table elements) than allowed.
    #[error("guest {limit}")]
    MemoryLimit {
        /// The limit it ran into, as a sentence (`memory limit of N bytes
        /// exceeded`).
        limit: String,
    },
    /// It trapped (a panic, `unreachable`, a bad memory access, ...).
    #[error("guest trapped: {message}")]
    Trap {
        /// The trap and its causes, on one line.
        message: String,
    },
    /// It could not be instantiated (the instance pool is full, a start
    /// function trapped, ...).
    #[error("guest could not be instantiated: {message}")]
    Instantiate {
        /// Why, on one line.
        message: String,
    },
}

impl GuestFailure {
    /// A short, stable name for the kind of failure (`cpu`, `memory`,
    /// `trap`, `instantiate`), for log fields and metric labels.
    pub fn kind(&self) -> &'static str {
        match self {
            GuestFailure::CpuBudget { .. } => "cpu",
            GuestFailure::MemoryLimit { .. } => "memory",
            GuestFailure::Trap { .. } => "trap",
            GuestFailure::Instantiate { .. } => "instantiate",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_are_stable_names() {
        let failures = [
            (GuestFailure::CpuBudget { budget_ms: 5 }, "cpu"),
            (GuestFailure::MemoryLimit { limit: "x".into() }, "memory"),
            (
                GuestFailure::Trap {
                    message: "x".into(),
                },
                "trap",
            ),
            (
                GuestFailure::Instantiate {
                    message: "x".into(),
                },
                "instantiate",
            ),
        ];
        for (failure, kind) in failures {
            assert_eq!(failure.kind(), kind);
        }
        assert_eq!(
            GuestFailure::CpuBudget { budget_ms: 200 }.to_string(),
            "guest exceeded its CPU budget of 200 ms"
        );
    }
}
