//! `payment-engine events ...`: tail the topics, list and re-drive dead events.

use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Subcommand;
use diesel::{Connection, MysqlConnection};
use rdkafka::Message;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::Headers;

use crate::cli::blocking;
use crate::config::Settings;
use crate::db::outbox;

#[derive(Debug, Clone, Subcommand)]
pub enum EventsCommand {
    /// Print events from the topics as JSON lines (one per message), until Ctrl-C.
    Tail {
        /// Start from the oldest retained message instead of new ones.
        #[arg(long)]
        from_beginning: bool,
        /// Stop after this many messages.
        #[arg(long)]
        max_messages: Option<u64>,
        /// Stop when no message arrived for this long.
        #[arg(long)]
        idle_timeout_s: Option<u64>,
    },
    /// List events parked as dead, with their last error.
    Dead {
        #[arg(long, default_value_t = 100)]
        limit: i64,
    },
    /// Put dead events back in line for publishing (all, or the given event ids).
    Redrive {
        #[arg(long, conflicts_with = "event_ids")]
        all: bool,
        event_ids: Vec<String>,
    },
}

pub async fn run(settings: Settings, command: EventsCommand) -> anyhow::Result<()> {
    match command {
        EventsCommand::Tail {
            from_beginning,
            max_messages,
            idle_timeout_s,
        } => {
            tail(
                &settings,
                from_beginning,
                max_messages,
                idle_timeout_s.map(Duration::from_secs),
            )
            .await
        }
        EventsCommand::Dead { limit } => blocking(move || dead(&settings, limit)).await,
        EventsCommand::Redrive { all, event_ids } => {
            if !all && event_ids.is_empty() {
                anyhow::bail!("name event ids to re-drive, or pass --all");
            }
            blocking(move || redrive(&settings, (!all).then_some(event_ids))).await
        }
    }
}

async fn tail(
    settings: &Settings,
    from_beginning: bool,
    max_messages: Option<u64>,
    idle_timeout: Option<Duration>,
) -> anyhow::Result<()> {
    let kafka = &settings.kafka;
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

fn connect(settings: &Settings) -> anyhow::Result<MysqlConnection> {
    crate::db::run_migrations(&settings.database_url)?;
    MysqlConnection::establish(settings.database_url.expose_secret())
        .context("connecting to the database")
}

fn dead(settings: &Settings, limit: i64) -> anyhow::Result<()> {
    let rows = outbox::dead(&mut connect(settings)?, limit)?;
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

fn redrive(settings: &Settings, event_ids: Option<Vec<String>>) -> anyhow::Result<()> {
    let count = outbox::redrive(&mut connect(settings)?, event_ids.as_deref())?;
    println!("{count} dead event(s) put back in line; the running engine's relay publishes them");
    Ok(())
}
