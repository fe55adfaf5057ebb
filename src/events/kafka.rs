//! Kafka client settings and topic management.

use std::time::Duration;

use anyhow::Context;
use clap::Args;
use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::types::RDKafkaErrorCode;

use super::POINTS_CHARGED;

#[derive(Debug, Clone, Args)]
pub struct KafkaSettings {
    /// Kafka bootstrap servers (host:port,...). Empty: no broker; events stay in the outbox.
    #[arg(long, env = "KAFKA_BROKERS", global = true, default_value = "")]
    pub kafka_brokers: String,

    /// Topic of `payment.completed` events.
    #[arg(
        long,
        env = "KAFKA_PAYMENT_TOPIC",
        global = true,
        default_value = "payment.completed"
    )]
    pub kafka_payment_topic: String,

    /// Topic of `points.charged` events.
    #[arg(
        long,
        env = "KAFKA_CHARGE_TOPIC",
        global = true,
        default_value = "points.charged"
    )]
    pub kafka_charge_topic: String,

    /// Also emit a `points.charged` event for every charge.
    #[arg(
        long,
        env = "EMIT_CHARGE_EVENTS",
        global = true,
        default_value_t = false
    )]
    pub emit_charge_events: bool,

    /// Partitions of the topics the engine creates when they are missing.
    #[arg(
        long,
        env = "KAFKA_TOPIC_PARTITIONS",
        global = true,
        default_value_t = 3
    )]
    pub kafka_topic_partitions: i32,

    /// Replication factor of the topics the engine creates.
    #[arg(
        long,
        env = "KAFKA_TOPIC_REPLICATION",
        global = true,
        default_value_t = 1
    )]
    pub kafka_topic_replication: i32,

    /// Producer compression: none, gzip, snappy, lz4 or zstd. Events are a few hundred bytes
    /// and the broker shares the engine's cores in the measured setup, where lz4 cost 14 points
    /// of payment throughput (BENCHMARKS.md); choose lz4 or zstd where bandwidth is scarcer.
    #[arg(long, env = "KAFKA_COMPRESSION", global = true, default_value = "none")]
    pub kafka_compression: String,

    /// How long the producer waits to fill a batch: fewer, larger produce requests (and
    /// outbox updates) per second under load, at that much delivery latency.
    #[arg(long, env = "KAFKA_LINGER_MS", global = true, default_value_t = 25)]
    pub kafka_linger_ms: u32,

    /// Most messages in one producer batch.
    #[arg(
        long,
        env = "KAFKA_BATCH_NUM_MESSAGES",
        global = true,
        default_value_t = 10_000
    )]
    pub kafka_batch_num_messages: u32,

    /// How long a message may wait for delivery (retries included) before it counts as failed.
    #[arg(
        long,
        env = "KAFKA_MESSAGE_TIMEOUT_MS",
        global = true,
        default_value_t = 10_000
    )]
    pub kafka_message_timeout_ms: u32,

    /// Extra librdkafka properties, `key=value` separated by commas (e.g. security settings).
    #[arg(long, env = "KAFKA_CLIENT_CONFIG", global = true, default_value = "")]
    pub kafka_client_config: String,

    /// How often the relay looks for undelivered outbox events.
    #[arg(
        long,
        env = "OUTBOX_RELAY_INTERVAL_MS",
        global = true,
        default_value_t = 1000
    )]
    pub outbox_relay_interval_ms: u64,

    /// Age after which the relay takes over an event the live path has not delivered.
    #[arg(
        long,
        env = "OUTBOX_RELAY_GRACE_MS",
        global = true,
        default_value_t = 3000
    )]
    pub outbox_relay_grace_ms: u64,

    /// Most events the relay publishes per round.
    #[arg(
        long,
        env = "OUTBOX_RELAY_BATCH",
        global = true,
        default_value_t = 1000
    )]
    pub outbox_relay_batch: i64,

    /// Failed deliveries of one event (for reasons of that event, not broker outages) before
    /// it is parked as dead.
    #[arg(long, env = "OUTBOX_MAX_ATTEMPTS", global = true, default_value_t = 5)]
    pub outbox_max_attempts: i32,

    /// How long published events stay in the outbox table.
    #[arg(long, env = "OUTBOX_RETENTION_S", global = true, default_value_t = 7 * 86_400)]
    pub outbox_retention_s: u64,

    /// Most hand-offs queued for the publisher (beyond it the relay delivers them).
    #[arg(
        long,
        env = "PUBLISHER_MAILBOX_CAPACITY",
        global = true,
        default_value_t = 256
    )]
    pub publisher_mailbox_capacity: usize,
}

impl KafkaSettings {
    pub fn enabled(&self) -> bool {
        !self.kafka_brokers.trim().is_empty()
    }

    /// The topic an event type goes to.
    pub fn topic_for(&self, event_type: &str) -> &str {
        match event_type {
            POINTS_CHARGED => &self.kafka_charge_topic,
            _ => &self.kafka_payment_topic,
        }
    }

    fn base_config(&self) -> anyhow::Result<ClientConfig> {
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", self.kafka_brokers.trim())
            .set("client.id", "payment-engine");
        for pair in self
            .kafka_client_config
            .split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
        {
            let (key, value) = pair
                .split_once('=')
                .with_context(|| format!("KAFKA_CLIENT_CONFIG entry `{pair}` is not key=value"))?;
            config.set(key.trim(), value.trim());
        }
        Ok(config)
    }

    /// The idempotent producer's configuration.
    pub fn producer_config(&self) -> anyhow::Result<ClientConfig> {
        let mut config = self.base_config()?;
        config
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("compression.type", &self.kafka_compression)
            .set("linger.ms", self.kafka_linger_ms.to_string())
            .set(
                "batch.num.messages",
                self.kafka_batch_num_messages.to_string(),
            )
            .set(
                "message.timeout.ms",
                self.kafka_message_timeout_ms.to_string(),
            );
        Ok(config)
    }

    /// A consumer's configuration (for `events tail` and tests).
    pub fn consumer_config(
        &self,
        group_id: &str,
        from_beginning: bool,
    ) -> anyhow::Result<ClientConfig> {
        let mut config = self.base_config()?;
        config
            .set("group.id", group_id)
            .set("enable.auto.commit", "false")
            .set(
                "auto.offset.reset",
                if from_beginning { "earliest" } else { "latest" },
            );
        Ok(config)
    }

    /// Creates the topics if missing; an existing topic is fine.
    pub async fn ensure_topics(&self) -> anyhow::Result<()> {
        let admin: AdminClient<DefaultClientContext> = self
            .base_config()?
            .create()
            .context("creating the Kafka admin client")?;
        let mut topics = vec![self.kafka_payment_topic.as_str()];
        if self.emit_charge_events {
            topics.push(self.kafka_charge_topic.as_str());
        }
        let new_topics: Vec<NewTopic> = topics
            .iter()
            .map(|name| {
                let replication = TopicReplication::Fixed(self.kafka_topic_replication);
                NewTopic::new(name, self.kafka_topic_partitions, replication)
            })
            .collect();
        // Bounded like a delivery: an unreachable broker must not hold the publisher for
        // librdkafka's default request timeout (60 s).
        let timeout = Duration::from_millis(u64::from(self.kafka_message_timeout_ms));
        let options = AdminOptions::new()
            .operation_timeout(Some(timeout))
            .request_timeout(Some(timeout));
        let results = tokio::time::timeout(timeout, admin.create_topics(&new_topics, &options))
            .await
            .context("creating topics timed out")?
            .context("creating topics")?;
        for result in results {
            match result {
                Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                Err((topic, code)) => anyhow::bail!("creating topic {topic}: {code}"),
            }
        }
        Ok(())
    }
}
