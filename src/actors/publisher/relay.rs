//! The relay: periodic passes that publish PENDING events from the outbox, oldest first, and
//! the backoff after failures.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use actix::prelude::*;
use chrono::Utc;

use super::delivery::{Produced, produce, record};
use super::{BACKOFF_MAX, BACKOFF_MIN, BrokerState, KafkaPublisher, OutboundEvent, PRUNE_BATCH};
use crate::db::{Db, outbox};
use crate::events::kafka::KafkaSettings;

impl KafkaPublisher {
    /// One relay pass, unless one is running, the pump is busy or the backoff says wait:
    /// publishes the oldest PENDING events (all of them in backlog mode, else those older than
    /// the grace period), or prunes published ones when none are pending.
    pub(super) fn relay(&mut self, ctx: &mut Context<Self>) {
        if self.relaying || self.pumping || Instant::now() < self.next_relay_at {
            return;
        }
        let Some(producer) = self.producer() else {
            self.after_failure();
            return;
        };
        self.relaying = true;
        let backlog = !self.live | self.shared.backlog.swap(false, Ordering::AcqRel);
        let grace = if backlog {
            Duration::ZERO
        } else {
            Duration::from_millis(self.settings.outbox_relay_grace_ms)
        };
        let (db, settings) = (self.db.clone(), self.settings.clone());
        // After a failure the broker may have come back empty (topics gone): create them again.
        let ensure_topics = !self.topics_ready;
        let shared = Arc::clone(&self.shared);
        let metrics = Arc::clone(&self.metrics);
        let scope = self.scope;
        let pass = async move {
            if ensure_topics {
                if let Err(error) = settings.ensure_topics().await {
                    // Not fatal (the topics may exist and creation be forbidden), but the
                    // broker did not answer as it should: say so until a delivery succeeds.
                    tracing::debug!(error = ?error, "creating topics failed");
                    shared.set_broker(BrokerState::Down);
                }
            }
            let cutoff =
                Utc::now().naive_utc() - chrono::Duration::from_std(grace).unwrap_or_default();
            let limit = settings.outbox_relay_batch;
            let rows = db
                .run(move |conn| outbox::pending(conn, cutoff, limit, scope))
                .await?;
            if rows.is_empty() {
                prune_published(&db, &settings).await;
                return Ok::<_, crate::db::DbError>(None);
            }
            let events: Vec<OutboundEvent> = rows.into_iter().map(OutboundEvent::from).collect();
            let produced = produce(&producer, &settings, &events, &metrics).await;
            record(&db, &settings, &produced, &metrics).await?;
            Ok(Some(produced))
        };
        ctx.wait(
            pass.into_actor(self)
                .map(move |outcome, act, ctx| act.relay_finished(outcome, backlog, ctx)),
        );
    }

    /// Takes the outcome of a relay pass: resumes live publishing once the outbox is drained,
    /// looks again at once while it is not, and backs off after a failure.
    fn relay_finished(
        &mut self,
        outcome: Result<Option<Produced>, crate::db::DbError>,
        backlog: bool,
        ctx: &mut Context<Self>,
    ) {
        self.relaying = false;
        self.topics_ready = true; // unless after_failure says otherwise below
        ctx.run_later(Duration::ZERO, Self::pump);
        match outcome {
            Ok(None) => {
                // Drained: resume live publishing unless a hand-off was dropped meanwhile.
                if !self.shared.backlog.load(Ordering::Acquire) {
                    if !self.live {
                        tracing::info!("outbox drained; publishing live");
                    }
                    self.live = true;
                }
                self.backoff = BACKOFF_MIN;
            }
            Ok(Some(produced)) if produced.unreachable => {
                tracing::warn!(
                    delivered = produced.delivered.len(),
                    retry_in_ms = self.backoff.as_millis() as u64,
                    "Kafka unreachable; outbox relay backing off"
                );
                self.live = false;
                self.after_failure();
            }
            Ok(Some(produced)) => {
                // More may be waiting: stay in backlog mode until a pass finds nothing,
                // and look again right away rather than at the next tick.
                self.live = self.live && !backlog;
                self.backoff = BACKOFF_MIN;
                if !produced.delivered.is_empty() {
                    self.shared.set_broker(BrokerState::Up);
                }
                self.next_relay_at = Instant::now();
                ctx.run_later(Duration::ZERO, Self::relay);
            }
            Err(error) => {
                tracing::warn!(error = %error, "outbox relay could not read the outbox");
                self.after_failure();
            }
        }
    }

    /// After failed deliveries: back off, and start over with new topics and a new producer.
    /// A broker that lost its state (restarted with in-memory storage) no longer knows this
    /// idempotent producer's id and refuses it forever; a new producer gets a new id.
    pub(super) fn after_failure(&mut self) {
        self.topics_ready = false;
        self.producer = None;
        self.shared.set_broker(BrokerState::Down);
        self.next_relay_at = Instant::now() + self.backoff;
        self.backoff = (self.backoff * 2).min(BACKOFF_MAX);
    }
}

async fn prune_published(db: &Db, settings: &KafkaSettings) {
    let cutoff = Utc::now().naive_utc()
        - chrono::Duration::from_std(Duration::from_secs(settings.outbox_retention_s))
            .unwrap_or_default();
    if let Err(error) = db
        .run(move |conn| outbox::prune_published(conn, cutoff, PRUNE_BATCH))
        .await
    {
        tracing::warn!(error = %error, "pruning published outbox events failed");
    }
}
