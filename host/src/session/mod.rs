//! What the runtime and the server share: the guest-facing handle of one
//! connection, and how a guest's run ended.
//!
//! A [`ConnectionHandle`] is the protocol core's
//! [`Connection`](crate::protocol::Connection) behind a mutex, plus one
//! [`Signal`] per party that waits on it: the guest (through the runtime),
//! the reader and the writer (through the server's IO driver). Every method
//! locks, calls the state machine, unlocks, and wakes whoever the state
//! machine says has news. The mutex is never held across an `.await`.

pub mod broker;
pub mod outcome;
pub mod signal;
pub mod topics;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tokio::time::Instant;

use crate::protocol::CloseCode;
use bytes::Bytes;

use crate::protocol::connection::{
    AcceptParams, AnswerError, ConnEvent, Connection, ConnectionConfig, ConnectionError, GuestEnd,
    Incoming, Outgoing, RejectParams, Wakes,
};
use crate::protocol::handshake::Request;
pub use outcome::{GuestFailure, GuestOutcome};
use signal::Signal;
use topics::{DeliveryMode, PublishReport, TopicError, Topics};

/// State shared by the reader, the writer and the guest of one connection.
struct Shared {
    id: u64,
    remote: SocketAddr,
    /// The request target's path (no query), for the access log.
    path: Box<str>,
    /// The client's opening handshake, while the guest can still ask for it
    /// (its `pending-connection` lives); released then, so a connection
    /// does not keep its request's headers (a browser's cookies included)
    /// for its whole life.
    request: Mutex<Option<Request>>,
    /// Once this many bytes wait to be written, the guest's sends wait.
    write_high_water: usize,
    state: Mutex<Connection>,
    topics: Arc<Topics>,
    /// The topics this connection subscribes to, to leave them at its end.
    subscriptions: Mutex<Vec<Arc<str>>>,
    guest_wake: Signal,
    writer_wake: Signal,
    reader_wake: Signal,
}

/// One connection as the guest runtime and the IO driver see it: every WIT
/// call on `pending-connection` and `connection` maps to one method here.
#[derive(Clone)]
pub struct ConnectionHandle {
    shared: Arc<Shared>,
}

impl ConnectionHandle {
    /// A handle for a client whose opening handshake `request` was valid.
    pub fn new(
        id: u64,
        remote: SocketAddr,
        request: Request,
        config: Arc<ConnectionConfig>,
        write_high_water: usize,
        topics: Arc<Topics>,
    ) -> Self {
        let state = Connection::new(config, Instant::now().into_std());
        Self {
            shared: Arc::new(Shared {
                id,
                remote,
                path: request.path().into(),
                request: Mutex::new(Some(request)),
                write_high_water,
                state: Mutex::new(state),
                topics,
                subscriptions: Mutex::new(Vec::new()),
                guest_wake: Signal::default(),
                writer_wake: Signal::default(),
                reader_wake: Signal::default(),
            }),
        }
    }

    /// The connection's id, as it appears in logs.
    pub fn id(&self) -> u64 {
        self.shared.id
    }

    /// The peer's address.
    pub fn remote(&self) -> SocketAddr {
        self.shared.remote
    }

    /// The request target's path (no query).
    pub fn path(&self) -> &str {
        &self.shared.path
    }

    /// Run `f` on the client's opening handshake; `None` once it was
    /// released ([`Self::release_request`]).
    pub fn with_request<R>(&self, f: impl FnOnce(&Request) -> R) -> Option<R> {
        self.request_slot().as_ref().map(f)
    }

    /// The guest can no longer ask for the request (it dropped its pending
    /// connection): free it.
    pub fn release_request(&self) {
        // Taken under the lock, freed after it is released.
        let request = self.request_slot().take();
        drop(request);
    }

    fn request_slot(&self) -> MutexGuard<'_, Option<Request>> {
        self.shared
            .request
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn lock(&self) -> MutexGuard<'_, Connection> {
        // A panic while holding this lock is a bug in the state machine;
        // its state is still good enough to close the connection.
        self.shared
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Run `f` on the state machine, then wake whoever it says has news.
    pub fn with_state<R>(&self, f: impl FnOnce(&mut Connection) -> R) -> R {
        let (result, wakes) = {
            let mut state = self.lock();
            let result = f(&mut state);
            (result, state.take_wakes())
        };
        self.wake(wakes);
        result
    }

    fn wake(&self, wakes: Wakes) {
        if wakes.guest {
            self.shared.guest_wake.notify();
        }
        if wakes.writer {
            self.shared.writer_wake.notify();
        }
        if wakes.reader {
            self.shared.reader_wake.notify();
        }
    }

    /// Resolves when the reader has news since it last waited: a wake-up
    /// between a look at the state and the wait is not lost.
    pub fn reader_notified(&self) -> impl Future<Output = ()> + Send + '_ {
        self.shared.reader_wake.notified()
    }

    /// Resolves when the writer has news (see [`Self::reader_notified`]).
    pub fn writer_notified(&self) -> impl Future<Output = ()> + Send + '_ {
        self.shared.writer_wake.notified()
    }

    /// Answer the handshake with `101 Switching Protocols`.
    pub fn accept(&self, params: AcceptParams) -> Result<(), AnswerError> {
        let now = Instant::now().into_std();
        let request = self.request_slot();
        // Released only with the pending connection, which `accept` needs.
        let Some(request) = request.as_ref() else {
            return Err(AnswerError::AlreadyAnswered);
        };
        self.with_state(|state| state.accept(request, params, now))
    }

    /// Answer the handshake with an HTTP error response.
    pub fn reject(&self, params: &RejectParams) -> Result<(), AnswerError> {
        self.with_state(|state| state.reject(params))
    }

    /// The subprotocol agreed at accept time.
    pub fn subprotocol(&self) -> Option<String> {
        self.lock().subprotocol().map(str::to_owned)
    }

    /// The `Sec-WebSocket-Extensions` value answered at accept time.
    pub fn extensions(&self) -> Option<String> {
        self.lock().extensions().map(str::to_owned)
    }

    /// Wait for the next message (or pong, if asked for).
    pub async fn receive(&self) -> Result<Incoming, ConnectionError> {
        self.wait_to_take(Connection::receive).await
    }

    /// Wait for the next message, then take it and the messages queued
    /// behind it, within [`Connection::receive_all`]'s bounds.
    pub async fn receive_all(&self) -> Result<Vec<Incoming>, ConnectionError> {
        self.wait_to_take(Connection::receive_all).await
    }

    /// Run `take` on the state until it has something (or fails), waiting
    /// for the guest's wake-up in between.
    async fn wait_to_take<R>(
        &self,
        take: impl Fn(&mut Connection, std::time::Instant) -> Result<Option<R>, ConnectionError>,
    ) -> Result<R, ConnectionError> {
        loop {
            let notified = self.shared.guest_wake.notified();
            let now = Instant::now().into_std();
            if let Some(taken) = self.with_state(|state| take(state, now))? {
                return Ok(taken);
            }
            notified.await;
        }
    }

    /// Queue messages as one batch, then wait while the write buffer is over
    /// its high-water mark.
    pub async fn send_all<'m, M>(&self, messages: M) -> Result<(), ConnectionError>
    where
        M: AsRef<[Outgoing<'m>]> + IntoIterator<Item = Outgoing<'m>>,
    {
        self.queue_then_drain(|state| state.send(messages)).await
    }

    /// Send one message.
    pub async fn send(&self, message: Outgoing<'_>) -> Result<(), ConnectionError> {
        self.queue_then_drain(|state| state.send([message])).await
    }

    /// Send a ping; its pong is not awaited.
    pub async fn ping(&self, payload: &[u8]) -> Result<(), ConnectionError> {
        self.queue_then_drain(|state| state.ping(payload)).await
    }

    /// Start the closing handshake with `code` and `reason`.
    pub async fn close(&self, code: u16, reason: &str) -> Result<(), ConnectionError> {
        let now = Instant::now().into_std();
        self.queue_then_drain(|state| state.close(code, reason, now))
            .await
    }

    /// Close the connection on the host's initiative (shutdown, drain): the
    /// peer gets a close frame with `code`, the guest sees a close request.
    pub fn close_from_host(&self, code: CloseCode, reason: &str) {
        let now = Instant::now().into_std();
        self.with_state(|state| state.close_from_host(code, reason, now));
    }

    /// Record how the guest ended: finish the handshake or the closing
    /// handshake on its behalf.
    pub fn guest_finished(&self, outcome: &GuestOutcome) {
        let end = match outcome {
            GuestOutcome::Returned => GuestEnd::Returned,
            GuestOutcome::Failed(_) => GuestEnd::Failed,
        };
        let now = Instant::now().into_std();
        self.with_state(|state| state.guest_finished(end, now));
    }

    /// The next event (peer message, delivered topic message, or the
    /// close), without waiting.
    pub fn next_event(&self) -> Option<ConnEvent> {
        let now = Instant::now().into_std();
        self.with_state(|state| state.next_event(now))
    }

    /// Resolves once [`Self::next_event`] has something.
    pub async fn wait_event(&self) {
        loop {
            let notified = self.shared.guest_wake.notified();
            if self.lock().event_ready() {
                return;
            }
            notified.await;
        }
    }

    fn subscriptions(&self) -> MutexGuard<'_, Vec<Arc<str>>> {
        self.shared
            .subscriptions
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Subscribe to `topic` (again: change the delivery mode).
    pub fn subscribe(&self, topic: &str, mode: DeliveryMode) -> Result<(), TopicError> {
        let name = self.shared.topics.subscribe(self, topic, mode)?;
        let mut subscriptions = self.subscriptions();
        if !subscriptions.contains(&name) {
            subscriptions.push(name);
        }
        Ok(())
    }

    /// Unsubscribe from `topic`; whether it was subscribed.
    pub fn unsubscribe(&self, topic: &str) -> bool {
        self.subscriptions().retain(|name| &**name != topic);
        self.shared.topics.unsubscribe(self.id(), topic)
    }

    /// Publish to `topic`'s subscribers (not this connection, unless
    /// `include_self`). Never waits.
    pub fn publish(
        &self,
        topic: &str,
        text: bool,
        payload: Bytes,
        include_self: bool,
    ) -> Result<PublishReport, TopicError> {
        self.shared
            .topics
            .publish(topic, text, payload, self.id(), include_self)
    }

    /// How many connections of this host subscribe to `topic` (with a
    /// broker too: the count is local).
    pub fn subscriber_count(&self, topic: &str) -> Result<usize, TopicError> {
        Topics::check_name(topic)?;
        Ok(self.shared.topics.subscriber_count(topic))
    }

    /// Leave every topic (the connection ended).
    pub fn leave_topics(&self) {
        let names = std::mem::take(&mut *self.subscriptions());
        self.shared.topics.unsubscribe_all(self.id(), &names);
    }

    /// Queue with `queue`, then wait while the write buffer is over its
    /// high-water mark. The first look at the buffer shares `queue`'s lock
    /// (one lock per send on the steady path).
    async fn queue_then_drain(
        &self,
        queue: impl FnOnce(&mut Connection) -> Result<(), ConnectionError>,
    ) -> Result<(), ConnectionError> {
        let drained = self.with_state(|state| {
            queue(state)?;
            self.drained(state)
        })?;
        if drained {
            return Ok(());
        }
        loop {
            self.shared.guest_wake.notified().await;
            if self.with_state(|state| self.drained(state))? {
                return Ok(());
            }
        }
    }

    /// Whether the write buffer is under its high-water mark; if not, the
    /// writer is asked to wake the guest once it has written.
    fn drained(&self, state: &mut Connection) -> Result<bool, ConnectionError> {
        if state.is_gone() {
            return Err(ConnectionError::ConnectionClosed);
        }
        if state.pending_write_bytes() < self.shared.write_high_water {
            return Ok(true);
        }
        state.wait_for_drain();
        Ok(false)
    }
}
