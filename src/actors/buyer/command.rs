use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use actix::prelude::*;
use tokio::sync::oneshot;

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

/// Where a command's answer goes: the HTTP request waiting for it. A refusal is sent by the
/// actor at once; an accepted write's answer once it has committed (or failed).
pub type Reply = oneshot::Sender<Result<Receipt, BuyerError>>;

/// A command in a buyer's mailbox.
pub struct BuyerCommand {
    pub command: Command,
    pub idempotency_key: Option<IdempotencyKey>,
    pub permit: Permit,
    /// Set when handling starts: a command that never started may be resent to a new actor.
    pub started: Arc<AtomicBool>,
    pub reply: Reply,
}

impl Message for BuyerCommand {
    type Result = ();
}
