//! What the `payment-engine events ...` commands do: tail the topics, list and re-drive dead
//! events. The commands themselves are parsed in `cli`.

use std::time::{Duration, Instant};

use anyhow::Context;
use diesel::{Connection, MysqlConnection};
use rdkafka::Message;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::Headers;

use crate::db::{DatabaseUrl, outbox};
use crate::events::kafka::KafkaSettings;

/// Prints events from the topics as JSON lines, until Ctrl-C, `max_messages` or `idle_timeout`.
pub async fn tail(
    kafka: &KafkaSettings,
    from_beginning: bool,
    max_messages: Option<u64>,
    idle_timeout: Option<Duration>,
) -> anyhow::Result<()> {
    anyhow::ensure!(
        kafka.enabled(),
        "set KAFKA_BROKERS (or --kafka-brokers) to tail events"
    );
    let group = format!("payment-engine-tail-{}", uuid::Uuid::new_v4());
    let consumer: StreamConsumer = kafka
        .consumer_config(&group, from_beginning)?
        .create()
        .context("creating the Kafka consumer")?;
    let mut topics = vec![kafka.kafka_payment_topic.as_str()];
    if kafka.emit_charge_events {
        topics.push(kafka.kafka_charge_topic.as_str());
    }
    consumer.subscribe(&topics).context("subscribing")?;
    let mut seen = 0u64;
    let mut last = Instant::now();
    loop {
        let wait = idle_timeout.map_or(Duration::from_secs(3600), |t| {
            t.saturating_sub(last.elapsed())
        });
        let message = match tokio::time::timeout(wait, consumer.recv()).await {
            Err(_) if idle_timeout.is_some() => return Ok(()),
            Err(_) => continue,
            Ok(Ok(message)) => message,
            Ok(Err(error)) => {
                // Transient (broker restarting, rebalancing): librdkafka reconnects by itself.
                eprintln!("waiting for the broker: {error}");
                tokio::time::sleep(Duration::from_millis(500)).await;
                continue;
            }
        };
        last = Instant::now();
        let mut headers = serde_json::Map::new();
        if let Some(list) = message.headers() {
            for header in list.iter() {
                let value = header
                    .value
                    .map(|v| String::from_utf8_lossy(v).into_owned());
                headers.insert(header.key.to_owned(), value.into());
            }
        }
        let payload = message.payload().unwrap_or_default();
        let event: serde_json::Value = serde_json::from_slice(payload)
            .unwrap_or_else(|_| String::from_utf8_lossy(payload).into_owned().into());
        let line = serde_json::json!({
            "topic": message.topic(),
            "partition": message.partition(),
            "offset": message.offset(),
            "key": message.key().map(|k| String::from_utf8_lossy(k).into_owned()),
            "headers": headers,
            "event": event,
        });
        println!("{line}");
        seen += 1;
        if max_messages.is_some_and(|max| seen >= max) {
            return Ok(());
        }
    }
}

fn connect(url: &DatabaseUrl) -> anyhow::Result<MysqlConnection> {
    crate::db::run_migrations(url)?;
    MysqlConnection::establish(url.expose_secret()).context("connecting to the database")
}

/// Lists up to `limit` events parked as dead, with their last error (blocking).
pub fn dead(url: &DatabaseUrl, limit: i64) -> anyhow::Result<()> {
    let rows = outbox::dead(&mut connect(url)?, limit)?;
    if rows.is_empty() {
        println!("no dead events");
    }
    for row in rows {
        println!(
            "{}\t{}\tbuyer={}\tattempts={}\toccurred={}\terror={}",
            row.event_id,
            row.event_type,
            row.buyer_id,
            row.attempts,
            row.occurred_at.and_utc().to_rfc3339(),
            row.last_error.unwrap_or_default()
        );
    }
    Ok(())
}

/// Puts dead events back in line for publishing: all, or those of `event_ids` (blocking).
pub fn redrive(url: &DatabaseUrl, event_ids: Option<Vec<String>>) -> anyhow::Result<()> {
    let count = outbox::redrive(&mut connect(url)?, event_ids.as_deref())?;
    println!("{count} dead event(s) put back in line; the running engine's relay publishes them");
    Ok(())
}
