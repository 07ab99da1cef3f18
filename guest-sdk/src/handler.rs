//! What [`export_handler!`](crate::export_handler) runs.

use std::any::Any;
use std::fmt::Display;

use crate::error::{ConnectionError, Error, HandshakeError};
use crate::{PendingConnection, bindings, log};

/// What a handler may return: `()`, or a `Result<(), E>` so that it can use
/// `?`.
///
/// An `Err` that is the normal end of a connection (the peer's close, a
/// connection that went away: see [`Error::is_closed`]) is not a failure and
/// is dropped quietly; any other error is written to the host log at error
/// level. Either way the host then ends the connection as after any return
/// (a guest that wants another close code sends it before returning).
pub trait HandlerReturn {
    /// Handles the value the handler returned.
    fn finish(self);
}

impl HandlerReturn for () {
    fn finish(self) {}
}

impl<E: Display + 'static> HandlerReturn for Result<(), E> {
    fn finish(self) {
        if let Err(error) = self
            && !is_normal_end(&error)
        {
            log::error(format!("handler failed: {error}"));
        }
    }
}

type DynError = dyn std::error::Error + 'static;
type DynSendError = dyn std::error::Error + Send + Sync + 'static;

/// Whether `error` (of whatever type a handler returned) means that the
/// connection ended normally. Knows the SDK's errors, also boxed.
fn is_normal_end(error: &dyn Any) -> bool {
    if let Some(e) = error.downcast_ref::<Box<DynSendError>>() {
        is_normal_end_boxed(&**e)
    } else if let Some(e) = error.downcast_ref::<Box<DynError>>() {
        is_normal_end_boxed(&**e)
    } else if let Some(e) = error.downcast_ref::<Error>() {
        e.is_closed()
    } else if let Some(e) = error.downcast_ref::<ConnectionError>() {
        e.is_closed()
    } else if let Some(e) = error.downcast_ref::<HandshakeError>() {
        *e == HandshakeError::ConnectionClosed
    } else {
        false
    }
}

fn is_normal_end_boxed(error: &DynError) -> bool {
    if let Some(e) = error.downcast_ref::<Error>() {
        e.is_closed()
    } else if let Some(e) = error.downcast_ref::<ConnectionError>() {
        e.is_closed()
    } else if let Some(e) = error.downcast_ref::<HandshakeError>() {
        *e == HandshakeError::ConnectionClosed
    } else {
        false
    }
}

/// Runs a handler on the raw pending connection. Used by
/// [`export_handler!`](crate::export_handler); not public API.
#[doc(hidden)]
pub fn run<R: HandlerReturn>(
    pending: bindings::PendingConnection,
    handler: impl FnOnce(PendingConnection) -> R,
) {
    handler(PendingConnection::from_raw(pending)).finish();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normal_ends_are_recognised() {
        let close = ConnectionError::CloseRequest {
            code: 1000,
            reason: String::new(),
        };
        assert!(is_normal_end(&close));
        assert!(is_normal_end(&Error::from(close.clone())));
        assert!(is_normal_end(&HandshakeError::ConnectionClosed));
        let boxed: Box<dyn std::error::Error + Send + Sync> = Box::new(close.clone());
        assert!(is_normal_end(&boxed));
        let boxed: Box<dyn std::error::Error> = Box::new(ConnectionError::ConnectionClosed);
        assert!(is_normal_end(&boxed));
        assert!(!is_normal_end(&ConnectionError::InvalidArgument(
            "x".into()
        )));
        assert!(!is_normal_end(&HandshakeError::AlreadyAnswered));
        assert!(!is_normal_end(&"some string error"));
    }
}
