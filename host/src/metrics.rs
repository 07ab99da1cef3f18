//! Process-wide metrics for `--metrics-listen`, in the Prometheus /
//! OpenMetrics text format (`prometheus-client`).
//!
//! Nothing here is touched per message: the IO driver adds each
//! connection's message and byte counts in bulk (at most once a second
//! per connection, and at its end), and the rest happens once per
//! connection, handshake, guest failure or swap (and a guest's yields, at
//! most once per 10 ms tick of its run time). Without
//! `--metrics-listen` there is no [`Metrics`] and nothing is counted.

use std::sync::Arc;
use std::time::Duration;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::protocol::CloseCode;
use crate::protocol::connection::{ClosedBy, ConnectionStats};
use crate::session::topics::Topics;

/// How often a long-lived connection adds its message and byte counts.
pub const TRAFFIC_FLUSH_INTERVAL: Duration = Duration::from_secs(1);

/// The `status` label of `wsbox_handshakes_rejected_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StatusLabel {
    status: u16,
}

/// The labels of `wsbox_closes_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CloseLabels {
    /// The first close frame's code, or `none`.
    code: String,
    /// Who sent it (`client`, `guest`, `host`, `protocol-error`), or `none`.
    initiator: &'static str,
}

/// The `kind` label of `wsbox_guest_failures_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabel {
    kind: &'static str,
}

/// The `result` label of `wsbox_guest_swaps_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabel {
    result: &'static str,
}

/// What a hot swap came to, for `wsbox_guest_swaps_total{result}`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SwapResult {
    /// The new version serves new connections.
    Swapped,
    /// It did not compile or did not fit the world; the old one serves.
    Refused,
}

impl SwapResult {
    fn label(self) -> &'static str {
        match self {
            SwapResult::Swapped => "ok",
            SwapResult::Refused => "refused",
        }
    }
}

/// Every metric of the process, and the registry that encodes them.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    connections_open: Gauge,
    connections_total: Counter,
    handshakes_rejected: Family<StatusLabel, Counter>,
    messages_received: Counter,
    messages_sent: Counter,
    bytes_received: Counter,
    bytes_sent: Counter,
    closes: Family<CloseLabels, Counter>,
    guest_failures: Family<KindLabel, Counter>,
    guest_instantiate: Histogram,
    guest_yields: Counter,
    guest_swaps: Family<ResultLabel, Counter>,
}

impl Metrics {
    /// Register every metric; the topic ones are read from `topics` at
    /// each scrape.
    pub fn new(topics: Arc<Topics>) -> Arc<Self> {
        let mut registry = Registry::default();
        let connections_open = register(
            &mut registry,
            "wsbox_connections_open",
            "WebSocket connections open (handshake read, guest started)",
            Gauge::default(),
        );
        let connections_total = register(
            &mut registry,
            "wsbox_connections",
            "WebSocket connections started (handshake read, guest started)",
            Counter::default(),
        );
        let handshakes_rejected = register(
            &mut registry,
            "wsbox_handshakes_rejected",
            "Opening handshakes answered with an HTTP error, by status (malformed 4xx, \
             origin 403, busy 503, the guest's own rejections, 500 when it did not answer)",
            Family::default(),
        );
        let [messages_received, messages_sent, bytes_received, bytes_sent] = [
            (
                "wsbox_messages_received",
                "Data messages received from clients",
            ),
            (
                "wsbox_messages_sent",
                "Data messages queued for clients (guests' and topics')",
            ),
            (
                "wsbox_bytes_received",
                "WebSocket frame bytes received (on the wire, handshake excluded)",
            ),
            (
                "wsbox_bytes_sent",
                "WebSocket frame bytes sent (on the wire, handshake excluded)",
            ),
        ]
        .map(|(name, help)| register(&mut registry, name, help, Counter::default()));
        let closes = register(
            &mut registry,
            "wsbox_closes",
            "Finished connections by the code of their first close frame and who sent it \
             (code and initiator `none`: no close frame)",
            Family::default(),
        );
        let guest_failures: Family<KindLabel, Counter> = Family::default();
        for kind in ["cpu", "memory", "trap", "instantiate"] {
            // Zero from the start, so rates work before the first failure.
            let _ = guest_failures.get_or_create(&KindLabel { kind });
        }
        let guest_failures = register(
            &mut registry,
            "wsbox_guest_failures",
            "Guests that failed, by kind (cpu budget, memory limit, trap, instantiation)",
            guest_failures,
        );
        // 10 µs to ~10 s: a pooled instance takes tens of µs, a start
        // function that does real work takes longer.
        let guest_instantiate = register(
            &mut registry,
            "wsbox_guest_instantiate_seconds",
            "Time to instantiate a guest for a connection",
            Histogram::new(exponential_buckets(0.000_01, 4.0, 11)),
        );
        let guest_yields = register(
            &mut registry,
            "wsbox_guest_yields",
            "Times a guest ran through a whole epoch tick (10 ms) without waiting and was made \
             to let the other connections on its thread run",
            Counter::default(),
        );
        let guest_swaps: Family<ResultLabel, Counter> = Family::default();
        for result in [SwapResult::Swapped, SwapResult::Refused] {
            let _ = guest_swaps.get_or_create(&ResultLabel {
                result: result.label(),
            });
        }
        let guest_swaps = register(
            &mut registry,
            "wsbox_guest_swaps",
            "Hot swaps, by result (ok, refused)",
            guest_swaps,
        );
        registry.register_collector(Box::new(TopicCollector(topics)));
        Arc::new(Self {
            registry,
            connections_open,
            connections_total,
            handshakes_rejected,
            messages_received,
            messages_sent,
            bytes_received,
            bytes_sent,
            closes,
            guest_failures,
            guest_instantiate,
            guest_yields,
            guest_swaps,
        })
    }

    /// Every metric in the OpenMetrics text format (which Prometheus
    /// scrapes), ending with `# EOF`.
    pub fn encode(&self) -> String {
        let mut text = String::new();
        // Writing to a String cannot fail; a collector's error would leave
        // a partial text, which is what a scrape then sees.
        let _ = prometheus_client::encoding::text::encode(&mut text, &self.registry);
        text
    }

    /// A connection's guest started.
    pub fn connection_opened(&self) {
        self.connections_total.inc();
        self.connections_open.inc();
    }

    /// A connection ended: its last traffic and how it closed.
    pub fn connection_finished(
        &self,
        traffic: ConnectionStats,
        close: Option<(CloseCode, ClosedBy)>,
    ) {
        self.connections_open.dec();
        self.add_traffic(traffic);
        let labels = match close {
            Some((code, by)) => CloseLabels {
                code: code.0.to_string(),
                initiator: by.as_str(),
            },
            None => CloseLabels {
                code: "none".to_owned(),
                initiator: "none",
            },
        };
        self.closes.get_or_create(&labels).inc();
    }

    /// Add messages and bytes a connection has seen since it last did.
    pub fn add_traffic(&self, traffic: ConnectionStats) {
        for (counter, value) in [
            (&self.messages_received, traffic.messages_received),
            (&self.messages_sent, traffic.messages_sent),
            (&self.bytes_received, traffic.bytes_received),
            (&self.bytes_sent, traffic.bytes_sent),
        ] {
            if value > 0 {
                counter.inc_by(value);
            }
        }
    }

    /// An opening handshake was answered with HTTP error `status`.
    pub fn handshake_rejected(&self, status: u16) {
        self.handshakes_rejected
            .get_or_create(&StatusLabel { status })
            .inc();
    }

    /// A guest failed; `kind` is [`crate::session::GuestFailure::kind`].
    pub fn guest_failed(&self, kind: &'static str) {
        self.guest_failures.get_or_create(&KindLabel { kind }).inc();
    }

    /// A guest was instantiated in `took`.
    pub fn guest_instantiated(&self, took: Duration) {
        self.guest_instantiate.observe(took.as_secs_f64());
    }

    /// A guest ran through a whole epoch tick and yields to its neighbours
    /// (at most once a tick per running guest).
    pub fn guest_yielded(&self) {
        self.guest_yields.inc();
    }

    /// A hot swap happened or was refused.
    pub fn guest_swapped(&self, result: SwapResult) {
        self.guest_swaps
            .get_or_create(&ResultLabel {
                result: result.label(),
            })
            .inc();
    }
}

/// Register `metric` as `name` with `help`; returns it (metrics are
/// handles: the registry keeps a clone).
fn register<M: prometheus_client::registry::Metric + Clone>(
    registry: &mut Registry,
    name: &str,
    help: &str,
    metric: M,
) -> M {
    registry.register(name, help, metric.clone());
    metric
}

/// The topic metrics, read from the topics' own counters at each scrape.
struct TopicCollector(Arc<Topics>);

impl std::fmt::Debug for TopicCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TopicCollector")
    }
}

impl Collector for TopicCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        use std::sync::atomic::Ordering::Relaxed;
        let topics = &self.0;
        let count = ConstGauge::new(i64::try_from(topics.topic_count()).unwrap_or(i64::MAX));
        count.encode(encoder.encode_descriptor(
            "wsbox_topics",
            "Topics with at least one subscriber",
            None,
            count.metric_type(),
        )?)?;
        let stats = topics.stats();
        for (name, help, value) in [
            (
                "wsbox_topic_deliveries",
                "Topic messages queued for a subscriber",
                stats.deliveries.load(Relaxed),
            ),
            (
                "wsbox_topic_drops",
                "Topic messages dropped for a subscriber over its backpressure limit",
                stats.drops.load(Relaxed),
            ),
        ] {
            let counter = ConstCounter::new(value);
            counter.encode(encoder.encode_descriptor(
                name,
                help,
                None,
                counter.metric_type(),
            )?)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::topics::TopicsConfig;

    fn metrics() -> Arc<Metrics> {
        Metrics::new(Topics::new(TopicsConfig {
            max_backpressure: 1 << 20,
            close_slow_subscribers: false,
            deflate: crate::protocol::deflate::DeflateConfig::default(),
            broker: None,
        }))
    }

    #[test]
    fn every_metric_of_the_issue_is_exposed() {
        let metrics = metrics();
        metrics.connection_opened();
        metrics.add_traffic(ConnectionStats {
            messages_received: 2,
            bytes_received: 20,
            messages_sent: 3,
            bytes_sent: 30,
        });
        metrics.connection_finished(
            ConnectionStats {
                messages_received: 1,
                ..ConnectionStats::default()
            },
            Some((CloseCode(1000), ClosedBy::Peer)),
        );
        metrics.handshake_rejected(403);
        metrics.guest_failed("cpu");
        metrics.guest_instantiated(Duration::from_micros(50));
        metrics.guest_swapped(SwapResult::Swapped);
        let text = metrics.encode();
        for line in [
            "wsbox_connections_open 0",
            "wsbox_connections_total 1",
            "wsbox_handshakes_rejected_total{status=\"403\"} 1",
            "wsbox_messages_received_total 3",
            "wsbox_messages_sent_total 3",
            "wsbox_bytes_received_total 20",
            "wsbox_bytes_sent_total 30",
            "wsbox_closes_total{code=\"1000\",initiator=\"client\"} 1",
            "wsbox_guest_failures_total{kind=\"cpu\"} 1",
            "wsbox_guest_failures_total{kind=\"trap\"} 0",
            "wsbox_guest_instantiate_seconds_count 1",
            "wsbox_guest_swaps_total{result=\"ok\"} 1",
            "wsbox_guest_swaps_total{result=\"refused\"} 0",
            "wsbox_topics 0",
            "wsbox_topic_deliveries_total 0",
            "wsbox_topic_drops_total 0",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "no line {line:?} in:\n{text}"
            );
        }
        assert!(text.ends_with("# EOF\n"), "{text}");
    }
}
