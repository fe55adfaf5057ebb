//! The requests simulated clients send: charges, orders, payments (of their own orders, of
//! others', of unknown ones), cancellations and refunds (`lifecycle`), with Idempotency-Keys
//! that are fresh, retried with the same request, or reused for a different one. Every id a
//! request carries (order, payment, refund) comes from a counter, so a seed replays exactly
//! and no two requests share one.

use rand::Rng;
use rand_chacha::ChaCha8Rng;

use super::actor::{Request, RequestId};
use crate::domain::buyer::Command;
use crate::domain::{IdempotencyKey, OrderId, PaymentId, Points, RefundId};

mod lifecycle;

/// Most keyed requests kept for retries.
const RETRYABLE_MAX: usize = 64;

/// What kind of key a request came with, for the fault counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyUse {
    None,
    Fresh,
    /// The same request again with its key (a client retry).
    Retry,
    /// The key of an earlier, different request.
    Reused,
}

#[derive(Debug, Default)]
pub struct Workload {
    next_request: RequestId,
    next_order: i64,
    next_payment: i64,
    next_refund: i64,
    next_key: u64,
    /// Each buyer's orders, by buyer index.
    orders: Vec<Vec<OrderId>>,
    /// Each buyer's payments its client was answered, with their amounts.
    paid: Vec<Vec<(PaymentId, Points)>>,
    /// Each buyer's payments sent, answered or not (one whose COMMIT's answer was lost may
    /// have committed).
    tried: Vec<Vec<PaymentId>>,
    /// The order of each buyer's latest payment request, for a cancellation to race it.
    last_paid: Vec<Option<OrderId>>,
    retryable: Vec<(usize, IdempotencyKey, Command)>,
}

impl Workload {
    pub fn new(buyers: usize) -> Self {
        Workload {
            orders: vec![Vec::new(); buyers],
            paid: vec![Vec::new(); buyers],
            tried: vec![Vec::new(); buyers],
            last_paid: vec![None; buyers],
            ..Workload::default()
        }
    }

    pub fn next_id(&mut self) -> RequestId {
        self.next_request += 1;
        self.next_request
    }

    /// A request of buyer `buyer` (an index), chosen by `rng`.
    pub fn request(&mut self, rng: &mut ChaCha8Rng, buyer: usize) -> (Request, KeyUse) {
        let roll = rng.random_range(0..100);
        if roll < 12 {
            if let Some(request) = self.retry(rng, buyer) {
                return request;
            }
        }
        let command = match rng.random_range(0..100) {
            0..34 => self.charge(rng),
            34..56 => self.create_order(rng, buyer),
            56..80 => self.pay(rng, buyer),
            80..88 => self.cancel(rng, buyer),
            _ => self.refund(rng, buyer),
        };
        let reuse = roll < 16 && !self.retryable.is_empty();
        let (key, used) = match (rng.random_bool(0.4), reuse) {
            (_, true) => {
                let (_, key, _) = &self.retryable[rng.random_range(0..self.retryable.len())];
                (Some(key.clone()), KeyUse::Reused)
            }
            (true, false) if !matches!(command, Command::CreateOrder { .. }) => {
                self.next_key += 1;
                let key = IdempotencyKey::parse(format!("key-{}", self.next_key).as_bytes())
                    .expect("a short ASCII key");
                self.remember(buyer, &key, &command);
                (Some(key), KeyUse::Fresh)
            }
            _ => (None, KeyUse::None),
        };
        let id = self.next_id();
        (Request { id, command, key }, used)
    }

    fn retry(&mut self, rng: &mut ChaCha8Rng, buyer: usize) -> Option<(Request, KeyUse)> {
        let mine: Vec<_> = self
            .retryable
            .iter()
            .filter(|(b, ..)| *b == buyer)
            .collect();
        let (_, key, command) = mine.get(rng.random_range(0..mine.len().max(1)))?;
        let (key, mut command) = (key.clone(), command.clone());
        // A retried payment or refund gets a new id, as the HTTP layer allocates one per
        // request.
        match &mut command {
            Command::Pay { payment_id, .. } => *payment_id = self.payment_id(buyer),
            Command::Refund { refund_id, .. } => *refund_id = self.refund_id(),
            _ => {}
        }
        let id = self.next_id();
        Some((
            Request {
                id,
                command,
                key: Some(key),
            },
            KeyUse::Retry,
        ))
    }

    fn remember(&mut self, buyer: usize, key: &IdempotencyKey, command: &Command) {
        if self.retryable.len() >= RETRYABLE_MAX {
            self.retryable.remove(0);
        }
        self.retryable.push((buyer, key.clone(), command.clone()));
    }

    fn charge(&mut self, rng: &mut ChaCha8Rng) -> Command {
        let amount = match rng.random_bool(0.05) {
            true => rng.random_range(20_000..=60_000),
            false => rng.random_range(1..=3_000),
        };
        Command::Charge {
            amount: Points::new(amount),
        }
    }

    fn create_order(&mut self, rng: &mut ChaCha8Rng, buyer: usize) -> Command {
        self.next_order += 1;
        let order_id = OrderId::try_from(self.next_order).expect("positive");
        self.orders[buyer].push(order_id);
        Command::CreateOrder {
            order_id,
            total_price: Points::new(rng.random_range(1..=4_000)),
        }
    }

    fn pay(&mut self, rng: &mut ChaCha8Rng, buyer: usize) -> Command {
        let others = rng.random_range(0..self.orders.len());
        let order_id = match rng.random_range(0..100) {
            // An order that was never created.
            0..8 => OrderId::try_from(self.next_order + 1_000).ok(),
            8..16 => pick(rng, &self.orders[others]),
            _ => pick(rng, &self.orders[buyer]),
        }
        .unwrap_or(OrderId::try_from(1).expect("positive"));
        self.last_paid[buyer] = Some(order_id);
        Command::Pay {
            order_id,
            payment_id: self.payment_id(buyer),
        }
    }

    /// A new payment id for a payment request of `buyer`.
    fn payment_id(&mut self, buyer: usize) -> PaymentId {
        self.next_payment += 1;
        let payment_id = PaymentId::try_from(self.next_payment).expect("positive");
        self.tried[buyer].push(payment_id);
        payment_id
    }

    fn refund_id(&mut self) -> RefundId {
        self.next_refund += 1;
        RefundId::try_from(self.next_refund).expect("positive")
    }
}

/// One of the most recent items, mostly (an old one now and then).
fn pick<T: Copy>(rng: &mut ChaCha8Rng, items: &[T]) -> Option<T> {
    let recent = items.len().saturating_sub(6);
    let from = if rng.random_bool(0.8) { recent } else { 0 };
    (from < items.len()).then(|| items[rng.random_range(from..items.len())])
}
