//! What a buyer's state knows of that buyer's payments: how much of each is left to refund.

use std::collections::HashMap;

use super::super::{OrderId, PaymentId, Points};

/// Most payments a buyer's state remembers with no refund in flight; past it they are
/// forgotten and read again from the database when needed.
pub const KNOWN_PAYMENTS_MAX: usize = 1024;

/// A payment as read from the database (or as refunds committing leave it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KnownPayment {
    Refundable {
        order_id: OrderId,
        amount: Points,
        /// Refunded so far, refunds in flight included.
        refunded: Points,
    },
    /// Missing, or another buyer's: both answer 404.
    NotOurs,
}

/// What the state knows of one payment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PaymentLookup {
    Known(KnownPayment),
    /// Refunds of it are in flight, but what it was refunded to is no longer known (one of
    /// them failed): the later ones fail too, and the payment is read again after them.
    Unsettled,
    Unknown,
}

/// A buyer's payments with refunds: those in flight count until they settle.
#[derive(Debug, Default, Clone)]
pub struct PaymentBook {
    known: HashMap<PaymentId, KnownPayment>,
    /// Refunds in flight per payment.
    refunding: HashMap<PaymentId, usize>,
}

impl PaymentBook {
    pub fn lookup(&self, payment_id: PaymentId) -> PaymentLookup {
        match self.known.get(&payment_id) {
            Some(&known) => PaymentLookup::Known(known),
            None if self.in_flight(payment_id) => PaymentLookup::Unsettled,
            None => PaymentLookup::Unknown,
        }
    }

    /// Whether refunds of the payment are committing.
    pub fn in_flight(&self, payment_id: PaymentId) -> bool {
        self.refunding.contains_key(&payment_id)
    }

    /// Takes a payment as read from the database. A payment with refunds in flight keeps what
    /// they have made of it (the row read is older).
    pub fn remember(&mut self, payment_id: PaymentId, known: KnownPayment) {
        if self.in_flight(payment_id) {
            return;
        }
        if self.known.len() >= KNOWN_PAYMENTS_MAX {
            let refunding = &self.refunding;
            self.known.retain(|id, _| refunding.contains_key(id));
        }
        self.known.insert(payment_id, known);
    }

    /// A refund of `amount` is committing: it counts as refunded until it settles.
    pub fn start_refund(&mut self, payment_id: PaymentId, amount: Points) {
        *self.refunding.entry(payment_id).or_default() += 1;
        if let Some(KnownPayment::Refundable { refunded, .. }) = self.known.get_mut(&payment_id) {
            *refunded = refunded
                .checked_add(amount)
                .expect("a refund decided within the payment's amount");
        }
    }

    /// A refund settled. One that did not commit leaves the payment unknown: it may still have
    /// committed (its COMMIT's answer lost), and every later refund of it was fenced on it.
    pub fn finish_refund(&mut self, payment_id: PaymentId, committed: bool) {
        if let Some(count) = self.refunding.get_mut(&payment_id) {
            *count -= 1;
            if *count == 0 {
                self.refunding.remove(&payment_id);
            }
        }
        if !committed {
            self.known.remove(&payment_id);
        }
    }

    /// Forgets what was read from the database (it may be stale), keeping the payments with
    /// refunds in flight.
    pub fn forget_known(&mut self) {
        let refunding = &self.refunding;
        self.known.retain(|id, _| refunding.contains_key(id));
    }
}
