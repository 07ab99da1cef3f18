//! Logging into the host's log, tagged with the connection.
//!
//! ```no_run
//! guest_sdk::log::info("client connected");
//! guest_sdk::log::warn(format!("unexpected message: {:?}", "x"));
//! ```
//!
//! A guest's stdout and stderr (`println!`, panic messages) reach the host
//! log too; these functions add a level.

use crate::bindings::wsbox::websocket::log as raw;

/// Severity of a log line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Level {
    /// Very detailed tracing.
    Trace,
    /// Debugging detail.
    Debug,
    /// Normal operation.
    Info,
    /// Something unexpected but handled.
    Warn,
    /// Something failed.
    Error,
}

/// Writes one line at `level`.
pub fn log(level: Level, message: impl AsRef<str>) {
    let level = match level {
        Level::Trace => raw::Level::Trace,
        Level::Debug => raw::Level::Debug,
        Level::Info => raw::Level::Info,
        Level::Warn => raw::Level::Warn,
        Level::Error => raw::Level::Error,
    };
    raw::log(level, message.as_ref());
}

/// Writes one line at [`Level::Trace`].
pub fn trace(message: impl AsRef<str>) {
    log(Level::Trace, message);
}

/// Writes one line at [`Level::Debug`].
pub fn debug(message: impl AsRef<str>) {
    log(Level::Debug, message);
}

/// Writes one line at [`Level::Info`].
pub fn info(message: impl AsRef<str>) {
    log(Level::Info, message);
}

/// Writes one line at [`Level::Warn`].
pub fn warn(message: impl AsRef<str>) {
    log(Level::Warn, message);
}

/// Writes one line at [`Level::Error`].
pub fn error(message: impl AsRef<str>) {
    log(Level::Error, message);
}
