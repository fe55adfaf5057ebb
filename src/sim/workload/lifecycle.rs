//! The requests of an order's and a payment's later life: cancellations (of the buyer's
//! orders, often the one it is paying right now, of another buyer's, of unknown ones) and
//! refunds (of the payments its client was answered, of ones it never heard back about, of
//! another buyer's, of unknown ones; all that is left, part of it, or more than is left).

use rand::Rng;
use rand_chacha::ChaCha8Rng;

use super::{Workload, pick};
use crate::domain::buyer::{Command, Receipt};
use crate::domain::{OrderId, PaymentId, Points};
use crate::sim::actor::Response;

/// Reasons a client gives for a refund: few, so that a retry and a reuse of its key meet the
/// same fingerprint now and then.
const REASONS: [&str; 2] = ["damaged in transit", "ordered twice"];

/// A guess at an amount when the client never learnt the payment's: the orders' prices.
const PRICE_GUESS: i64 = 4_000;

impl Workload {
    /// A cancellation, racing the buyer's latest payment a third of the time.
    pub(super) fn cancel(&mut self, rng: &mut ChaCha8Rng, buyer: usize) -> Command {
        let others = rng.random_range(0..self.orders.len());
        let order_id = match rng.random_range(0..100) {
            0..8 => OrderId::try_from(self.next_order + 1_000).ok(),
            8..16 => pick(rng, &self.orders[others]),
            16..50 => self.last_paid[buyer],
            _ => pick(rng, &self.orders[buyer]),
        }
        .unwrap_or(OrderId::try_from(1).expect("positive"));
        Command::Cancel { order_id }
    }

    /// A refund of one of the buyer's payments (mostly one it was answered for), of all that
    /// is left, of part of it, or of more than it is.
    pub(super) fn refund(&mut self, rng: &mut ChaCha8Rng, buyer: usize) -> Command {
        let others = rng.random_range(0..self.paid.len());
        let payment = match rng.random_range(0..100) {
            // A payment that was never made.
            0..6 => PaymentId::try_from(self.next_payment + 1_000)
                .ok()
                .map(|id| (id, None)),
            6..14 => pick(rng, &self.paid[others]).map(|(id, amount)| (id, Some(amount))),
            14..26 => pick(rng, &self.tried[buyer]).map(|id| (id, None)),
            _ => pick(rng, &self.paid[buyer]).map(|(id, amount)| (id, Some(amount))),
        };
        let (payment_id, known) =
            payment.unwrap_or((PaymentId::try_from(1).expect("positive"), None));
        let total = known.map_or(PRICE_GUESS, Points::get);
        let amount = match rng.random_range(0..100) {
            0..35 => None,
            35..60 => Some(rng.random_range(1..=(total + 2) / 3)),
            60..85 => Some(rng.random_range(1..=total)),
            _ => Some(rng.random_range(total + 1..=total * 2)),
        };
        let reason = rng
            .random_bool(0.3)
            .then(|| REASONS[rng.random_range(0..REASONS.len())].to_owned());
        Command::Refund {
            payment_id,
            refund_id: self.refund_id(),
            amount: amount.map(Points::new),
            reason,
        }
    }

    /// Buyer `buyer`'s client is answered `response`: a payment's receipt tells it the
    /// payment's id and amount, to refund it later.
    pub fn learn(&mut self, buyer: usize, response: &Response) {
        if let Response::Receipt(Receipt::Paid(payment)) = response {
            self.paid[buyer].push((payment.payment_id, payment.amount));
        }
    }
}
