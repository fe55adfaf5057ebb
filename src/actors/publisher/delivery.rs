//! Producing events to Kafka, classifying the broker's answers, and recording the outcome in
//! the outbox.

use chrono::Utc;
use futures::future::join_all;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};

use super::OutboundEvent;
use crate::db::{Db, outbox};
use crate::events::kafka::KafkaSettings;
use crate::metrics::Metrics;

/// The outcome of producing a list of events.
#[derive(Default)]
pub(super) struct Produced {
    pub(super) delivered: Vec<String>,
    /// Refused for reasons of the event itself: (event id, error).
    pub(super) refused: Vec<(String, String)>,
    /// The broker could not be reached (or the producer is broken).
    pub(super) unreachable: bool,
}

/// Produces `events` in order and waits for every acknowledgement.
pub(super) async fn produce(
    producer: &FutureProducer,
    settings: &KafkaSettings,
    events: &[OutboundEvent],
    metrics: &Metrics,
) -> Produced {
    let mut deliveries = Vec::with_capacity(events.len());
    for event in events {
        let key = event.buyer_id.to_string();
        let headers = OwnedHeaders::new()
            .insert(Header {
                key: "event-id",
                value: Some(event.event_id.as_str()),
            })
            .insert(Header {
                key: "event-type",
                value: Some(event.event_type.as_str()),
            })
            .insert(Header {
                key: "schema-version",
                value: Some("1"),
            });
        let record = FutureRecord::to(settings.topic_for(&event.event_type))
            .key(&key)
            .payload(&event.payload)
            .headers(headers);
        let delivery = producer.send_result(record).map_err(|(error, _)| error);
        if delivery.is_ok() {
            metrics.events.produced.inc();
        }
        deliveries.push(delivery);
    }
    let mut produced = Produced::default();
    let waits = deliveries.into_iter().map(|delivery| async move {
        match delivery {
            Ok(future) => match future.await {
                Ok(Ok(_)) => Ok(()),
                Ok(Err((error, _))) => Err(error),
                Err(_canceled) => Err(KafkaError::Canceled),
            },
            Err(error) => Err(error),
        }
    });
    for (event, outcome) in events.iter().zip(join_all(waits).await) {
        match outcome {
            Ok(()) => {
                metrics.events.delivered.inc();
                metrics
                    .events
                    .delivery_latency
                    .observe(event.committed_at.elapsed().as_secs_f64());
                produced.delivered.push(event.event_id.clone());
            }
            Err(error) if is_unreachable(&error) => {
                metrics.events.failed.inc();
                produced.unreachable = true;
            }
            Err(error) => {
                metrics.events.failed.inc();
                produced
                    .refused
                    .push((event.event_id.clone(), error.to_string()));
            }
        }
    }
    produced
}

/// Errors that say nothing about the event itself: the broker is away or overloaded.
fn is_unreachable(error: &KafkaError) -> bool {
    use RDKafkaErrorCode as C;
    match error.rdkafka_error_code() {
        Some(
            C::MessageTimedOut
            | C::AllBrokersDown
            | C::BrokerTransportFailure
            | C::BrokerNotAvailable
            | C::QueueFull
            | C::RequestTimedOut
            | C::NetworkException
            | C::NotEnoughReplicas
            | C::NotEnoughReplicasAfterAppend
            | C::LeaderNotAvailable
            | C::NotLeaderForPartition
            | C::UnknownTopicOrPartition
            | C::Fatal
            | C::OutOfOrderSequenceNumber
            | C::UnknownProducerId
            | C::InvalidProducerEpoch
            | C::BrokerDestroy,
        ) => true,
        Some(_) => false,
        None => true,
    }
}

/// Marks delivered events published and counts the refused ones' attempts.
pub(super) async fn record(
    db: &Db,
    settings: &KafkaSettings,
    produced: &Produced,
    metrics: &Metrics,
) -> Result<(), crate::db::DbError> {
    let delivered = produced.delivered.clone();
    let refused = produced.refused.clone();
    let max_attempts = settings.outbox_max_attempts;
    for (event_id, error) in &refused {
        tracing::warn!(event_id = %event_id, error = %error, "event refused by the broker");
    }
    let dead = db
        .run(move |conn| {
            outbox::mark_published(conn, &delivered, Utc::now().naive_utc())?;
            let mut dead = 0;
            for (event_id, error) in &refused {
                if outbox::record_failure(conn, event_id, error, max_attempts)? {
                    tracing::error!(event_id = %event_id, error = %error, "event parked as DEAD");
                    dead += 1;
                }
            }
            Ok(dead)
        })
        .await?;
    metrics.events.dead.inc_by(dead);
    Ok(())
}
