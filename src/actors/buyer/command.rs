use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use actix::prelude::*;
use futures::future::BoxFuture;

use crate::actors::errors::{BuyerError, Receipt};
use crate::actors::mailbox::Permit;
use crate::domain::{BuyerId, IdempotencyKey, OrderId, PaymentId, Points};

/// What a buyer asks for.
#[derive(Debug, Clone)]
pub enum Command {
    Charge {
        amount: Points,
    },
    Pay {
        order_id: OrderId,
        payment_id: PaymentId,
    },
    CreateOrder {
        order_id: OrderId,
        total_price: Points,
    },
}

impl Command {
    /// What an Idempotency-Key record compares: the same key must come with the same request.
    pub fn fingerprint(&self, buyer: BuyerId) -> String {
        match self {
            Command::Charge { amount } => format!("charge:{buyer}:{amount}"),
            Command::Pay { order_id, .. } => format!("pay:{buyer}:{order_id}"),
            Command::CreateOrder {
                order_id,
                total_price,
            } => {
                format!("order:{buyer}:{order_id}:{total_price}")
            }
        }
    }
}

/// The outcome of an accepted command, ready once its write has committed (or failed).
pub type Ticket = BoxFuture<'static, Result<Receipt, BuyerError>>;

/// A command in a buyer's mailbox.
pub struct BuyerCommand {
    pub command: Command,
    pub idempotency_key: Option<IdempotencyKey>,
    pub permit: Permit,
    /// Set when handling starts: a command that never started may be resent to a new actor.
    pub started: Arc<AtomicBool>,
}

impl Message for BuyerCommand {
    type Result = Result<Ticket, BuyerError>;
}
