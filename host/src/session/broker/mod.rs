//! The backplane: several hosts share their topics through a broker they
//! all connect to (`--broker redis://...`), as Socket.IO's and Phoenix's
//! multi-server adapters do with Redis pub/sub.
//!
//! [`Topics`] stays the one owner of local delivery. A [`Link`] sits beside
//! it and does three things:
//!
//! - **Out.** A local publish is delivered locally at once, then handed to
//!   the link with [`Link::offer`], which never waits: it puts the message
//!   on one bounded queue (bytes and count) or, when the queue is full,
//!   drops it and counts it. One task takes the queue in order and sends it
//!   to the broker in pipelined batches over one connection, so each
//!   publisher's messages keep their order on every host.
//! - **Subscriptions.** [`Topics`] tells the link when a topic gets its
//!   first local subscriber or loses its last ([`Link::topic_changed`]);
//!   another task, owning the one subscriber connection, subscribes to or
//!   unsubscribes from the topic's channel (`wsbox:topic:NAME`), and after
//!   every reconnection subscribes to every live topic again.
//! - **In.** That task decodes each message ([`envelope`]), skips this
//!   host's own (every envelope carries a random per-run host id), refuses
//!   anything that is not a valid envelope or is over `--max-message-size`
//!   (logged, rate-limited), and hands the rest to [`Topics`], which frames
//!   it once for this host and delivers it like a local publish.
//!
//! Faults: neither task ever makes a publisher, a subscriber or the accept
//! path wait. While the broker is unreachable, stuck or slow, local topics
//! go on; the tasks reconnect with backoff (one log line when the broker is
//! lost, one when it is back, a reminder a minute); what this host could not
//! send meanwhile is counted as lost and logged.
//!
//! A broker is reached through a [`Backend`], one per URL scheme
//! ([`redis`] for `redis://`), so another (NATS) can follow.

pub mod envelope;
pub mod redis;

use std::collections::HashSet;
use std::fmt;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use thiserror::Error;
use tokio::sync::{Notify, mpsc};
use tokio::time::{Instant, sleep, timeout};

use super::topics::Topics;
use envelope::EnvelopeError;

/// Every topic's channel on the broker is this prefix and the topic's name.
pub const CHANNEL_PREFIX: &str = "wsbox:topic:";

/// Bits of a connection id below the host's prefix (see
/// [`Link::connection_id_base`]).
const CONNECTION_ID_BITS: u32 = 40;

/// Most messages sent to the broker in one pipelined batch.
const MAX_BATCH: usize = 512;
/// Most payload bytes in one batch (a batch holds at least one message).
const MAX_BATCH_BYTES: usize = 1 << 20;
/// Bytes a queued message is counted for beyond its payload and topic.
const QUEUE_OVERHEAD: usize = 64;
/// Most messages on the queue, whatever their size.
const MAX_QUEUED: usize = 1 << 16;
/// Most channels in one SUBSCRIBE or UNSUBSCRIBE.
const MAX_CHANNELS_PER_CALL: usize = 512;

/// How long connecting to the broker may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// How long the broker may take to answer a batch or a (un)subscribe;
/// longer means it is stuck, and the connection is dropped.
const REPLY_TIMEOUT: Duration = Duration::from_secs(2);
/// How often the subscriber connection is checked with a ping, so a stuck
/// broker is noticed even when no message is due.
const PING_EVERY: Duration = Duration::from_secs(5);
/// First wait after a failed connection attempt; doubled up to
/// [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
/// Longest wait between two connection attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(2);
/// While the broker stays unreachable, remind the log this often.
const REMIND_EVERY: Duration = Duration::from_secs(60);
/// At most one log line per kind of dropped message this often.
const DROP_LOG_EVERY: Duration = Duration::from_secs(10);

/// A `--broker` URL that does not name a broker this host can use.
#[derive(Debug, Error)]
pub enum BrokerUrlError {
    /// Not `SCHEME://...`.
    #[error("broker URL {0:?} is not SCHEME://HOST:PORT (e.g. redis://127.0.0.1:6379)")]
    NoScheme(String),
    /// A scheme without a backend.
    #[error(
        "unknown broker scheme {0:?}: supported is redis:// (redis://[:PASSWORD@]HOST:PORT[/DB])"
    )]
    UnknownScheme(String),
    /// The backend could not read the rest of the URL.
    #[error("malformed broker URL {url}: {reason}")]
    Malformed {
        /// The URL with any password hidden.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
}

/// Which broker to use and how to reach it: parsed from `--broker`.
#[derive(Clone)]
pub enum BrokerUrl {
    /// Redis pub/sub (`redis://[:PASSWORD@]HOST[:PORT][/DB]`).
    Redis(redis::RedisUrl),
}

impl FromStr for BrokerUrl {
    type Err = BrokerUrlError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let text = text.trim();
        let Some((scheme, _)) = text.split_once("://") else {
            return Err(BrokerUrlError::NoScheme(hide_password(text)));
        };
        match scheme.to_ascii_lowercase().as_str() {
            "redis" => Ok(Self::Redis(redis::RedisUrl::parse(text)?)),
            _ => Err(BrokerUrlError::UnknownScheme(scheme.to_owned())),
        }
    }
}

impl BrokerUrl {
    /// The backend for this URL.
    fn backend(&self) -> Arc<dyn Backend> {
        match self {
            Self::Redis(url) => Arc::new(redis::RedisBackend::new(url.clone())),
        }
    }
}

/// The URL without its password, fit for logs.
impl fmt::Display for BrokerUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Redis(url) => url.fmt(f),
        }
    }
}

impl fmt::Debug for BrokerUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BrokerUrl({self})")
    }
}

/// `url` with the password in its user-info part replaced by `***`.
pub fn hide_password(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let Some(at) = rest[..authority_end].rfind('@') else {
        return url.to_owned();
    };
    let user = rest[..at].split(':').next().unwrap_or_default();
    let prefix = if scheme.is_empty() {
        String::new()
    } else {
        format!("{scheme}://")
    };
    format!("{prefix}{user}:***{}", &rest[at..])
}

/// The backplane's settings.
#[derive(Clone, Debug)]
pub struct BrokerConfig {
    /// The broker.
    pub url: BrokerUrl,
    /// Most bytes of messages waiting to be sent to the broker; beyond it
    /// publishes are not sent to other hosts (dropped and counted).
    pub queue_bytes: usize,
    /// Largest payload accepted from the broker (`--max-message-size`).
    pub max_message_size: u64,
}

/// A failure talking to the broker. The link reconnects after any of them.
#[derive(Debug, Error)]
pub enum BrokerError {
    /// Redis refused a command or the connection failed.
    #[error("redis: {0}")]
    Redis(#[from] ::redis::RedisError),
    /// The connection ended.
    #[error("connection closed by the broker")]
    Closed,
    /// No answer in time: the broker is stuck or the network is.
    #[error("timed out: no answer within {0:?}")]
    TimedOut(Duration),
}

/// One local publish on its way to the broker.
#[derive(Clone, Debug)]
pub struct Outbound {
    /// The topic.
    pub topic: Arc<str>,
    /// Text or binary.
    pub text: bool,
    /// The message.
    pub payload: Bytes,
    /// The publishing connection's id.
    pub publisher: u64,
}

impl Outbound {
    /// The channel the message goes to.
    pub fn channel(&self) -> String {
        channel_of(&self.topic)
    }

    /// What the message counts for against the queue's byte bound.
    fn cost(&self) -> usize {
        self.payload.len() + self.topic.len() + QUEUE_OVERHEAD
    }
}

/// One message from a subscribed channel.
#[derive(Debug)]
pub struct Inbound {
    /// The channel it came on.
    pub channel: String,
    /// Its bytes (an envelope, if a wsbox host sent it).
    pub payload: Bytes,
}

/// The broker channel of `topic`.
pub fn channel_of(topic: &str) -> String {
    format!("{CHANNEL_PREFIX}{topic}")
}

/// How a broker is reached: one implementation per URL scheme. The link
/// holds one publisher and one subscriber connection at a time and opens
/// new ones after a failure; timeouts are the link's business.
#[async_trait]
pub trait Backend: Send + Sync {
    /// Open a connection to publish on.
    async fn publisher(&self) -> Result<Box<dyn Publisher>, BrokerError>;
    /// Open a connection to subscribe on.
    async fn subscriber(&self) -> Result<Box<dyn Subscriber>, BrokerError>;
}

/// A connection that publishes.
#[async_trait]
pub trait Publisher: Send {
    /// Publish every message of `batch`, in order, each in an envelope from
    /// host `host`; done once the broker has taken them all.
    async fn publish(&mut self, host: u64, batch: &[Outbound]) -> Result<(), BrokerError>;
}

/// A connection that subscribes to channels and receives their messages.
#[async_trait]
pub trait Subscriber: Send {
    /// Subscribe to `channels`; done once the broker has confirmed.
    async fn subscribe(&mut self, channels: &[String]) -> Result<(), BrokerError>;
    /// Unsubscribe from `channels`.
    async fn unsubscribe(&mut self, channels: &[String]) -> Result<(), BrokerError>;
    /// The next message on a subscribed channel. Cancel-safe: dropping the
    /// future loses no message.
    async fn next_message(&mut self) -> Result<Inbound, BrokerError>;
    /// Check that the connection still works.
    async fn ping(&mut self) -> Result<(), BrokerError>;
}

/// The backplane's counters over the process's life.
#[derive(Debug, Default)]
pub struct BrokerStats {
    /// Local publishes the broker took.
    pub sent: AtomicU64,
    /// Local publishes not sent because the queue was full.
    pub queue_full: AtomicU64,
    /// Local publishes lost on their way: the broker was unreachable, or
    /// the connection failed before it confirmed them.
    pub unsent: AtomicU64,
    /// Local publishes not sent for being over `--max-message-size`.
    pub too_large: AtomicU64,
    /// Messages from other hosts delivered here.
    pub received: AtomicU64,
    /// This host's own messages coming back (skipped).
    pub own: AtomicU64,
    /// Messages from the broker refused (not an envelope, too large, ...).
    pub refused: AtomicU64,
}

impl BrokerStats {
    /// Local publishes that did not reach the broker, whatever the reason.
    pub fn lost(&self) -> u64 {
        self.queue_full.load(Ordering::Relaxed)
            + self.unsent.load(Ordering::Relaxed)
            + self.too_large.load(Ordering::Relaxed)
    }
}

/// Lets one log line through per period, and says how many were held back.
struct RateLimit {
    last: Mutex<Option<Instant>>,
    held: AtomicU64,
}

impl RateLimit {
    fn new() -> Self {
        Self {
            last: Mutex::new(None),
            held: AtomicU64::new(0),
        }
    }

    /// `Some(held back since the last line)` when a line may be logged now.
    fn allow(&self) -> Option<u64> {
        let now = Instant::now();
        let mut last = self.last.lock().unwrap_or_else(PoisonError::into_inner);
        match *last {
            Some(at) if now.duration_since(at) < DROP_LOG_EVERY => {
                self.held.fetch_add(1, Ordering::Relaxed);
                None
            }
            _ => {
                *last = Some(now);
                Some(self.held.swap(0, Ordering::Relaxed))
            }
        }
    }
}

/// Which of the link's two connections.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Side {
    Publisher,
    Subscriber,
}

/// Whether the broker is reachable, for the log: one line when it is lost,
/// one when it is back, a reminder now and then.
#[derive(Default)]
struct HealthState {
    publisher_up: bool,
    subscriber_up: bool,
    ever_up: bool,
    /// Since when a connection has been down (and the log said so).
    down_since: Option<Instant>,
    last_reminder: Option<Instant>,
    /// `BrokerStats::lost` when the broker was lost.
    lost_before: u64,
}

/// The link between this host's [`Topics`] and a broker: the queue towards
/// it, the topics whose subscription changed, counters.
pub struct Link {
    url: BrokerUrl,
    host_id: u64,
    config: BrokerConfig,
    queue: mpsc::Sender<Outbound>,
    queued_bytes: AtomicUsize,
    /// Topics whose first subscriber came or last left since the
    /// subscriber task last looked.
    changed: Mutex<HashSet<Arc<str>>>,
    changed_wake: Notify,
    stats: BrokerStats,
    health: Mutex<HealthState>,
    full_log: RateLimit,
    large_log: RateLimit,
    /// One limit per kind of refusal, so each kind is seen in the log.
    refused_log: [RateLimit; Refused::KINDS],
    /// Another host uses this host's connection-id prefix (logged once).
    prefix_clash: std::sync::atomic::AtomicBool,
    /// How often the subscriber connection failed (see [`run_publisher`]).
    subscriber_failures: AtomicU64,
    /// How many topics' channels the subscriber connection has now.
    subscribed: AtomicUsize,
}

/// The link's tasks, not started yet (see [`Link::new`]).
pub struct LinkTasks {
    link: Arc<Link>,
    queue: mpsc::Receiver<Outbound>,
}

/// A random host id, never 0 and with a nonzero connection-id prefix.
fn random_host_id() -> u64 {
    let random = getrandom::u64().unwrap_or_else(|_| {
        // No OS randomness: the clock and the process id still differ
        // between hosts in practice.
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |t| t.as_nanos() as u64);
        nanos ^ (u64::from(std::process::id()) << 40)
    });
    if random >> CONNECTION_ID_BITS == 0 {
        random | (1 << CONNECTION_ID_BITS)
    } else {
        random
    }
}

impl Link {
    /// A link to the broker `config` names; it does nothing until its
    /// tasks are spawned ([`LinkTasks::spawn`]).
    pub fn new(config: BrokerConfig) -> (Arc<Self>, LinkTasks) {
        let (sender, receiver) = mpsc::channel(MAX_QUEUED);
        let link = Arc::new(Self {
            url: config.url.clone(),
            host_id: random_host_id(),
            config,
            queue: sender,
            queued_bytes: AtomicUsize::new(0),
            changed: Mutex::new(HashSet::new()),
            changed_wake: Notify::new(),
            stats: BrokerStats::default(),
            health: Mutex::new(HealthState::default()),
            full_log: RateLimit::new(),
            large_log: RateLimit::new(),
            refused_log: std::array::from_fn(|_| RateLimit::new()),
            prefix_clash: std::sync::atomic::AtomicBool::new(false),
            subscriber_failures: AtomicU64::new(0),
            subscribed: AtomicUsize::new(0),
        });
        let tasks = LinkTasks {
            link: link.clone(),
            queue: receiver,
        };
        (link, tasks)
    }

    /// This host's id in envelopes (random per run).
    pub fn host_id(&self) -> u64 {
        self.host_id
    }

    /// Connection ids of this host start above this: the top 24 bits of the
    /// host id, so ids differ across hosts (unless two hosts draw the same
    /// 24 bits, which the link notices and logs).
    pub fn connection_id_base(&self) -> u64 {
        (self.host_id >> CONNECTION_ID_BITS) << CONNECTION_ID_BITS
    }

    /// The counters.
    pub fn stats(&self) -> &BrokerStats {
        &self.stats
    }

    /// Whether both connections to the broker (publishing and
    /// subscribing) work now (for `/readyz`).
    pub fn is_connected(&self) -> bool {
        let health = self.health();
        health.publisher_up && health.subscriber_up
    }

    /// Hand a local publish to the broker. Never waits: over the queue's
    /// bound the message is dropped for other hosts and counted.
    pub fn offer(&self, topic: Arc<str>, text: bool, payload: Bytes, publisher: u64) {
        if u64::try_from(payload.len()).unwrap_or(u64::MAX) > self.config.max_message_size {
            self.stats.too_large.fetch_add(1, Ordering::Relaxed);
            if let Some(held) = self.large_log.allow() {
                tracing::warn!(
                    topic = &*topic,
                    len = payload.len(),
                    limit = self.config.max_message_size,
                    held,
                    "publish over --max-message-size: not sent to other hosts"
                );
            }
            return;
        }
        let message = Outbound {
            topic,
            text,
            payload,
            publisher,
        };
        let cost = message.cost();
        let before = self.queued_bytes.fetch_add(cost, Ordering::Relaxed);
        let fits = before + cost <= self.config.queue_bytes || before == 0;
        if fits && self.queue.try_send(message).is_ok() {
            return;
        }
        self.queued_bytes.fetch_sub(cost, Ordering::Relaxed);
        let dropped = self.stats.queue_full.fetch_add(1, Ordering::Relaxed) + 1;
        if let Some(held) = self.full_log.allow() {
            tracing::warn!(
                broker = %self.url,
                queue_bytes = self.config.queue_bytes,
                dropped,
                held,
                "broker queue full (broker slow or stuck): publishes are not sent to other hosts"
            );
        }
    }

    /// Count `batch` as lost on its way to the broker, and empty it.
    fn unsent(&self, batch: &mut Vec<Outbound>) {
        self.stats
            .unsent
            .fetch_add(batch.len() as u64, Ordering::Relaxed);
        batch.clear();
    }

    /// `topic` got its first local subscriber or lost its last: the
    /// subscriber task will (un)subscribe its channel.
    pub fn topic_changed(&self, topic: &Arc<str>) {
        self.changed_set().insert(topic.clone());
        self.changed_wake.notify_one();
    }

    fn changed_set(&self) -> MutexGuard<'_, HashSet<Arc<str>>> {
        self.changed.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn health(&self) -> MutexGuard<'_, HealthState> {
        self.health.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// One of the connections works (again).
    fn up(&self, side: Side) {
        let mut health = self.health();
        match side {
            Side::Publisher => health.publisher_up = true,
            Side::Subscriber => health.subscriber_up = true,
        }
        let topics = self.subscribed.load(Ordering::Relaxed);
        if !(health.publisher_up && health.subscriber_up) {
            return;
        }
        if let Some(since) = health.down_since.take() {
            let lost = self.stats.lost() - health.lost_before;
            tracing::warn!(
                broker = %self.url,
                down_ms = u64::try_from(since.elapsed().as_millis()).unwrap_or(u64::MAX),
                lost,
                lost_total = self.stats.lost(),
                topics,
                "broker reachable again; every live topic resubscribed; {lost} messages published \
                 here meanwhile were lost for other hosts, and what other hosts published \
                 meanwhile did not reach this one"
            );
        } else if !health.ever_up {
            tracing::info!(
                broker = %self.url,
                host_id = %format_args!("{:016x}", self.host_id),
                "connected to the broker"
            );
        }
        health.ever_up = true;
        health.last_reminder = None;
    }

    /// One of the connections failed.
    fn down(&self, side: Side, error: &BrokerError) {
        let mut health = self.health();
        match side {
            Side::Publisher => health.publisher_up = false,
            Side::Subscriber => health.subscriber_up = false,
        }
        if health.down_since.is_some() {
            tracing::debug!(broker = %self.url, ?side, %error, "broker connection failed again");
            return;
        }
        health.down_since = Some(Instant::now());
        health.lost_before = self.stats.lost();
        if health.ever_up {
            tracing::warn!(
                broker = %self.url,
                %error,
                lost_total = health.lost_before,
                "lost the broker: local topics go on; reconnecting with backoff; messages between \
                 this host and the others are lost (and counted) until then"
            );
        } else {
            tracing::warn!(
                broker = %self.url,
                %error,
                "broker unreachable: serving local topics only; retrying with backoff \
                 (publishes meanwhile are not sent to other hosts, and counted)"
            );
        }
    }

    /// Still down after a failed attempt: remind the log now and then.
    fn still_down(&self) {
        let mut health = self.health();
        let Some(since) = health.down_since else {
            return;
        };
        let now = Instant::now();
        let last = health.last_reminder.unwrap_or(since);
        if now.duration_since(last) >= REMIND_EVERY {
            health.last_reminder = Some(now);
            tracing::warn!(
                broker = %self.url,
                down_s = since.elapsed().as_secs(),
                lost = self.stats.lost() - health.lost_before,
                "broker still unreachable; retrying"
            );
        }
    }

    /// Deliver one message from the broker to this host's subscribers, or
    /// refuse it.
    fn receive(&self, topics: &Topics, inbound: Inbound) {
        let result = inbound
            .channel
            .strip_prefix(CHANNEL_PREFIX)
            .ok_or(Refused::NotATopic)
            .and_then(|topic| {
                envelope::decode(inbound.payload, self.config.max_message_size)
                    .map(|envelope| (topic, envelope))
                    .map_err(Refused::Envelope)
            });
        let (topic, envelope) = match result {
            Ok(decoded) => decoded,
            Err(reason) => {
                self.stats.refused.fetch_add(1, Ordering::Relaxed);
                if let Some(held) = self.refused_log[reason.kind()].allow() {
                    tracing::warn!(
                        broker = %self.url,
                        channel = inbound.channel,
                        held,
                        "dropped a message from the broker: {reason}"
                    );
                }
                return;
            }
        };
        if envelope.host == self.host_id {
            self.stats.own.fetch_add(1, Ordering::Relaxed);
            return;
        }
        if envelope.publisher >> CONNECTION_ID_BITS == self.host_id >> CONNECTION_ID_BITS
            && !self.prefix_clash.swap(true, Ordering::Relaxed)
        {
            tracing::warn!(
                other_host = %format_args!("{:016x}", envelope.host),
                "another host drew this host's connection-id prefix: publisher ids may be \
                 ambiguous across hosts until one of them restarts"
            );
        }
        self.stats.received.fetch_add(1, Ordering::Relaxed);
        topics.deliver_from_broker(topic, envelope.text, envelope.payload, envelope.publisher);
    }
}

/// Why a message from the broker is not delivered.
#[derive(Debug, Error)]
enum Refused {
    #[error("not on a wsbox topic channel")]
    NotATopic,
    #[error(transparent)]
    Envelope(EnvelopeError),
}

impl Refused {
    /// How many kinds [`Self::kind`] tells apart.
    const KINDS: usize = 7;

    /// The kind of refusal, for rate-limiting each kind's log line apart.
    fn kind(&self) -> usize {
        match self {
            Self::NotATopic => 0,
            Self::Envelope(EnvelopeError::TooShort(_)) => 1,
            Self::Envelope(EnvelopeError::NotWsbox) => 2,
            Self::Envelope(EnvelopeError::UnknownVersion(_)) => 3,
            Self::Envelope(EnvelopeError::UnknownFlags(_)) => 4,
            Self::Envelope(EnvelopeError::TooLarge { .. }) => 5,
            Self::Envelope(EnvelopeError::InvalidUtf8) => 6,
        }
    }
}

/// Exponential backoff between connection attempts.
struct Backoff(Duration);

impl Backoff {
    fn new() -> Self {
        Self(FIRST_BACKOFF)
    }

    fn reset(&mut self) {
        self.0 = FIRST_BACKOFF;
    }

    /// The next wait (and double the one after).
    fn next(&mut self) -> Duration {
        let wait = self.0;
        self.0 = (self.0 * 2).min(MAX_BACKOFF);
        wait
    }
}

impl LinkTasks {
    /// Start the publisher and subscriber tasks on the current tokio
    /// runtime. They hold `topics` weakly and end with it.
    pub fn spawn(self, topics: Weak<Topics>) {
        let backend = self.link.url.backend();
        tokio::spawn(run_publisher(
            self.link.clone(),
            backend.clone(),
            self.queue,
        ));
        tokio::spawn(run_subscriber(self.link, backend, topics));
    }
}

/// Take the first message of a batch (waiting for it), then as many more
/// as are queued, up to the batch's bounds. `None` when the host is gone.
async fn next_batch(
    link: &Link,
    queue: &mut mpsc::Receiver<Outbound>,
    batch: &mut Vec<Outbound>,
) -> Option<()> {
    let first = queue.recv().await?;
    let mut bytes = first.payload.len();
    let mut cost = first.cost();
    batch.push(first);
    while batch.len() < MAX_BATCH && bytes < MAX_BATCH_BYTES {
        let Ok(message) = queue.try_recv() else {
            break;
        };
        bytes += message.payload.len();
        cost += message.cost();
        batch.push(message);
    }
    link.queued_bytes.fetch_sub(cost, Ordering::Relaxed);
    Some(())
}

/// Wait `wait` while the broker is unreachable, taking every message off
/// the queue meanwhile and counting it as lost: after the gap, what is sent
/// is fresh, not a backlog. `None` when the host is gone.
async fn drain_for(
    link: &Link,
    queue: &mut mpsc::Receiver<Outbound>,
    wait: Duration,
) -> Option<()> {
    let deadline = sleep(wait);
    tokio::pin!(deadline);
    loop {
        tokio::select! {
            () = &mut deadline => return Some(()),
            message = queue.recv() => {
                let message = message?;
                link.queued_bytes.fetch_sub(message.cost(), Ordering::Relaxed);
                link.stats.unsent.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// The publisher task: the queue, in order, to the broker.
///
/// A publisher connection to a broker that died may not know it until it
/// writes, and that write's messages would be lost. So when the subscriber
/// connection fails (it notices at once: its stream ends), the publisher
/// reconnects before its next batch.
async fn run_publisher(
    link: Arc<Link>,
    backend: Arc<dyn Backend>,
    mut queue: mpsc::Receiver<Outbound>,
) {
    let mut backoff = Backoff::new();
    // A batch taken off the queue and not sent yet: kept across a
    // reconnection.
    let mut batch = Vec::with_capacity(MAX_BATCH);
    loop {
        let epoch = link.subscriber_failures.load(Ordering::Acquire);
        let mut conn = match connect(backend.publisher()).await {
            Ok(conn) => conn,
            Err(error) => {
                link.down(Side::Publisher, &error);
                link.unsent(&mut batch);
                link.still_down();
                if drain_for(&link, &mut queue, backoff.next()).await.is_none() {
                    return;
                }
                continue;
            }
        };
        backoff.reset();
        link.up(Side::Publisher);
        loop {
            if batch.is_empty() && next_batch(&link, &mut queue, &mut batch).await.is_none() {
                return;
            }
            if link.subscriber_failures.load(Ordering::Acquire) != epoch {
                tracing::debug!(broker = %link.url, "reconnecting the publisher after the subscriber failed");
                break;
            }
            let sent = timeout(REPLY_TIMEOUT, conn.publish(link.host_id, &batch)).await;
            let error = match sent {
                Ok(Ok(())) => {
                    link.stats
                        .sent
                        .fetch_add(batch.len() as u64, Ordering::Relaxed);
                    batch.clear();
                    continue;
                }
                Ok(Err(error)) => error,
                Err(_) => BrokerError::TimedOut(REPLY_TIMEOUT),
            };
            link.down(Side::Publisher, &error);
            link.unsent(&mut batch);
            break;
        }
    }
}

/// Connect within [`CONNECT_TIMEOUT`].
async fn connect<T>(
    connecting: impl Future<Output = Result<T, BrokerError>>,
) -> Result<T, BrokerError> {
    timeout(CONNECT_TIMEOUT, connecting)
        .await
        .unwrap_or(Err(BrokerError::TimedOut(CONNECT_TIMEOUT)))
}

/// Run a (un)subscribe within [`REPLY_TIMEOUT`].
async fn within_reply_timeout(
    call: impl Future<Output = Result<(), BrokerError>>,
) -> Result<(), BrokerError> {
    timeout(REPLY_TIMEOUT, call)
        .await
        .unwrap_or(Err(BrokerError::TimedOut(REPLY_TIMEOUT)))
}

/// The subscriber task: keeps the broker subscriptions equal to this
/// host's live topics and delivers what arrives.
async fn run_subscriber(link: Arc<Link>, backend: Arc<dyn Backend>, topics: Weak<Topics>) {
    let mut backoff = Backoff::new();
    loop {
        if topics.strong_count() == 0 {
            return;
        }
        let mut conn = match connect(backend.subscriber()).await {
            Ok(conn) => conn,
            Err(error) => {
                link.down(Side::Subscriber, &error);
                link.still_down();
                sleep(backoff.next()).await;
                continue;
            }
        };
        let error = match serve_subscriber(&link, &mut *conn, &topics, &mut backoff).await {
            Some(error) => error,
            None => return,
        };
        link.subscriber_failures.fetch_add(1, Ordering::AcqRel);
        link.down(Side::Subscriber, &error);
        sleep(backoff.next()).await;
    }
}

/// Subscribe to every live topic, then deliver messages and follow topic
/// changes until the connection fails (its error) or the host is gone
/// (`None`).
async fn serve_subscriber(
    link: &Link,
    conn: &mut dyn Subscriber,
    topics: &Weak<Topics>,
    backoff: &mut Backoff,
) -> Option<BrokerError> {
    // Changes noted before now are covered by the full list.
    link.changed_set().clear();
    let live = topics.upgrade()?.topic_names();
    let mut subscribed: HashSet<Arc<str>> = HashSet::with_capacity(live.len());
    for chunk in live.chunks(MAX_CHANNELS_PER_CALL) {
        let channels: Vec<String> = chunk.iter().map(|topic| channel_of(topic)).collect();
        if let Err(error) = within_reply_timeout(conn.subscribe(&channels)).await {
            return Some(error);
        }
        subscribed.extend(chunk.iter().cloned());
    }
    backoff.reset();
    link.subscribed.store(subscribed.len(), Ordering::Relaxed);
    link.up(Side::Subscriber);
    let mut ping = tokio::time::interval(PING_EVERY);
    ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ping.tick().await; // the first tick is now
    loop {
        tokio::select! {
            message = conn.next_message() => match message {
                Ok(inbound) => link.receive(&*topics.upgrade()?, inbound),
                Err(error) => return Some(error),
            },
            () = link.changed_wake.notified() => {
                let topics = topics.upgrade()?;
                let followed = follow_changes(link, conn, &topics, &mut subscribed).await;
                link.subscribed.store(subscribed.len(), Ordering::Relaxed);
                if let Err(error) = followed {
                    return Some(error);
                }
            }
            _ = ping.tick() => {
                if let Err(error) = within_reply_timeout(conn.ping()).await {
                    return Some(error);
                }
            }
        }
    }
}

/// Subscribe to the changed topics that now have local subscribers and
/// unsubscribe from those that no longer do.
async fn follow_changes(
    link: &Link,
    conn: &mut dyn Subscriber,
    topics: &Topics,
    subscribed: &mut HashSet<Arc<str>>,
) -> Result<(), BrokerError> {
    let changed: Vec<Arc<str>> = link.changed_set().drain().collect();
    let (mut join, mut leave) = (Vec::new(), Vec::new());
    for topic in changed {
        let live = topics.has_subscribers(&topic);
        if live && !subscribed.contains(&topic) {
            join.push(topic);
        } else if !live && subscribed.contains(&topic) {
            leave.push(topic);
        }
    }
    for chunk in join.chunks(MAX_CHANNELS_PER_CALL) {
        let channels: Vec<String> = chunk.iter().map(|topic| channel_of(topic)).collect();
        within_reply_timeout(conn.subscribe(&channels)).await?;
        subscribed.extend(chunk.iter().cloned());
    }
    for chunk in leave.chunks(MAX_CHANNELS_PER_CALL) {
        let channels: Vec<String> = chunk.iter().map(|topic| channel_of(topic)).collect();
        within_reply_timeout(conn.unsubscribe(&channels)).await?;
        for topic in chunk {
            subscribed.remove(topic);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_scheme_picks_the_backend() {
        let url: BrokerUrl = "redis://127.0.0.1:6379".parse().unwrap();
        assert!(matches!(url, BrokerUrl::Redis(_)));
        assert_eq!(url.to_string(), "redis://127.0.0.1:6379");
        assert!(matches!(
            "nats://127.0.0.1:4222".parse::<BrokerUrl>(),
            Err(BrokerUrlError::UnknownScheme(scheme)) if scheme == "nats"
        ));
        assert!(matches!(
            "127.0.0.1:6379".parse::<BrokerUrl>(),
            Err(BrokerUrlError::NoScheme(_))
        ));
    }

    #[test]
    fn passwords_never_show() {
        let url: BrokerUrl = "redis://:s3cret@10.0.0.1:6380/".parse().unwrap();
        let shown = format!("{url} {url:?}");
        assert!(!shown.contains("s3cret"), "{shown}");
        assert!(shown.contains("10.0.0.1:6380"), "{shown}");
        let error = "redis://:s3cret@/nohost".parse::<BrokerUrl>().unwrap_err();
        assert!(!error.to_string().contains("s3cret"), "{error}");
        assert_eq!(
            hide_password("redis://user:pw@host:1/2"),
            "redis://user:***@host:1/2"
        );
        assert_eq!(hide_password("redis://host:1/a@b"), "redis://host:1/a@b");
    }

    #[test]
    fn malformed_redis_urls_are_refused() {
        for bad in [
            "redis://",
            "redis://host:notaport",
            "redis://host:6379/notadb",
        ] {
            assert!(
                matches!(
                    bad.parse::<BrokerUrl>(),
                    Err(BrokerUrlError::Malformed { .. })
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn the_queue_towards_the_broker_is_bounded_and_never_waits() {
        let config = BrokerConfig {
            url: "redis://127.0.0.1:1".parse().unwrap(),
            queue_bytes: 10_000,
            max_message_size: 1 << 20,
        };
        // The tasks are never spawned: nothing takes the queue.
        let (link, _tasks) = Link::new(config);
        let topic: Arc<str> = Arc::from("t");
        for _ in 0..100 {
            link.offer(topic.clone(), false, Bytes::from(vec![0u8; 1000]), 1);
        }
        // 1,000 + 1 + 64 bytes each: 9 fit in 10,000.
        assert_eq!(link.stats().queue_full.load(Ordering::Relaxed), 91);
        link.offer(topic, false, Bytes::from(vec![0u8; 2 << 20]), 1);
        assert_eq!(link.stats().too_large.load(Ordering::Relaxed), 1);
        assert_eq!(link.stats().lost(), 92);
    }

    #[test]
    fn connection_id_prefixes_are_nonzero() {
        for _ in 0..100 {
            let id = random_host_id();
            assert_ne!(id >> CONNECTION_ID_BITS, 0);
        }
    }

    #[test]
    fn the_rate_limit_lets_one_line_through_per_period() {
        let limit = RateLimit::new();
        assert_eq!(limit.allow(), Some(0));
        assert_eq!(limit.allow(), None);
        assert_eq!(limit.allow(), None);
        *limit.last.lock().unwrap() = Some(Instant::now() - DROP_LOG_EVERY);
        assert_eq!(limit.allow(), Some(2));
    }

    #[test]
    fn backoff_doubles_up_to_its_cap() {
        let mut backoff = Backoff::new();
        let waits: Vec<_> = (0..7).map(|_| backoff.next()).collect();
        assert_eq!(waits[0], FIRST_BACKOFF);
        assert_eq!(waits[1], FIRST_BACKOFF * 2);
        assert_eq!(*waits.last().unwrap(), MAX_BACKOFF);
        backoff.reset();
        assert_eq!(backoff.next(), FIRST_BACKOFF);
    }
}
