//! The events the publisher produces, built from a just-committed row or one read back from the
//! outbox.

use std::time::Instant;

use chrono::Utc;

use crate::db::models::{NewOutboxEvent, OutboxEventRow};

/// An event ready to produce.
#[derive(Debug, Clone)]
pub struct OutboundEvent {
    pub event_id: String,
    pub event_type: String,
    pub buyer_id: i64,
    pub payload: String,
    /// When its transaction committed (about: for events read back from the outbox, when it
    /// occurred), for the delivery-latency histogram.
    pub committed_at: Instant,
}

/// A just-committed event (the coordinator converts right after the commit).
impl From<NewOutboxEvent> for OutboundEvent {
    fn from(row: NewOutboxEvent) -> Self {
        OutboundEvent {
            event_id: row.event_id,
            event_type: row.event_type,
            buyer_id: row.buyer_id,
            payload: row.payload,
            committed_at: Instant::now(),
        }
    }
}

/// An event read back from the outbox by the relay.
impl From<OutboxEventRow> for OutboundEvent {
    fn from(row: OutboxEventRow) -> Self {
        let age = (Utc::now().naive_utc() - row.occurred_at)
            .to_std()
            .unwrap_or_default();
        let now = Instant::now();
        OutboundEvent {
            event_id: row.event_id,
            event_type: row.event_type,
            buyer_id: row.buyer_id,
            payload: row.payload,
            committed_at: now.checked_sub(age).unwrap_or(now),
        }
    }
}
