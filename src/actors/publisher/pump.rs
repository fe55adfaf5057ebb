//! The live path: hand-offs queued in commit order and published in coalesced batches.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use actix::prelude::*;

use super::delivery::{produce, record};
use super::{BrokerState, HandOff, KafkaPublisher, PUMP_MAX_EVENTS};
use crate::metrics::Outcome;

impl Handler<HandOff> for KafkaPublisher {
    type Result = ();

    fn handle(&mut self, message: HandOff, ctx: &mut Context<Self>) {
        if !self.live || self.shared.backlog.load(Ordering::Acquire) {
            // The relay delivers these from the outbox, in order: not delivered live.
            message.permit.start().finish(Outcome::Failed);
            return;
        }
        self.queued.push_back(message);
        self.pump(ctx);
    }
}

impl KafkaPublisher {
    /// Publishes everything handed off so far in one go (in commit order), then again while
    /// more arrived meanwhile: under load, hand-offs coalesce into larger producer batches.
    pub(super) fn pump(&mut self, ctx: &mut Context<Self>) {
        if self.pumping || self.relaying || self.queued.is_empty() {
            self.wake_idle_waiters();
            return;
        }
        let Some(producer) = self.producer() else {
            self.fall_back_to_relay();
            return;
        };
        let mut taken = Vec::new();
        let mut events = Vec::new();
        while let Some(hand_off) = self.queued.pop_front() {
            events.extend(hand_off.events.iter().cloned());
            let handling = hand_off.permit.start();
            taken.push((hand_off, handling));
            if events.len() >= PUMP_MAX_EVENTS {
                break;
            }
        }
        self.pumping = true;
        let (db, settings) = (self.db.clone(), self.settings.clone());
        let metrics = Arc::clone(&self.metrics);
        let publish = async move {
            let produced = produce(&producer, &settings, &events, &metrics).await;
            let recorded = record(&db, &settings, &produced, &metrics).await;
            (produced, recorded)
        };
        ctx.spawn(publish.into_actor(self).map(move |(produced, recorded), act, ctx| {
            let outcome = if produced.unreachable || !produced.refused.is_empty() {
                Outcome::Failed
            } else {
                Outcome::Ok
            };
            for (hand_off, handling) in taken {
                handling.finish(outcome);
                drop(hand_off); // frees the mailbox slot
            }
            act.pumping = false;
            if let Err(error) = recorded {
                tracing::warn!(error = %error, "marking events published failed; they will be published again");
            }
            if produced.unreachable || !produced.refused.is_empty() {
                if produced.unreachable {
                    tracing::warn!("Kafka unreachable; events wait in the outbox");
                    act.after_failure();
                }
                act.fall_back_to_relay();
            } else {
                if !produced.delivered.is_empty() {
                    act.shared.set_broker(BrokerState::Up);
                }
                act.pump(ctx);
            }
        }));
    }

    /// Stops live publishing: queued hand-offs are dropped (their events are in the outbox)
    /// and the relay drains the outbox in order.
    fn fall_back_to_relay(&mut self) {
        self.live = false;
        for hand_off in self.queued.drain(..) {
            hand_off.permit.start().finish(Outcome::Failed);
        }
        self.wake_idle_waiters();
    }

    pub(super) fn wake_idle_waiters(&mut self) {
        if !self.pumping && self.queued.is_empty() {
            for waiter in self.idle_waiters.drain(..) {
                let _ = waiter.send(());
            }
        }
    }
}
