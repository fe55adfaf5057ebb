//! What a buyer's actor knows of that buyer's orders.

use std::collections::HashMap;

use futures::future::{BoxFuture, Shared};

use crate::db::models::OrderRow;
use crate::domain::{BuyerId, OrderId, OrderStatus, Points};

/// Most orders a buyer's actor remembers once their outcome is durable; past it they are
/// forgotten and read again from the database when needed.
const KNOWN_ORDERS_MAX: usize = 4096;

#[derive(Debug, Clone, Copy)]
pub(super) enum KnownOrder {
    Payable(Points),
    Paid,
    /// Missing, or another buyer's: both answer 404.
    NotOurs,
}

/// What the actor knows of this buyer's orders.
#[derive(Default)]
pub(super) struct OrderBook {
    pub(super) creating: HashMap<OrderId, Points>,
    pub(super) paying: HashMap<OrderId, Shared<BoxFuture<'static, bool>>>,
    pub(super) known: HashMap<OrderId, KnownOrder>,
}

pub(super) enum Lookup {
    Known(KnownOrder),
    Paying(Shared<BoxFuture<'static, bool>>),
    Unknown,
}

impl OrderBook {
    pub(super) fn lookup(&self, order_id: OrderId) -> Lookup {
        if let Some(paying) = self.paying.get(&order_id) {
            Lookup::Paying(paying.clone())
        } else if let Some(&total) = self.creating.get(&order_id) {
            Lookup::Known(KnownOrder::Payable(total))
        } else if let Some(&known) = self.known.get(&order_id) {
            Lookup::Known(known)
        } else {
            Lookup::Unknown
        }
    }

    pub(super) fn remember(&mut self, order_id: OrderId, known: KnownOrder) {
        if self.known.len() >= KNOWN_ORDERS_MAX {
            self.known.clear();
        }
        self.known.insert(order_id, known);
    }

    pub(super) fn remember_row(
        &mut self,
        buyer: BuyerId,
        order_id: OrderId,
        row: Option<OrderRow>,
    ) {
        let known = match row {
            Some(row) if row.buyer_id == buyer.get() => match row.status {
                OrderStatus::Pending => KnownOrder::Payable(Points::new(row.total_price)),
                _ => KnownOrder::Paid,
            },
            _ => KnownOrder::NotOurs,
        };
        self.remember(order_id, known);
    }
}
