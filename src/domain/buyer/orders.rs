//! What a buyer's state knows of that buyer's orders.

use std::collections::{HashMap, HashSet};

use super::super::{OrderId, Points};

/// Most orders a buyer's state remembers once their outcome is durable; past it they are
/// forgotten and read again from the database when needed.
pub const KNOWN_ORDERS_MAX: usize = 4096;

/// An order as read from the database (or learnt from a committed write).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KnownOrder {
    Payable(Points),
    /// Paid, and perhaps refunded since: never paid or cancelled again.
    Paid,
    Cancelled,
    /// Missing, or another buyer's: both answer 404.
    NotOurs,
}

/// What the state knows of one order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lookup {
    Known(KnownOrder),
    /// A payment or a cancellation of it is committing.
    Settling,
    Unknown,
}

/// What the state knows of this buyer's orders.
#[derive(Debug, Default, Clone)]
pub struct OrderBook {
    creating: HashMap<OrderId, Points>,
    /// Orders with a payment or a cancellation committing.
    settling: HashSet<OrderId>,
    known: HashMap<OrderId, KnownOrder>,
}

impl OrderBook {
    pub fn lookup(&self, order_id: OrderId) -> Lookup {
        if self.settling.contains(&order_id) {
            Lookup::Settling
        } else if let Some(&total) = self.creating.get(&order_id) {
            Lookup::Known(KnownOrder::Payable(total))
        } else if let Some(&known) = self.known.get(&order_id) {
            Lookup::Known(known)
        } else {
            Lookup::Unknown
        }
    }

    /// Whether a creation, a payment or a cancellation of the order is committing.
    pub fn in_flight(&self, order_id: OrderId) -> bool {
        self.settling.contains(&order_id) || self.creating.contains_key(&order_id)
    }

    pub fn remember(&mut self, order_id: OrderId, known: KnownOrder) {
        if self.known.len() >= KNOWN_ORDERS_MAX {
            self.known.clear();
        }
        self.known.insert(order_id, known);
    }

    /// A payment or a cancellation of the order is committing: until it settles, other
    /// requests for the order wait for its outcome.
    pub fn start_settling(&mut self, order_id: OrderId) {
        self.known.remove(&order_id);
        self.settling.insert(order_id);
    }

    /// A payment or cancellation of the order settled, making it `outcome` if it committed.
    /// One that did not commit may still have (its COMMIT's answer lost), or the order may have
    /// been paid elsewhere: what was known of the order, even from a creation that settled
    /// meanwhile, is forgotten and read again when needed.
    pub fn finish_settling(&mut self, order_id: OrderId, outcome: Option<KnownOrder>) {
        self.settling.remove(&order_id);
        match outcome {
            Some(known) => self.remember(order_id, known),
            None => {
                self.known.remove(&order_id);
            }
        }
    }

    pub fn start_creation(&mut self, order_id: OrderId, total_price: Points) {
        self.creating.insert(order_id, total_price);
    }

    pub fn finish_creation(&mut self, order_id: OrderId, total_price: Points, committed: bool) {
        self.creating.remove(&order_id);
        if committed {
            self.remember(order_id, KnownOrder::Payable(total_price));
        }
    }

    /// Forgets what was learnt from the database: after a failed write it may be stale.
    pub fn forget_known(&mut self) {
        self.known.clear();
    }
}
