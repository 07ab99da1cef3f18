//! Topics and events: connections talk to each other through the host, and
//! a guest waits for the first of a client message, a delivered topic
//! message and a deadline.
//!
//! ```no_run
//! use std::time::Duration;
//! use guest_sdk::{Delivery, Event, PendingConnection};
//!
//! guest_sdk::export_handler!(handle);
//!
//! fn handle(pending: PendingConnection) -> guest_sdk::Result<()> {
//!     let conn = pending.accept()?;
//!     // Room messages go straight to this client's socket...
//!     conn.subscribe("room")?;
//!     // ...while moderation messages come to the guest.
//!     conn.subscribe_with("moderation", Delivery::Guest)?;
//!     loop {
//!         match conn.next_event(Some(Duration::from_secs(60)))? {
//!             Event::Message(message) => {
//!                 conn.publish("room", message)?;
//!             }
//!             Event::Topic(topic_message) => {
//!                 conn.send_text(format!("moderator says: {:?}", topic_message.message))?;
//!             }
//!             Event::Timeout => conn.send_text("still there?")?,
//!             _ => {}
//!         }
//!     }
//! }
//! ```

use std::time::Duration;

use crate::bindings::wasi::clocks::monotonic_clock;
use crate::bindings::wasi::io::poll::{self, Pollable};
use crate::bindings::wsbox::websocket::types as raw;
use crate::connection::Connection;
use crate::error::ConnectionError;
use crate::message::Message;

/// How a topic's messages reach this connection.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Delivery {
    /// The host writes each message straight to the client's socket, framed
    /// (and compressed) once per publish, without waking this guest. The
    /// default, and the fast path.
    #[default]
    Socket,
    /// The host queues each message for this guest, which gets it from
    /// [`Connection::next_event`] as [`Event::Topic`] (with the topic and
    /// the publisher) to filter, transform or keep state.
    Guest,
}

impl Delivery {
    fn to_raw(self) -> raw::Delivery {
        match self {
            Delivery::Socket => raw::Delivery::Socket,
            Delivery::Guest => raw::Delivery::Guest,
        }
    }
}

/// A message published to a topic, delivered to this guest
/// ([`Delivery::Guest`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TopicMessage {
    /// The topic it was published to.
    pub topic: String,
    /// The message (text or binary).
    pub message: Message,
    /// The publishing connection's id ([`Connection::id`]).
    pub publisher: u64,
}

/// What [`Connection::next_event`] waited for.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// A message from the client.
    Message(Message),
    /// A message published to a topic this guest subscribed to with
    /// [`Delivery::Guest`].
    Topic(TopicMessage),
    /// The timeout passed first.
    Timeout,
}

impl Connection {
    /// This connection's id: opaque, unique among the connections of one
    /// host run. It is the `publisher` of this connection's publishes. With
    /// a broker (`host serve --broker`), ids carry a random per-host prefix
    /// in their high bits and differ across the hosts sharing topics.
    pub fn id(&self) -> u64 {
        self.as_raw().id()
    }

    /// Subscribes to `topic` (1 to 256 bytes, matched exactly), its
    /// messages going straight to the client's socket
    /// ([`Delivery::Socket`]).
    pub fn subscribe(&self, topic: &str) -> Result<(), ConnectionError> {
        self.subscribe_with(topic, Delivery::Socket)
    }

    /// Subscribes to `topic` with the given delivery (subscribing again
    /// changes it).
    pub fn subscribe_with(&self, topic: &str, delivery: Delivery) -> Result<(), ConnectionError> {
        Ok(self.as_raw().subscribe(topic, delivery.to_raw())?)
    }

    /// Unsubscribes from `topic`; `false` if it was not subscribed.
    pub fn unsubscribe(&self, topic: &str) -> Result<bool, ConnectionError> {
        Ok(self.as_raw().unsubscribe(topic)?)
    }

    /// Publishes `message` (text or binary) to every other subscriber of
    /// `topic`. Never waits; returns how many subscribers it was queued
    /// for (a subscriber over the host's backpressure limit misses it).
    pub fn publish(
        &self,
        topic: &str,
        message: impl Into<Message>,
    ) -> Result<u32, ConnectionError> {
        self.publish_with(topic, message, false)
    }

    /// Like [`publish`](Self::publish); `include_self` delivers it to this
    /// connection too, if it is subscribed.
    pub fn publish_with(
        &self,
        topic: &str,
        message: impl Into<Message>,
        include_self: bool,
    ) -> Result<u32, ConnectionError> {
        let message = message.into();
        let options = raw::PublishOptions { include_self };
        Ok(self.as_raw().publish(topic, message.as_param(), options)?)
    }

    /// How many connections of this host subscribe to `topic` (with a
    /// broker too: other hosts' subscribers are not counted).
    pub fn subscriber_count(&self, topic: &str) -> Result<u32, ConnectionError> {
        Ok(self.as_raw().subscriber_count(topic)?)
    }

    /// The next event without waiting: `Ok(None)` when there is none yet.
    /// Ends like [`receive`](Self::receive): the close request once, then
    /// [`ConnectionError::ConnectionClosed`].
    pub fn poll_event(&self) -> Result<Option<Event>, ConnectionError> {
        match self.as_raw().next_event() {
            None => Ok(None),
            Some(raw::Event::Message(message)) => Ok(Some(Event::Message(message.into()))),
            Some(raw::Event::Topic(topic_message)) => Ok(Some(Event::Topic(TopicMessage {
                topic: topic_message.topic,
                message: topic_message.message.into(),
                publisher: topic_message.publisher,
            }))),
            Some(raw::Event::Closed(error)) => Err(error.into()),
        }
    }

    /// Waits for the first of a client message, a delivered topic message
    /// and, with `Some(timeout)`, the timeout ([`Event::Timeout`]). Ends
    /// like [`receive`](Self::receive). Built on `wasi:io/poll`; see
    /// [`events_ready`](Self::events_ready) to drive it from an event loop
    /// of your own.
    pub fn next_event(&self, timeout: Option<Duration>) -> Result<Event, ConnectionError> {
        if let Some(event) = self.poll_event()? {
            return Ok(event);
        }
        let ready = self.events_ready();
        let deadline = timeout.map(|timeout| {
            let nanos = u64::try_from(timeout.as_nanos()).unwrap_or(u64::MAX);
            monotonic_clock::subscribe_duration(nanos)
        });
        loop {
            match &deadline {
                Some(deadline) => {
                    let woken = poll::poll(&[&ready, deadline]);
                    if !woken.contains(&0) {
                        return Ok(Event::Timeout);
                    }
                }
                None => ready.block(),
            }
            if let Some(event) = self.poll_event()? {
                return Ok(event);
            }
        }
    }

    /// A `wasi:io/poll` pollable that is ready when
    /// [`poll_event`](Self::poll_event) has something, for guests that
    /// poll several things at once themselves.
    pub fn events_ready(&self) -> Pollable {
        self.as_raw().events_ready()
    }
}
