//! The Redis backend (`redis://`): PUBLISH over a multiplexed connection,
//! pipelined per batch; SUBSCRIBE on a RESP2 pub/sub connection of its own.
//!
//! Redis pub/sub is fire-and-forget: a host that is not subscribed when a
//! message is published never gets it, and Redis itself drops a subscriber
//! whose output buffer grows past `client-output-buffer-limit pubsub`
//! (the link then reconnects and says so in the log).

use std::fmt;
use std::io::Write as _;

use ::redis::aio::{MultiplexedConnection, PubSubSink, PubSubStream};
use ::redis::{AsyncConnectionConfig, Client, RedisWrite, ToRedisArgs, Value};
use async_trait::async_trait;
use bytes::Bytes;
use futures_util::StreamExt as _;

use super::{
    Backend, BrokerError, BrokerUrlError, Inbound, Outbound, Publisher, REPLY_TIMEOUT, Subscriber,
    envelope, hide_password,
};

/// A parsed `redis://` URL.
#[derive(Clone)]
pub struct RedisUrl {
    client: Client,
}

impl RedisUrl {
    /// Parse `redis://[[USER]:PASSWORD@]HOST[:PORT][/DB]`.
    pub fn parse(text: &str) -> Result<Self, BrokerUrlError> {
        let client = Client::open(text).map_err(|error| BrokerUrlError::Malformed {
            url: hide_password(text),
            reason: error.to_string(),
        })?;
        Ok(Self { client })
    }
}

/// `redis://HOST:PORT[/DB]`, without the password.
impl fmt::Display for RedisUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let info = self.client.get_connection_info();
        write!(f, "redis://{}", info.addr())?;
        match info.redis_settings().db() {
            0 => Ok(()),
            db => write!(f, "/{db}"),
        }
    }
}

/// Connections to one Redis server.
pub struct RedisBackend {
    url: RedisUrl,
}

impl RedisBackend {
    /// A backend for `url`; connects on demand.
    pub fn new(url: RedisUrl) -> Self {
        Self { url }
    }
}

#[async_trait]
impl Backend for RedisBackend {
    async fn publisher(&self) -> Result<Box<dyn Publisher>, BrokerError> {
        // The link times out connecting and replies itself; these bound the
        // crate's own waits the same way.
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(super::CONNECT_TIMEOUT))
            .set_response_timeout(Some(REPLY_TIMEOUT));
        let conn = self
            .url
            .client
            .get_multiplexed_async_connection_with_config(&config)
            .await?;
        Ok(Box::new(RedisPublisher { conn }))
    }

    async fn subscriber(&self) -> Result<Box<dyn Subscriber>, BrokerError> {
        let (sink, stream) = self.url.client.get_async_pubsub().await?.split();
        Ok(Box::new(RedisSubscriber { sink, stream }))
    }
}

struct RedisPublisher {
    conn: MultiplexedConnection,
}

/// An envelope as one Redis argument, written straight into the command
/// buffer (no envelope copy of the payload).
struct EnvelopeArg<'a> {
    host: u64,
    message: &'a Outbound,
}

impl ToRedisArgs for EnvelopeArg<'_> {
    fn write_redis_args<W: ?Sized + RedisWrite>(&self, out: &mut W) {
        let header = envelope::header(self.host, self.message.publisher, self.message.text);
        let mut arg = out.writer_for_next_arg();
        // Writing into the command's own buffer cannot fail.
        let _ = arg.write_all(&header);
        let _ = arg.write_all(&self.message.payload);
    }
}

#[async_trait]
impl Publisher for RedisPublisher {
    async fn publish(&mut self, host: u64, batch: &[Outbound]) -> Result<(), BrokerError> {
        let mut pipe = ::redis::pipe();
        for message in batch {
            pipe.cmd("PUBLISH")
                .arg(message.channel())
                .arg(EnvelopeArg { host, message })
                .ignore();
        }
        pipe.exec_async(&mut self.conn).await?;
        Ok(())
    }
}

struct RedisSubscriber {
    sink: PubSubSink,
    stream: PubSubStream,
}

#[async_trait]
impl Subscriber for RedisSubscriber {
    async fn subscribe(&mut self, channels: &[String]) -> Result<(), BrokerError> {
        Ok(self.sink.subscribe(channels).await?)
    }

    async fn unsubscribe(&mut self, channels: &[String]) -> Result<(), BrokerError> {
        Ok(self.sink.unsubscribe(channels).await?)
    }

    async fn next_message(&mut self) -> Result<Inbound, BrokerError> {
        let message = self.stream.next().await.ok_or(BrokerError::Closed)?;
        Ok(Inbound {
            channel: message.get_channel_name().to_owned(),
            payload: Bytes::copy_from_slice(message.get_payload_bytes()),
        })
    }

    async fn ping(&mut self) -> Result<(), BrokerError> {
        self.sink.ping::<Value>().await?;
        Ok(())
    }
}
