//! Host-side topics: connections subscribe, publish, and the host writes
//! each published message to every subscriber's socket itself (framed once,
//! see [`Published`]) or queues it for subscribers whose guests asked for
//! delivery, without waking any other guest.
//!
//! Topics belong to the host process, not to a guest version: connections
//! on old and new versions share them across hot swaps. A publish never
//! waits for a subscriber: one whose queue is over `max_backpressure` bytes
//! misses the message (counted), or is closed with 1008 if so configured.
//!
//! With a broker (`--broker`, see [`super::broker`]) the topics are shared
//! with other hosts: a publish is delivered here at once and handed to the
//! broker's [`Link`] (never waiting), and messages from other hosts come
//! back through [`Topics::deliver_from_broker`], the same delivery path.
//! Subscriber counts stay local to this host. Without a broker none of
//! this costs anything.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use bytes::Bytes;
use thiserror::Error;

use super::ConnectionHandle;
use super::broker::{BrokerConfig, Link};
use crate::protocol::connection::{Delivery, TopicMessage};
use crate::protocol::deflate::DeflateConfig;
use crate::protocol::fanout::Published;

/// The longest topic name, in bytes.
pub const MAX_TOPIC_LEN: usize = 256;

/// How a subscriber gets a topic's messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeliveryMode {
    /// Straight to the socket; the guest is not woken.
    Socket,
    /// Queued for the guest (`next-event`).
    Guest,
}

/// A topic call the host refuses.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum TopicError {
    /// The topic name is empty or longer than [`MAX_TOPIC_LEN`] bytes.
    #[error("a topic name is 1 to {MAX_TOPIC_LEN} bytes, got {0}")]
    InvalidName(usize),
}

/// What the topics do with slow subscribers.
#[derive(Clone, Debug)]
pub struct TopicsConfig {
    /// Most bytes a connection may have waiting (to be written, or for its
    /// guest) before topic deliveries to it are dropped.
    pub max_backpressure: usize,
    /// Close a subscriber over the limit with 1008 instead of dropping.
    pub close_slow_subscribers: bool,
    /// The server's permessage-deflate settings (level, minimum size) for
    /// the frames compressed once per publish.
    pub deflate: DeflateConfig,
    /// The broker that shares topics with other hosts, if any.
    pub broker: Option<BrokerConfig>,
}

/// Counters over the process's life.
#[derive(Debug, Default)]
pub struct TopicStats {
    /// Messages queued to a subscriber (socket or guest).
    pub deliveries: AtomicU64,
    /// Deliveries dropped for backpressure.
    pub drops: AtomicU64,
    /// Subscribers closed for backpressure.
    pub slow_closes: AtomicU64,
}

struct Subscriber {
    conn: ConnectionHandle,
    mode: DeliveryMode,
}

/// Every topic of this host, with its subscribers.
pub struct Topics {
    config: TopicsConfig,
    /// Topic name → subscribers by connection id. One lock: subscribing
    /// and publishing are short, and a publish holds it while it queues
    /// (never while it waits: queuing never waits).
    topics: Mutex<HashMap<Arc<str>, HashMap<u64, Subscriber>>>,
    stats: TopicStats,
    /// The link to the broker (`--broker`), if any.
    broker: Option<Arc<Link>>,
}

/// What one publish did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PublishReport {
    /// Subscribers it was queued for.
    pub queued: u32,
    /// Subscribers that missed it (over their backpressure limit).
    pub dropped: u32,
}

impl Topics {
    /// No topics yet. With a broker configured, its link's tasks start on
    /// the current tokio runtime (connecting in the background).
    pub fn new(config: TopicsConfig) -> Arc<Self> {
        let (broker, tasks) = match config.broker.clone() {
            Some(broker) => {
                let (link, tasks) = Link::new(broker);
                (Some(link), Some(tasks))
            }
            None => (None, None),
        };
        let topics = Arc::new(Self {
            config,
            topics: Mutex::new(HashMap::new()),
            stats: TopicStats::default(),
            broker,
        });
        if let Some(tasks) = tasks {
            tasks.spawn(Arc::downgrade(&topics));
        }
        topics
    }

    /// The link to the broker, if there is one.
    pub fn broker(&self) -> Option<&Arc<Link>> {
        self.broker.as_ref()
    }

    /// Where this host's connection ids start: 0, or with a broker a random
    /// per-run prefix in the high bits, so that publisher ids differ across
    /// hosts.
    pub fn connection_id_base(&self) -> u64 {
        self.broker
            .as_ref()
            .map_or(0, |link| link.connection_id_base())
    }

    /// Every topic with at least one local subscriber.
    pub fn topic_names(&self) -> Vec<Arc<str>> {
        self.lock().keys().cloned().collect()
    }

    /// Whether `topic` has a local subscriber.
    pub fn has_subscribers(&self, topic: &str) -> bool {
        self.lock().contains_key(topic)
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<Arc<str>, HashMap<u64, Subscriber>>> {
        self.topics.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The counters.
    pub fn stats(&self) -> &TopicStats {
        &self.stats
    }

    /// How many topics have at least one subscriber.
    pub fn topic_count(&self) -> usize {
        self.lock().len()
    }

    /// Check a topic name: 1 to 256 bytes (it is UTF-8 by type).
    pub fn check_name(topic: &str) -> Result<(), TopicError> {
        if topic.is_empty() || topic.len() > MAX_TOPIC_LEN {
            return Err(TopicError::InvalidName(topic.len()));
        }
        Ok(())
    }

    /// Subscribe `conn` to `topic` (again: change its delivery mode).
    /// Returns the topic's shared name, for the connection's own list.
    pub fn subscribe(
        &self,
        conn: &ConnectionHandle,
        topic: &str,
        mode: DeliveryMode,
    ) -> Result<Arc<str>, TopicError> {
        Self::check_name(topic)?;
        let mut topics = self.lock();
        let (name, first) = match topics.get_key_value(topic) {
            Some((name, _)) => (name.clone(), false),
            None => (Arc::from(topic), true),
        };
        topics.entry(name.clone()).or_default().insert(
            conn.id(),
            Subscriber {
                conn: conn.clone(),
                mode,
            },
        );
        drop(topics);
        if first && let Some(link) = &self.broker {
            link.topic_changed(&name);
        }
        Ok(name)
    }

    /// Unsubscribe connection `id` from `topic`; whether it was subscribed.
    pub fn unsubscribe(&self, id: u64, topic: &str) -> bool {
        let mut topics = self.lock();
        let Some(subscribers) = topics.get_mut(topic) else {
            return false;
        };
        let was = subscribers.remove(&id).is_some();
        if subscribers.is_empty()
            && let Some((name, _)) = topics.remove_entry(topic)
            && let Some(link) = &self.broker
        {
            link.topic_changed(&name);
        }
        was
    }

    /// Unsubscribe connection `id` from all of `topics` (its end).
    pub fn unsubscribe_all(&self, id: u64, names: &[Arc<str>]) {
        let mut topics = self.lock();
        for name in names {
            if let Some(subscribers) = topics.get_mut(name) {
                subscribers.remove(&id);
                if subscribers.is_empty() {
                    topics.remove(name);
                    if let Some(link) = &self.broker {
                        link.topic_changed(name);
                    }
                }
            }
        }
    }

    /// How many connections of this host subscribe to `topic` (with a
    /// broker too: other hosts' subscribers are not counted).
    pub fn subscriber_count(&self, topic: &str) -> usize {
        self.lock().get(topic).map_or(0, HashMap::len)
    }

    /// Publish a message from connection `publisher` to every subscriber of
    /// `topic` but the publisher (unless `include_self`), and hand it to the
    /// broker if there is one. Never waits. The report counts this host's
    /// subscribers only.
    pub fn publish(
        &self,
        topic: &str,
        text: bool,
        payload: Bytes,
        publisher: u64,
        include_self: bool,
    ) -> Result<PublishReport, TopicError> {
        Self::check_name(topic)?;
        let skip = (!include_self).then_some(publisher);
        let Some(link) = &self.broker else {
            return Ok(self.deliver(topic, text, payload, publisher, skip).0);
        };
        let (report, name) = self.deliver(topic, text, payload.clone(), publisher, skip);
        link.offer(
            name.unwrap_or_else(|| Arc::from(topic)),
            text,
            payload,
            publisher,
        );
        Ok(report)
    }

    /// Deliver a message another host published (through the broker) to
    /// this host's subscribers of `topic`, like a local publish.
    pub fn deliver_from_broker(&self, topic: &str, text: bool, payload: Bytes, publisher: u64) {
        if Self::check_name(topic).is_ok() {
            self.deliver(topic, text, payload, publisher, None);
        }
    }

    /// Queue a message for every local subscriber of `topic` but `skip`;
    /// also returns the topic's shared name if it has local subscribers.
    fn deliver(
        &self,
        topic: &str,
        text: bool,
        payload: Bytes,
        publisher: u64,
        skip: Option<u64>,
    ) -> (PublishReport, Option<Arc<str>>) {
        let mut report = PublishReport::default();
        let mut published = Published::new(text, payload, &self.config.deflate);
        let limit = self.config.max_backpressure;
        let mut slow = Vec::new();
        let shared_name;
        {
            let topics = self.lock();
            let Some((name, subscribers)) = topics.get_key_value(topic) else {
                return (report, None);
            };
            shared_name = name.clone();
            for (&id, subscriber) in subscribers {
                if Some(id) == skip {
                    continue;
                }
                let delivery = match subscriber.mode {
                    DeliveryMode::Socket => subscriber
                        .conn
                        .with_state(|state| state.queue_published(&mut published, limit)),
                    DeliveryMode::Guest => {
                        let message = TopicMessage {
                            topic: name.clone(),
                            text,
                            payload: published.payload().clone(),
                            publisher,
                        };
                        subscriber
                            .conn
                            .with_state(|state| state.deliver_to_guest(message, limit))
                    }
                };
                match delivery {
                    Delivery::Queued => report.queued += 1,
                    Delivery::Dropped => {
                        report.dropped += 1;
                        slow.push(subscriber.conn.clone());
                    }
                    Delivery::Closed => {}
                }
            }
        }
        self.stats
            .deliveries
            .fetch_add(u64::from(report.queued), Ordering::Relaxed);
        self.stats
            .drops
            .fetch_add(u64::from(report.dropped), Ordering::Relaxed);
        for conn in slow {
            self.on_slow_subscriber(&conn);
        }
        (report, Some(shared_name))
    }

    /// A subscriber missed a message: log its first miss, or close it.
    fn on_slow_subscriber(&self, conn: &ConnectionHandle) {
        if self.config.close_slow_subscribers {
            self.stats.slow_closes.fetch_add(1, Ordering::Relaxed);
            tracing::info!(
                conn = conn.id(),
                limit = self.config.max_backpressure,
                "closing a subscriber over its backpressure limit"
            );
            conn.close_from_host(
                crate::protocol::CloseCode::POLICY_VIOLATION,
                "too slow for its topics",
            );
        } else if conn.with_state(|state| state.dropped_deliveries()) == 1 {
            tracing::info!(
                conn = conn.id(),
                limit = self.config.max_backpressure,
                "subscriber over its backpressure limit: dropping its topic messages"
            );
        }
    }
}
